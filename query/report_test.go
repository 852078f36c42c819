package query

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"testing"
	"time"

	"github.com/avila-analytics/avila/query/plan"
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

func dims(names ...string) []plan.Dimension {
	var out []plan.Dimension
	for _, n := range names {
		out = append(out, plan.Dimension{Name: n})
	}
	return out
}

func mets(names ...string) []plan.Metric {
	var out []plan.Metric
	for _, n := range names {
		out = append(out, plan.Metric{Name: n})
	}
	return out
}

func byMetric(name string, desc bool) plan.OrderBy {
	return plan.OrderBy{Metric: &plan.MetricOrderBy{MetricName: name}, Desc: desc}
}

func byDim(name, orderType string, desc bool) plan.OrderBy {
	return plan.OrderBy{Dimension: &plan.DimensionOrderBy{DimensionName: name, OrderType: orderType}, Desc: desc}
}

var allAggs = []plan.MetricAggregation{"TOTAL", "MAXIMUM", "MINIMUM"}

// allMetrics is every event metric of the allowlist (session-scoped ones
// would make reports by event-scoped dimensions invalid).
func allMetrics() []plan.Metric {
	var out []plan.Metric
	for _, m := range plan.MetricList {
		if !m.SessionOnly() && !slices.Contains(plan.CommerceMetrics, m) { // commerce: see commerce_test.go
			out = append(out, plan.Metric{Name: m.Name})
		}
	}
	return out
}

// sessionMetrics is every session-scoped metric of the allowlist.
func sessionMetrics() []plan.Metric {
	var out []plan.Metric
	for _, m := range plan.MetricList {
		if m.SessionOnly() && !slices.Contains(plan.CommerceMetrics, m) {
			out = append(out, plan.Metric{Name: m.Name})
		}
	}
	return out
}

// checkOracle runs req on site and compares the answer with the oracle's.
// Unless mayBeEmpty, a report without rows fails: it would prove nothing.
func checkOracle(t *testing.T, f *fixture, h http.Handler, site uint32, req plan.RunReportRequest, mayBeEmpty bool) *plan.RunReportResponse {
	t.Helper()
	code, body := post(t, h, fmt.Sprint(site), testKey, req)
	if code != http.StatusOK {
		t.Fatalf("status %d: %s", code, body)
	}
	var got plan.RunReportResponse
	if err := json.Unmarshal(body, &got); err != nil {
		t.Fatal(err)
	}
	want := oracle(req, f.zones[site], fixtureNow, f.events, site)
	if want.RowCount == 0 && !mayBeEmpty {
		t.Fatalf("test data gave no rows; the case proves nothing")
	}
	if diff := cmp.Diff(want, &got); diff != "" {
		t.Fatalf("response differs from oracle (-want +got):\n%s", diff)
	}
	return &got
}

