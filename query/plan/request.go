package plan

import (
	"encoding/json"
	"fmt"
	"strconv"
)

// RunReportRequest is a report request as the engine plans it, converted
// from Google's datapb.RunReportRequest at the API edge (convert.go); the
// API itself speaks Google's types. Parts GA4 defines but this server does
// not evaluate (cohortSpec, comparisons) are carried as markers so that a
// request using them is refused by name instead of being answered as if
// they were absent. Its JSON form is the canonical one of cache keys.
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
