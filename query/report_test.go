package query

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// stubKeys is a KeyLookup over a fixed map; unknown keys wrap ErrUnknownKey.
type stubKeys map[string][]uint32

func (s stubKeys) LookupAPIKey(_ context.Context, key string) ([]uint32, error) {
	if ids, ok := s[key]; ok {
		return ids, nil
	}
	return nil, fmt.Errorf("stub keys: %w", ErrUnknownKey)
}

const testKey = "avk_test"

func (f *fixture) handler(t testing.TB) http.Handler {
	t.Helper()
	return newHandler(Options{Logger: slog.New(slog.NewTextHandler(t.Output(), nil)), Now: func() time.Time { return fixtureNow }}, f.pool, stubKeys{testKey: {1, 2, 3, 99}, "avk_site1": {1}})
}

// post sends body (a value to marshal, or raw bytes) to the property's
// runReport with key and returns the status and body.
func post(t testing.TB, h http.Handler, property, key string, body any) (int, []byte) {
	t.Helper()
	raw, ok := body.([]byte)
	if !ok {
		var err error
		if raw, err = json.Marshal(body); err != nil {
			t.Fatal(err)
		}
	}
	req := httptest.NewRequest(http.MethodPost, "/v1beta/properties/"+property+":runReport", bytes.NewReader(raw))
	if key != "" {
		req.Header.Set("Authorization", "Bearer "+key)
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec.Code, rec.Body.Bytes()
}

func dims(names ...string) []Dimension {
	var out []Dimension
	for _, n := range names {
		out = append(out, Dimension{Name: n})
	}
	return out
}

func mets(names ...string) []Metric {
	var out []Metric
	for _, n := range names {
		out = append(out, Metric{Name: n})
	}
	return out
}

func byMetric(name string, desc bool) OrderBy {
	return OrderBy{Metric: &MetricOrderBy{MetricName: name}, Desc: desc}
}

func byDim(name, orderType string, desc bool) OrderBy {
	return OrderBy{Dimension: &DimensionOrderBy{DimensionName: name, OrderType: orderType}, Desc: desc}
}

var allAggs = []MetricAggregation{"TOTAL", "MAXIMUM", "MINIMUM"}

// TestRunReportMatchesOracle runs reports over generated events and compares
// each answer with the one computed in Go from the same events.
func TestRunReportMatchesOracle(t *testing.T) {
	f := newFixture(t, 1500)
	h := f.handler(t)
	all := mets("eventCount", "screenPageViews", "activeUsers")
	cases := []struct {
		name string
		site uint32
		req  RunReportRequest
	}{
		{"date and path, all metrics and aggregations, across DST", 1, RunReportRequest{
			Dimensions: dims("date", "pagePath"), Metrics: all,
			DateRanges:         []DateRange{{StartDate: "2026-03-05", EndDate: "2026-03-09"}},
			OrderBys:           []OrderBy{byDim("date", "", false), byDim("pagePath", "", false)},
			MetricAggregations: allAggs}},
		{"east of UTC, two ranges, top events paged", 2, RunReportRequest{
			Dimensions: dims("eventName"), Metrics: all,
			DateRanges: []DateRange{{StartDate: "2026-03-02", EndDate: "2026-03-04", Name: "early"}, {StartDate: "5daysAgo", EndDate: "yesterday"}},
			OrderBys:   []OrderBy{byMetric("eventCount", true)}, Limit: 3, Offset: 1, MetricAggregations: allAggs}},
		{"relative dates by day", 3, RunReportRequest{
			Dimensions: dims("date"), Metrics: mets("activeUsers", "eventCount"),
			DateRanges: []DateRange{{StartDate: "7daysAgo", EndDate: "yesterday"}, {StartDate: "today", EndDate: "today"}},
			OrderBys:   []OrderBy{byDim("dateRange", "", true), byDim("date", "", false)}, MetricAggregations: []MetricAggregation{"TOTAL"}}},
		{"dimensions only, case-insensitive descending", 1, RunReportRequest{
			Dimensions: dims("pagePath", "eventName"), DateRanges: []DateRange{{StartDate: "2026-03-01", EndDate: "today"}},
			OrderBys: []OrderBy{byDim("pagePath", "CASE_INSENSITIVE_ALPHANUMERIC", true)}}},
		{"rows with only zero metrics dropped", 2, RunReportRequest{
			Dimensions: dims("eventName", "pagePath"), Metrics: mets("screenPageViews"),
			DateRanges: []DateRange{{StartDate: "2026-03-01", EndDate: "2026-03-10"}}, MetricAggregations: allAggs}},
		{"rows with only zero metrics kept", 2, RunReportRequest{
			Dimensions: dims("eventName", "pagePath"), Metrics: mets("screenPageViews"), KeepEmptyRows: true,
			DateRanges: []DateRange{{StartDate: "2026-03-01", EndDate: "2026-03-10"}}, MetricAggregations: allAggs}},
		{"no dimensions, overlapping ranges", 3, RunReportRequest{
			Metrics: all, MetricAggregations: allAggs,
			DateRanges: []DateRange{{StartDate: "2026-03-01", EndDate: "2026-03-05"}, {StartDate: "2026-03-04", EndDate: "2026-03-09"}, {StartDate: "2026-03-03", EndDate: "2026-03-03", Name: "one day"}}}},
		{"offset past the last row", 1, RunReportRequest{
			Dimensions: dims("date"), Metrics: mets("eventCount"), Offset: 1000, MetricAggregations: allAggs,
			DateRanges: []DateRange{{StartDate: "2026-03-01", EndDate: "2026-03-10"}}}},
		{"range without events", 1, RunReportRequest{
			Dimensions: dims("date"), Metrics: mets("eventCount", "activeUsers"), MetricAggregations: allAggs,
			DateRanges: []DateRange{{StartDate: "2025-01-01", EndDate: "2025-01-31"}, {StartDate: "2026-03-09", EndDate: "2026-03-09"}}}},
		{"ascending metric then path, small pages", 3, RunReportRequest{
			Dimensions: dims("pagePath", "date"), Metrics: mets("activeUsers"), Limit: 7, Offset: 5,
			DateRanges: []DateRange{{StartDate: "2026-03-03", EndDate: "2026-03-06"}},
			OrderBys:   []OrderBy{byMetric("activeUsers", false), byDim("pagePath", "", true)}}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			code, body := post(t, h, fmt.Sprint(tc.site), testKey, tc.req)
			if code != http.StatusOK {
				t.Fatalf("status %d: %s", code, body)
			}
			var got RunReportResponse
			if err := json.Unmarshal(body, &got); err != nil {
				t.Fatal(err)
			}
			want := oracle(tc.req, f.zones[tc.site], fixtureNow, f.events, tc.site)
			if got.RowCount == 0 && tc.name != "range without events" && tc.name != "offset past the last row" {
				t.Fatalf("test data gave no rows; the case proves nothing")
			}
			if diff := cmp.Diff(want, &got); diff != "" {
				t.Fatalf("response differs from oracle (-want +got):\n%s", diff)
			}
		})
	}
}