// TestRunReportMatchesOracle runs reports over generated events and compares
// each answer with the one computed in Go from the same events.
func TestRunReportMatchesOracle(t *testing.T) {
	f := newFixture(t, 1500)
	h := f.handler(t)
	all := allMetrics()
	cases := []struct {
		name       string
		site       uint32
		req        plan.RunReportRequest
		mayBeEmpty bool
	}{
		{"date and path, all metrics and aggregations, across DST", 1, plan.RunReportRequest{
			Dimensions: dims("date", "pagePath"), Metrics: all,
			DateRanges:         []plan.DateRange{{StartDate: "2026-03-05", EndDate: "2026-03-09"}},
			OrderBys:           []plan.OrderBy{byDim("date", "", false), byDim("pagePath", "", false)},
			MetricAggregations: allAggs}, false},
		{"east of UTC, two ranges, top events paged", 2, plan.RunReportRequest{
			Dimensions: dims("eventName"), Metrics: all,
			DateRanges: []plan.DateRange{{StartDate: "2026-03-02", EndDate: "2026-03-04", Name: "early"}, {StartDate: "5daysAgo", EndDate: "yesterday"}},
			OrderBys:   []plan.OrderBy{byMetric("eventCount", true)}, Limit: 3, Offset: 1, MetricAggregations: allAggs}, false},
		{"relative dates by day", 3, plan.RunReportRequest{
			Dimensions: dims("date"), Metrics: mets("activeUsers", "eventCount"),
			DateRanges: []plan.DateRange{{StartDate: "7daysAgo", EndDate: "yesterday"}, {StartDate: "today", EndDate: "today"}},
			OrderBys:   []plan.OrderBy{byDim("dateRange", "", true), byDim("date", "", false)}, MetricAggregations: []plan.MetricAggregation{"TOTAL"}}, false},
		{"four ranges with names, by hour", 2, plan.RunReportRequest{
			Dimensions: dims("hour"), Metrics: mets("totalUsers", "eventCountPerUser"), MetricAggregations: allAggs,
			DateRanges: []plan.DateRange{{StartDate: "2026-03-01", EndDate: "2026-03-02", Name: "first"}, {StartDate: "2026-03-03", EndDate: "2026-03-05"},
				{StartDate: "3daysAgo", EndDate: "today", Name: "recent"}, {StartDate: "2026-03-01", EndDate: "today"}},
			OrderBys: []plan.OrderBy{byDim("hour", "NUMERIC", true), byDim("dateRange", "", false)}}, false},
		{"dimensions only, case-insensitive descending", 1, plan.RunReportRequest{
			Dimensions: dims("pagePath", "eventName"), DateRanges: []plan.DateRange{{StartDate: "2026-03-01", EndDate: "today"}},
			OrderBys: []plan.OrderBy{byDim("pagePath", "CASE_INSENSITIVE_ALPHANUMERIC", true)}}, false},
		{"case-insensitive order over non-ASCII capitals", 3, plan.RunReportRequest{
			Dimensions: dims("city", "region"), Metrics: mets("eventCount"), DateRanges: []plan.DateRange{{StartDate: "2026-03-01", EndDate: "today"}},
			OrderBys: []plan.OrderBy{byDim("city", "CASE_INSENSITIVE_ALPHANUMERIC", false), byDim("region", "CASE_INSENSITIVE_ALPHANUMERIC", true)}}, false},
		{"numeric order over mixed values", 1, plan.RunReportRequest{
			Dimensions: dims("customEvent:button", "minute"), Metrics: mets("eventCount"), DateRanges: []plan.DateRange{{StartDate: "2026-03-01", EndDate: "today"}},
			OrderBys: []plan.OrderBy{byDim("customEvent:button", "NUMERIC", false), byDim("minute", "NUMERIC", true)}, Limit: 40}, false},
		{"numeric order over mixed values, descending", 2, plan.RunReportRequest{
			Dimensions: dims("customEvent:button"), Metrics: mets("eventCount"), DateRanges: []plan.DateRange{{StartDate: "2026-03-01", EndDate: "today"}},
			OrderBys: []plan.OrderBy{byDim("customEvent:button", "NUMERIC", true)}}, false},
		{"float metric order", 2, plan.RunReportRequest{
			Dimensions: dims("browser"), Metrics: mets("userEngagementDuration", "eventCountPerUser"), DateRanges: []plan.DateRange{{StartDate: "2026-03-01", EndDate: "today"}},
			OrderBys: []plan.OrderBy{byMetric("eventCountPerUser", false)}, MetricAggregations: allAggs}, false},
		{"rows with only zero metrics dropped", 2, plan.RunReportRequest{
			Dimensions: dims("eventName", "pagePath"), Metrics: mets("screenPageViews"),
			DateRanges: []plan.DateRange{{StartDate: "2026-03-01", EndDate: "2026-03-10"}}, MetricAggregations: allAggs}, false},
		{"rows with only zero metrics kept", 2, plan.RunReportRequest{
			Dimensions: dims("eventName", "pagePath"), Metrics: mets("screenPageViews", "keyEvents"), KeepEmptyRows: true,
			DateRanges: []plan.DateRange{{StartDate: "2026-03-01", EndDate: "2026-03-10"}}, MetricAggregations: allAggs}, false},
		{"no dimensions, overlapping ranges", 3, plan.RunReportRequest{
			Metrics: all, MetricAggregations: allAggs,
			DateRanges: []plan.DateRange{{StartDate: "2026-03-01", EndDate: "2026-03-05"}, {StartDate: "2026-03-04", EndDate: "2026-03-09"}, {StartDate: "2026-03-03", EndDate: "2026-03-03", Name: "one day"}}}, false},
		{"offset past the last row", 1, plan.RunReportRequest{
			Dimensions: dims("date"), Metrics: mets("eventCount"), Offset: 1000, MetricAggregations: allAggs,
			DateRanges: []plan.DateRange{{StartDate: "2026-03-01", EndDate: "2026-03-10"}}}, false},
		{"offset at the largest integer", 2, plan.RunReportRequest{
			Dimensions: dims("date"), Metrics: mets("eventCount"), Offset: 1<<63 - 1, Limit: 250000, MetricAggregations: allAggs,
			DateRanges: []plan.DateRange{{StartDate: "2026-03-01", EndDate: "2026-03-10"}}}, false},
		{"range without events", 1, plan.RunReportRequest{
			Dimensions: dims("date"), Metrics: mets("eventCount", "activeUsers", "userEngagementDuration"), MetricAggregations: allAggs,
			DateRanges: []plan.DateRange{{StartDate: "2025-01-01", EndDate: "2025-01-31"}, {StartDate: "2026-03-09", EndDate: "2026-03-09"}}}, false},
		{"no events at all", 1, plan.RunReportRequest{
			Dimensions: dims("country"), Metrics: all, MetricAggregations: allAggs,
			DateRanges: []plan.DateRange{{StartDate: "2025-01-01", EndDate: "2025-01-31"}}}, true},
		{"ascending metric then path, small pages", 3, plan.RunReportRequest{
			Dimensions: dims("pagePath", "date"), Metrics: mets("activeUsers"), Limit: 7, Offset: 5,
			DateRanges: []plan.DateRange{{StartDate: "2026-03-03", EndDate: "2026-03-06"}},
			OrderBys:   []plan.OrderBy{byMetric("activeUsers", false), byDim("pagePath", "", true)}}, false},
		{"top pages by counters only, two ranges", 1, plan.RunReportRequest{
			Dimensions: dims("pagePath"), Metrics: mets("screenPageViews", "eventCount", "userEngagementDuration"), Limit: 5,
			DateRanges: []plan.DateRange{{StartDate: "2026-03-02", EndDate: "2026-03-05"}, {StartDate: "2026-03-04", EndDate: "today"}},
			OrderBys:   []plan.OrderBy{byMetric("screenPageViews", true)}, MetricAggregations: allAggs}, false},
		{"top pages by views with users, a page past the first", 2, plan.RunReportRequest{
			Dimensions: dims("pagePath"), Metrics: mets("screenPageViews", "activeUsers", "eventCountPerUser"), Limit: 3, Offset: 1,
			DateRanges: []plan.DateRange{{StartDate: "2026-03-01", EndDate: "today"}},
			OrderBys:   []plan.OrderBy{byMetric("screenPageViews", true)}, MetricAggregations: []plan.MetricAggregation{"TOTAL"}}, false},
		{"events by name with users, default order", 1, plan.RunReportRequest{
			Dimensions: dims("eventName"), Metrics: mets("eventCount", "totalUsers"), Limit: 2,
			DateRanges: []plan.DateRange{{StartDate: "2026-03-02", EndDate: "2026-03-08"}}}, false},
		{"views and users by event name, two ranges: rows without views kept for their users", 3, plan.RunReportRequest{
			Dimensions: dims("eventName"), Metrics: mets("screenPageViews", "activeUsers"), Limit: 4, Offset: 1,
			DateRanges: []plan.DateRange{{StartDate: "2026-03-01", EndDate: "2026-03-06"}, {StartDate: "2026-03-05", EndDate: "today"}},
			OrderBys:   []plan.OrderBy{byMetric("screenPageViews", true)}}, false},
		{"countries by display name, counters only", 2, plan.RunReportRequest{
			Dimensions: dims("country"), Metrics: mets("keyEvents"), KeepEmptyRows: true,
			DateRanges: []plan.DateRange{{StartDate: "2026-03-01", EndDate: "today"}},
			OrderBys:   []plan.OrderBy{byDim("country", "CASE_INSENSITIVE_ALPHANUMERIC", true)}, MetricAggregations: allAggs}, false},
		{"limit one", 1, plan.RunReportRequest{
			Dimensions: dims("deviceCategory", "operatingSystem"), Metrics: mets("newUsers", "totalUsers"), Limit: 1,
			DateRanges: []plan.DateRange{{StartDate: "2026-03-01", EndDate: "today"}}}, false},
	}
	events, rollups := f.routedHandler(t, plan.RouteEvents), f.routedHandler(t, plan.RouteRollups)
	rolled := 0
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			checkOracle(t, f, h, tc.site, tc.req, tc.mayBeEmpty)
			checkOracle(t, f, events, tc.site, tc.req, tc.mayBeEmpty)
			if f.coveredByRollups(t, tc.site, tc.req) {
				rolled++
				checkOracle(t, f, rollups, tc.site, tc.req, tc.mayBeEmpty)
			}
		})
	}
	if rolled < 10 {
		t.Errorf("%d cases answered from rollups, want at least 10", rolled)
	}
}

