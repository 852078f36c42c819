package query

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
)

// RunReportRequest mirrors the GA4 Data API v1beta RunReportRequest JSON.
// Fields GA4 defines but this server does not evaluate yet (cohortSpec,
// comparisons) are kept as raw JSON so that a request using them is refused
// by name instead of being answered as if they were absent.
type RunReportRequest struct {
	Property            string              `json:"property,omitempty"`
	Dimensions          []Dimension         `json:"dimensions,omitempty"`
	Metrics             []Metric            `json:"metrics,omitempty"`
	DateRanges          []DateRange         `json:"dateRanges,omitempty"`
	Limit               Int64               `json:"limit,omitempty"`
	Offset              Int64               `json:"offset,omitempty"`
	OrderBys            []OrderBy           `json:"orderBys,omitempty"`
	MetricAggregations  []MetricAggregation `json:"metricAggregations,omitempty"`
	KeepEmptyRows       bool                `json:"keepEmptyRows,omitempty"`
	CurrencyCode        string              `json:"currencyCode,omitempty"`
	ReturnPropertyQuota bool                `json:"returnPropertyQuota,omitempty"`
	DimensionFilter     *FilterExpression   `json:"dimensionFilter,omitempty"`
	MetricFilter        *FilterExpression   `json:"metricFilter,omitempty"`
	CohortSpec          json.RawMessage     `json:"cohortSpec,omitempty"`
	Comparisons         json.RawMessage     `json:"comparisons,omitempty"`
}

// Dimension is a requested dimension, by API name.
type Dimension struct {
	Name                string          `json:"name"`
	DimensionExpression json.RawMessage `json:"dimensionExpression,omitempty"`
}

// Metric is a requested metric, by API name.
type Metric struct {
	Name       string `json:"name"`
	Expression string `json:"expression,omitempty"`
	Invisible  bool   `json:"invisible,omitempty"`
}

// DateRange is an inclusive range of days in the property's time zone.
// Dates are YYYY-MM-DD, "today", "yesterday" or "NdaysAgo".
type DateRange struct {
	StartDate string `json:"startDate"`
	EndDate   string `json:"endDate"`
	Name      string `json:"name,omitempty"`
}

// OrderBy sorts rows by one metric or one dimension.
type OrderBy struct {
	Metric    *MetricOrderBy    `json:"metric,omitempty"`
	Dimension *DimensionOrderBy `json:"dimension,omitempty"`
	Pivot     json.RawMessage   `json:"pivot,omitempty"`
	Desc      bool              `json:"desc,omitempty"`
}

// MetricOrderBy sorts by a metric's value.
type MetricOrderBy struct {
	MetricName string `json:"metricName"`
}

// DimensionOrderBy sorts by a dimension's value. OrderType is
// ALPHANUMERIC (by code point, the default), CASE_INSENSITIVE_ALPHANUMERIC
// or NUMERIC.
type DimensionOrderBy struct {
	DimensionName string `json:"dimensionName"`
	OrderType     string `json:"orderType,omitempty"`
}

// MetricAggregation asks for totals, maximums or minimums:
// "TOTAL", "MAXIMUM" or "MINIMUM".
type MetricAggregation string

// Int64 is an int64 that decodes from a JSON number or string: proto3 JSON
// writes int64 fields as strings ("limit": "100"), which is what Google's
// client libraries send, while people write numbers.
type Int64 int64

// UnmarshalJSON accepts 100 and "100".
func (n *Int64) UnmarshalJSON(b []byte) error {
	s := string(b)
	if s == "null" {
		return nil // proto3 JSON: null means the default
	}
	if len(s) >= 2 && s[0] == '"' && s[len(s)-1] == '"' {
		s = s[1 : len(s)-1]
	}
	v, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		return fmt.Errorf("query: %s is not an integer", b)
	}
	*n = Int64(v)
	return nil
}

// maxBodyBytes bounds a request body; GA4 requests are a few KiB.
const maxBodyBytes = 1 << 20

// decodeRequest reads one RunReportRequest from r; see decodeBody.
func decodeRequest(r io.Reader) (*RunReportRequest, error) {
	var req RunReportRequest
	if err := decodeBody(r, &req); err != nil {
		return nil, err
	}
	return &req, nil
}

// decodeBody reads one JSON object from r into v. An empty body leaves v
// as it is (an empty request, as in GA4). Unknown fields, trailing data and
// bodies over maxBodyBytes are *apiError INVALID_ARGUMENT, with Google's
// wording where it has one; a failed read is returned as is.
func decodeBody(r io.Reader, v any) error {
	body, err := io.ReadAll(io.LimitReader(r, maxBodyBytes+1))
	if err != nil {
		return fmt.Errorf("query: read request body: %w", err)
	}
	if len(body) > maxBodyBytes {
		return invalidArgument("Request body exceeds %d bytes.", maxBodyBytes)
	}
	if len(bytes.TrimSpace(body)) == 0 {
		return nil
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return jsonError(err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return invalidArgument("Invalid JSON payload received. Unexpected data after the request object.")
	}
	return nil
}

// jsonError rewrites encoding/json's errors in the style of Google's
// "Invalid JSON payload received." messages.
func jsonError(err error) *apiError {
	msg := err.Error()
	if name, ok := strings.CutPrefix(msg, "json: unknown field "); ok {
		return invalidArgument("Invalid JSON payload received. Unknown name %s: Cannot find field.", name)
	}
	var typeErr *json.UnmarshalTypeError
	if errors.As(err, &typeErr) {
		return invalidArgument("Invalid JSON payload received. Invalid value at '%s' (%s).", typeErr.Field, typeErr.Value)
	}
	return invalidArgument("Invalid JSON payload received. %s", strings.TrimPrefix(msg, "json: "))
}
