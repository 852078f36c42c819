package command

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	shared "github.com/avila-analytics/avila/internal/cli"
	datapb "google.golang.org/genproto/googleapis/analytics/data/v1beta"
	"google.golang.org/protobuf/encoding/protojson"
)

// reportTimeout bounds one report request.
const reportTimeout = 60 * time.Second

func reportCommand() command {
	return command{
		name: "report",
		summary: "Run a report through the query API (POST /v1beta/properties/{id}:runReport) and print it as an\n" +
			"aligned table, CSV (--csv) or the API's JSON (--json). Example:\n" +
			"  avila report --property 1 --dimensions pagePath --metrics screenPageViews,activeUsers --start 7daysAgo --order -screenPageViews",
		flags: func(c *cli, fs *shared.FlagSet) func(context.Context) error {
			api := fs.String("api", "http://127.0.0.1:8080", "the aggregator's API URL (its --listen-api)")
			fs.SetEnv("api", "AVILA_API_URL", "AVILA_API")
			key := fs.String("key", "", "API key allowed to read the property (avila key create)")
			// AVILA_KEY first would take an agent's --key (a file name) set
			// in the same environment.
			fs.SetEnv("key", "AVILA_API_KEY", "AVILA_KEY")
			property := fs.String("property", "", "property (site) id to report on")
			dims := fs.String("dimensions", "", "comma-separated dimensions, e.g. pagePath,country")
			mets := fs.String("metrics", "", "comma-separated metrics, e.g. screenPageViews,activeUsers")
			start := fs.String("start", "7daysAgo", "first day: YYYY-MM-DD, today, yesterday or NdaysAgo, in the property's time zone")
			end := fs.String("end", "today", "last day, included; same forms as --start")
			limit := fs.Int64("limit", 0, "at most this many rows; 0: the server's default of 10000")
			offset := fs.Int64("offset", 0, "skip this many rows first, for paging with --limit")
			order := fs.String("order", "",
				"comma-separated sort keys, each a requested dimension or metric, with a leading - for descending: -screenPageViews,pagePath;\n"+
					"default: the first metric, descending")
			filter := fs.String("filter", "",
				"conditions joined by ';', all of which must hold: NAME==V, NAME!=V, NAME=@V (contains), NAME!@V, NAME=~RE (RE2, partial match),\n"+
					"NAME!~RE, and for numbers NAME>N, >=, <, <=. Text matches ignore case. A metric's conditions filter rows after grouping")
			totals := fs.Bool("totals", false, "add a totals row (metricAggregations TOTAL); a total of users counts each user once")
			asJSON := fs.Bool("json", false, "print the API's JSON response as it came")
			asCSV := fs.Bool("csv", false, "print CSV: a header row, then the rows (and the totals row, dimensions RESERVED_TOTAL)")
			return func(ctx context.Context) error {
				switch {
				case *property == "":
					return usagef("--property is required: the id of the site to report on (avila site list)")
				case *key == "":
					return usagef("--key is required: an API key for property %s (avila key create --property %s), or set AVILA_API_KEY", *property, *property)
				case *asJSON && *asCSV:
					return usagef("--json and --csv: choose one output format")
				case *limit < 0 || *offset < 0:
					return usagef("--limit and --offset must not be negative")
				}
				if id, err := strconv.ParseUint(*property, 10, 31); err != nil || id == 0 {
					return usagef("--property %q: want a property id (a positive integer, see avila site list)", *property)
				}
				req, err := buildReportRequest(shared.List(*dims), shared.List(*mets), *start, *end, *order, *filter)
				if err != nil {
					return err
				}
				req.Limit, req.Offset = *limit, *offset
				if *totals {
					req.MetricAggregations = []datapb.MetricAggregation{datapb.MetricAggregation_TOTAL}
				}
				resp, raw, err := postReport(ctx, *api, *key, *property, req)
				if err != nil {
					return err
				}
				switch {
				case *asJSON:
					_, err = c.stdout.Write(raw)
				case *asCSV:
					err = writeReportCSV(c.stdout, resp)
				default:
					err = writeReportTable(c.stdout, resp)
				}
				return err
			}
		},
	}
}