// TestEveryDimension reports each allowlisted dimension, and custom
// parameters, with every metric and aggregation, and compares with the
// oracle.
func TestEveryDimension(t *testing.T) {
	f := newFixture(t, 600)
	h := f.handler(t)
	names := []string{"customEvent:plan", "customEvent:button", "customUser:tier", "customEvent:absent"}
	for _, d := range plan.DimensionList {
		if !slices.Contains(plan.CommerceDimensions, d) { // see commerce_test.go
			names = append(names, d.Name)
		}
	}
	for i, name := range names {
		t.Run(name, func(t *testing.T) {
			site := fixtureSites[i%len(fixtureSites)].id
			got := checkOracle(t, f, h, site, plan.RunReportRequest{
				Dimensions: dims(name), Metrics: allMetrics(), MetricAggregations: allAggs,
				DateRanges: []plan.DateRange{{StartDate: "2026-03-02", EndDate: "2026-03-08"}, {StartDate: "yesterday", EndDate: "today", Name: "recent"}},
				OrderBys:   []plan.OrderBy{byDim(name, "", false), byDim("dateRange", "", false)},
			}, false)
			// Each dimension shows more than one value (but the absent
			// parameter), so a constant expression cannot pass.
			values := map[string]bool{}
			for _, r := range got.Rows {
				values[r.DimensionValues[0].Value] = true
			}
			if len(values) < 2 && name != "customEvent:absent" && name != "year" && name != "month" && name != "yearMonth" {
				t.Fatalf("only values %v", values)
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
	var content int32
	if err := f.pool.QueryRow(context.Background(), `INSERT INTO content_profiles (site_id, host_id, page_id, title_id)
		VALUES (1, 0, $1, 0) ON CONFLICT (site_id, host_id, page_id, title_id) DO UPDATE SET page_id = excluded.page_id
		RETURNING id`, page).Scan(&content); err != nil {
		t.Fatal(err)
	}
	mustExec(t, f.pool, `INSERT INTO events (site_id, ts, visitor_id, name_id, content_id, engagement_ms)
		VALUES (1, $1, 7, $2, $3, 1500), (1, $1, 8, $2, $3, 0), (1, $1, 7, $2, $3, 0)`, ts, name, content)
	// Rows inserted around WriteBatch reach the rollups by a rebuild.
	if err := f.store.RebuildRollups(context.Background(), 1); err != nil {
		t.Fatal(err)
	}
	want := `{"dimensionHeaders":[{"name":"date"},{"name":"pagePath"}],` +
		`"metricHeaders":[{"name":"screenPageViews","type":"TYPE_INTEGER"},{"name":"activeUsers","type":"TYPE_INTEGER"},` +
		`{"name":"eventCountPerUser","type":"TYPE_FLOAT"},{"name":"userEngagementDuration","type":"TYPE_SECONDS"}],` +
		`"rows":[{"dimensionValues":[{"value":"20260309"},{"value":"/a"}],"metricValues":[{"value":"3"},{"value":"1"},{"value":"3"},{"value":"1.5"}]}],` +
		`"totals":[{"dimensionValues":[{"value":"RESERVED_TOTAL"},{"value":"RESERVED_TOTAL"}],"metricValues":[{"value":"3"},{"value":"1"},{"value":"3"},{"value":"1.5"}]}],` +
		`"rowCount":1,"metadata":{"currencyCode":"USD","timeZone":"America/New_York"},"kind":"analyticsData#runReport"}` + "\n"
	for _, r := range []plan.Route{plan.RouteEvents, plan.RouteRollups} {
		code, body := post(t, f.routedHandler(t, r), "1", testKey, []byte(`{"dimensions":[{"name":"date"},{"name":"pagePath"}],
		"metrics":[{"name":"screenPageViews"},{"name":"activeUsers"},{"name":"eventCountPerUser"},{"name":"userEngagementDuration"}],
		"dateRanges":[{"startDate":"yesterday","endDate":"today"}],"limit":"10","metricAggregations":["TOTAL"]}`))
		if code != http.StatusOK || string(body) != want {
			t.Fatalf("route %d: got %d %s\nwant 200 %s", r, code, body, want)
		}
	}
}