// TestRunReportJSONShape pins the wire format: strings for values, headers
// with types, metadata and kind.
func TestRunReportJSONShape(t *testing.T) {
	f := newFixture(t, 0)
	loc, _ := time.LoadLocation("America/New_York")
	// 23:30 on March 9 in New York is March 10 in UTC: the date is local.
	ts := time.Date(2026, 3, 9, 23, 30, 0, 0, loc)
	name, page := f.ids[1]["npage_view"], f.ids[1]["p/a"]
	mustExec(t, f.pool, "INSERT INTO events (site_id, ts, visitor_id, name_id, page_id) VALUES (1, $1, 7, $2, $3), (1, $1, 8, $2, $3)", ts, name, page)
	code, body := post(t, f.handler(t), "1", testKey, []byte(`{"dimensions":[{"name":"date"},{"name":"pagePath"}],
		"metrics":[{"name":"screenPageViews"},{"name":"activeUsers"}],"dateRanges":[{"startDate":"yesterday","endDate":"today"}],
		"limit":"10","metricAggregations":["TOTAL"]}`))
	want := `{"dimensionHeaders":[{"name":"date"},{"name":"pagePath"}],` +
		`"metricHeaders":[{"name":"screenPageViews","type":"TYPE_INTEGER"},{"name":"activeUsers","type":"TYPE_INTEGER"}],` +
		`"rows":[{"dimensionValues":[{"value":"20260309"},{"value":"/a"}],"metricValues":[{"value":"2"},{"value":"2"}]}],` +
		`"totals":[{"dimensionValues":[{"value":"RESERVED_TOTAL"},{"value":"RESERVED_TOTAL"}],"metricValues":[{"value":"2"},{"value":"2"}]}],` +
		`"rowCount":1,"metadata":{"currencyCode":"USD","timeZone":"America/New_York"},"kind":"analyticsData#runReport"}` + "\n"
	if code != http.StatusOK || string(body) != want {
		t.Fatalf("got %d %s\nwant 200 %s", code, body, want)
	}
}