// buildReportRequest turns the flags into a runReport request. Names are
// passed as given; the server says which it does not know.
func buildReportRequest(dims, mets []string, start, end, order, filter string) (*datapb.RunReportRequest, error) {
	if len(dims) == 0 && len(mets) == 0 {
		return nil, usagef("give --metrics, --dimensions or both (e.g. --metrics screenPageViews)")
	}
	req := &datapb.RunReportRequest{DateRanges: []*datapb.DateRange{{StartDate: start, EndDate: end}}}
	isMetric := map[string]bool{}
	for _, d := range dims {
		req.Dimensions = append(req.Dimensions, &datapb.Dimension{Name: d})
	}
	for _, m := range mets {
		req.Metrics = append(req.Metrics, &datapb.Metric{Name: m})
		isMetric[m] = true
	}
	for _, o := range shared.List(order) {
		name, desc := strings.CutPrefix(o, "-")
		name = strings.TrimPrefix(name, "+")
		switch {
		case isMetric[name]:
			req.OrderBys = append(req.OrderBys, &datapb.OrderBy{OneOrderBy: &datapb.OrderBy_Metric{Metric: &datapb.OrderBy_MetricOrderBy{MetricName: name}}, Desc: desc})
		case contains(dims, name):
			req.OrderBys = append(req.OrderBys, &datapb.OrderBy{OneOrderBy: &datapb.OrderBy_Dimension{Dimension: &datapb.OrderBy_DimensionOrderBy{DimensionName: name}}, Desc: desc})
		default:
			return nil, usagef("--order %q: %q is not among --dimensions or --metrics", order, name)
		}
	}
	var dimFilters, metFilters []*datapb.FilterExpression
	for _, cond := range strings.Split(filter, ";") {
		if strings.TrimSpace(cond) == "" {
			continue
		}
		f, err := parseCondition(strings.TrimSpace(cond))
		if err != nil {
			return nil, usagef("--filter %q: %v", cond, err)
		}
		leaf := f.GetFilter()
		if f.GetNotExpression() != nil {
			leaf = f.GetNotExpression().GetFilter()
		}
		if isMetric[leaf.GetFieldName()] {
			if leaf.GetNumericFilter() == nil {
				return nil, usagef("--filter %q: metric %s takes a number comparison (>, >=, <, <=, ==, !=)", cond, leaf.GetFieldName())
			}
			metFilters = append(metFilters, f)
		} else {
			dimFilters = append(dimFilters, f)
		}
	}
	req.DimensionFilter, req.MetricFilter = allOf(dimFilters), allOf(metFilters)
	return req, nil
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

func allOf(fs []*datapb.FilterExpression) *datapb.FilterExpression {
	switch len(fs) {
	case 0:
		return nil
	case 1:
		return fs[0]
	}
	return &datapb.FilterExpression{Expr: &datapb.FilterExpression_AndGroup{AndGroup: &datapb.FilterExpressionList{Expressions: fs}}}
}

// conditionOps are the --filter operators, longest first so that ">="
// is not read as ">".
var conditionOps = []string{"==", "!=", "=@", "!@", "=~", "!~", ">=", "<=", ">", "<"}

// parseCondition reads one --filter condition: NAME OP VALUE.
func parseCondition(cond string) (*datapb.FilterExpression, error) {
	at, op := -1, ""
	for _, o := range conditionOps {
		if i := strings.Index(cond, o); i > 0 && (at < 0 || i < at || i == at && len(o) > len(op)) {
			at, op = i, o
		}
	}
	if at < 0 {
		return nil, errors.New("want NAME==VALUE, NAME!=VALUE, NAME=@TEXT, NAME!@TEXT, NAME=~RE, NAME!~RE or NAME>N (>=, <, <=)")
	}
	name, value := strings.TrimSpace(cond[:at]), strings.TrimSpace(cond[at+len(op):])
	f := &datapb.Filter{FieldName: name}
	negate := false
	switch op {
	case "==", "!=":
		negate = op == "!="
		if n, ok := number(value); ok {
			// A number: compared as one for metrics; a dimension with
			// this text also compares equal as a number.
			f.OneFilter = &datapb.Filter_NumericFilter_{NumericFilter: &datapb.Filter_NumericFilter{Operation: datapb.Filter_NumericFilter_EQUAL, Value: n}}
			break
		}
		f.OneFilter = &datapb.Filter_StringFilter_{StringFilter: &datapb.Filter_StringFilter{MatchType: datapb.Filter_StringFilter_EXACT, Value: value}}
	case "=@", "!@":
		negate = op == "!@"
		f.OneFilter = &datapb.Filter_StringFilter_{StringFilter: &datapb.Filter_StringFilter{MatchType: datapb.Filter_StringFilter_CONTAINS, Value: value}}
	case "=~", "!~":
		negate = op == "!~"
		f.OneFilter = &datapb.Filter_StringFilter_{StringFilter: &datapb.Filter_StringFilter{MatchType: datapb.Filter_StringFilter_PARTIAL_REGEXP, Value: value}}
	default:
		n, ok := number(value)
		if !ok {
			return nil, fmt.Errorf("%q after %s is not a number", value, op)
		}
		f.OneFilter = &datapb.Filter_NumericFilter_{NumericFilter: &datapb.Filter_NumericFilter{Operation: map[string]datapb.Filter_NumericFilter_Operation{
			">": datapb.Filter_NumericFilter_GREATER_THAN, ">=": datapb.Filter_NumericFilter_GREATER_THAN_OR_EQUAL,
			"<": datapb.Filter_NumericFilter_LESS_THAN, "<=": datapb.Filter_NumericFilter_LESS_THAN_OR_EQUAL}[op], Value: n}}
	}
	e := &datapb.FilterExpression{Expr: &datapb.FilterExpression_Filter{Filter: f}}
	if negate {
		return &datapb.FilterExpression{Expr: &datapb.FilterExpression_NotExpression{NotExpression: e}}, nil
	}
	return e, nil
}

// number reads an integer or a decimal.
func number(s string) (*datapb.NumericValue, bool) {
	if i, err := strconv.ParseInt(s, 10, 64); err == nil {
		return &datapb.NumericValue{OneValue: &datapb.NumericValue_Int64Value{Int64Value: i}}, true
	}
	if f, err := strconv.ParseFloat(s, 64); err == nil && strings.TrimLeft(s, "+-0123456789.eE") == "" {
		return &datapb.NumericValue{OneValue: &datapb.NumericValue_DoubleValue{DoubleValue: f}}, true
	}
	return nil, false
}

// postReport sends req to the property's runReport and returns the decoded
// response and its raw JSON. An API error comes back with the server's own
// message; a server that cannot be reached is named with the fix.
func postReport(ctx context.Context, api, key, property string, req *datapb.RunReportRequest) (*datapb.RunReportResponse, []byte, error) {
	if !strings.HasPrefix(api, "http://") && !strings.HasPrefix(api, "https://") {
		api = "http://" + api
	}
	u, err := url.Parse(strings.TrimSuffix(api, "/") + "/v1beta/properties/" + property + ":runReport")
	if err != nil || u.Host == "" {
		return nil, nil, usagef("--api %q: not a URL like http://127.0.0.1:8080", api)
	}
	body, err := protojson.Marshal(req)
	if err != nil {
		return nil, nil, fmt.Errorf("encode request: %w", err)
	}
	ctx, cancel := context.WithTimeout(ctx, reportTimeout)
	defer cancel()
	hreq, err := http.NewRequestWithContext(ctx, http.MethodPost, u.String(), bytes.NewReader(body))
	if err != nil {
		return nil, nil, usagef("--api %q: %v", api, err)
	}
	hreq.Header.Set("Content-Type", "application/json")
	hreq.Header.Set("Authorization", "Bearer "+key)
	resp, err := http.DefaultClient.Do(hreq)
	if err != nil {
		return nil, nil, fmt.Errorf("POST %s: %w (is the aggregator running there? check --api or AVILA_API_URL)", u, err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, 256<<20))
	if err != nil {
		return nil, nil, fmt.Errorf("POST %s: read response: %w", u, err)
	}
	if resp.StatusCode != http.StatusOK {
		var e struct {
			Error struct {
				Code    int    `json:"code"`
				Message string `json:"message"`
				Status  string `json:"status"`
			} `json:"error"`
		}
		if json.Unmarshal(raw, &e) == nil && e.Error.Message != "" {
			return nil, nil, fmt.Errorf("%d %s: %s", e.Error.Code, e.Error.Status, e.Error.Message)
		}
		return nil, nil, fmt.Errorf("POST %s: %s: %s", u, resp.Status, strings.TrimSpace(string(raw[:min(len(raw), 500)])))
	}
	var out datapb.RunReportResponse
	if err := (protojson.UnmarshalOptions{DiscardUnknown: true}).Unmarshal(raw, &out); err != nil {
		return nil, nil, fmt.Errorf("POST %s: the answer is not a runReport response (is --api an Avila aggregator?): %w", u, err)
	}
	return &out, raw, nil
}
