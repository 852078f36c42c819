package query

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
)

// hostile strings, thrown into every string field of a request.
var hostile = []string{
	`'; DROP TABLE events; --`,
	`eventCount); DROP TABLE events; --`,
	`date" FROM events; DROP TABLE events; --`,
	`1'); DELETE FROM events WHERE ('1'='1`,
	`$1`, `\x00`, "today\x00'", `NULL`, `today; DROP TABLE events`, `1daysAgo'--`,
}

// TestInjection sends SQL-looking strings in every string field: names,
// dates, order fields, aggregations, property and currency must be refused
// with 400; a date range name is data and must come back verbatim. The
// events table must be intact afterwards.
func TestInjection(t *testing.T) {
	f := newFixture(t, 50)
	h := f.handler(t)
	ctx := context.Background()
	var before int64
	if err := f.pool.QueryRow(ctx, "SELECT count(*) FROM events").Scan(&before); err != nil {
		t.Fatal(err)
	}
	base := func() RunReportRequest {
		return RunReportRequest{Dimensions: dims("eventName"), Metrics: mets("eventCount"),
			DateRanges: []DateRange{{StartDate: "2026-03-01", EndDate: "today"}, {StartDate: "yesterday", EndDate: "today"}}}
	}
	mutations := map[string]func(r *RunReportRequest, s string){
		"dimension name":    func(r *RunReportRequest, s string) { r.Dimensions[0].Name = s },
		"metric name":       func(r *RunReportRequest, s string) { r.Metrics[0].Name = s },
		"start date":        func(r *RunReportRequest, s string) { r.DateRanges[0].StartDate = s },
		"end date":          func(r *RunReportRequest, s string) { r.DateRanges[1].EndDate = s },
		"order metric":      func(r *RunReportRequest, s string) { r.OrderBys = []OrderBy{byMetric(s, true)} },
		"order dimension":   func(r *RunReportRequest, s string) { r.OrderBys = []OrderBy{byDim(s, "", false)} },
		"order type":        func(r *RunReportRequest, s string) { r.OrderBys = []OrderBy{byDim("eventName", s, false)} },
		"aggregation":       func(r *RunReportRequest, s string) { r.MetricAggregations = []MetricAggregation{MetricAggregation(s)} },
		"property":          func(r *RunReportRequest, s string) { r.Property = s },
		"currency":          func(r *RunReportRequest, s string) { r.CurrencyCode = s },
		"metric expression": func(r *RunReportRequest, s string) { r.Metrics[0].Expression = s },
	}
	for field, mutate := range mutations {
		for _, s := range hostile {
			req := base()
			mutate(&req, s)
			code, out := post(t, h, "1", testKey, req)
			if code != http.StatusBadRequest || !strings.Contains(string(out), `"status":"INVALID_ARGUMENT"`) {
				t.Errorf("%s = %q: got %d %s, want 400 INVALID_ARGUMENT", field, s, code, out)
			}
		}
	}
	for _, s := range hostile {
		req := base()
		req.DateRanges[0].Name = s
		code, out := post(t, h, "1", testKey, req)
		if code != http.StatusOK {
			t.Fatalf("range name %q: got %d %s, want 200", s, code, out)
		}
		var resp RunReportResponse
		if err := json.Unmarshal(out, &resp); err != nil {
			t.Fatal(err)
		}
		found := false
		for _, row := range resp.Rows {
			found = found || row.DimensionValues[len(row.DimensionValues)-1].Value == s
		}
		if !found {
			t.Fatalf("range name %q not returned as a dateRange value: %s", s, out)
		}
	}
	var after int64
	if err := f.pool.QueryRow(ctx, "SELECT count(*) FROM events").Scan(&after); err != nil {
		t.Fatalf("events table after hostile requests: %v", err)
	}
	if after != before {
		t.Fatalf("events: %d rows before, %d after", before, after)
	}
}
