package query

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/avila-analytics/avila/query/plan"
	"github.com/google/go-cmp/cmp"
)

// hostile strings, thrown into every string field of a request.
var hostile = []string{
	`'; DROP TABLE events; --`,
	`eventCount); DROP TABLE events; --`,
	`date" FROM events; DROP TABLE events; --`,
	`1'); DELETE FROM events WHERE ('1'='1`,
	`$1`, `\x00`, "today\x00'", `NULL`, `today; DROP TABLE events`, `1daysAgo'--`,
	`' OR '1'='1`, `::text) OR true --`, `%_\'`, `.*`, `O'Reilly; DROP`,
}

// TestInjection sends SQL-looking strings in every string field: names,
// dates, order fields, aggregations, property, currency, custom parameter
// names, filter fields, match types and operations must be refused with
// 400; a date range name and filter values are data and must come back
// verbatim or match like the oracle says. The events table must be intact
// afterwards.
func TestInjection(t *testing.T) {
	f := newFixture(t, 50)
	h := f.handler(t)
	ctx := context.Background()
	var before int64
	if err := f.pool.QueryRow(ctx, "SELECT count(*) FROM events").Scan(&before); err != nil {
		t.Fatal(err)
	}
	base := func() plan.RunReportRequest {
		return plan.RunReportRequest{Dimensions: dims("eventName"), Metrics: mets("eventCount"),
			DateRanges: []plan.DateRange{{StartDate: "2026-03-01", EndDate: "today"}, {StartDate: "yesterday", EndDate: "today"}}}
	}
	mutations := map[string]func(r *plan.RunReportRequest, s string){
		"dimension name":  func(r *plan.RunReportRequest, s string) { r.Dimensions[0].Name = s },
		"metric name":     func(r *plan.RunReportRequest, s string) { r.Metrics[0].Name = s },
		"start date":      func(r *plan.RunReportRequest, s string) { r.DateRanges[0].StartDate = s },
		"end date":        func(r *plan.RunReportRequest, s string) { r.DateRanges[1].EndDate = s },
		"order metric":    func(r *plan.RunReportRequest, s string) { r.OrderBys = []plan.OrderBy{byMetric(s, true)} },
		"order dimension": func(r *plan.RunReportRequest, s string) { r.OrderBys = []plan.OrderBy{byDim(s, "", false)} },
		"order type":      func(r *plan.RunReportRequest, s string) { r.OrderBys = []plan.OrderBy{byDim("eventName", s, false)} },
		"aggregation": func(r *plan.RunReportRequest, s string) {
			r.MetricAggregations = []plan.MetricAggregation{plan.MetricAggregation(s)}
		},
		"property":          func(r *plan.RunReportRequest, s string) { r.Property = s },
		"currency":          func(r *plan.RunReportRequest, s string) { r.CurrencyCode = s },
		"metric expression": func(r *plan.RunReportRequest, s string) { r.Metrics[0].Expression = s },
		"custom dimension":  func(r *plan.RunReportRequest, s string) { r.Dimensions[0].Name = "customEvent:" + s },
		"custom user dim":   func(r *plan.RunReportRequest, s string) { r.Dimensions[0].Name = "customUser:" + s },
		"filter dimension":  func(r *plan.RunReportRequest, s string) { r.DimensionFilter = ptr(emptyF(s)) },
		"filter metric": func(r *plan.RunReportRequest, s string) {
			r.MetricFilter = ptr(numF(s, "EQUAL", i64(1)))
		},
		"filter custom name": func(r *plan.RunReportRequest, s string) { r.DimensionFilter = ptr(emptyF("customEvent:" + s)) },
		"match type":         func(r *plan.RunReportRequest, s string) { r.DimensionFilter = ptr(strF("eventName", s, "x", false)) },
		"operation": func(r *plan.RunReportRequest, s string) {
			r.MetricFilter = ptr(numF("eventCount", s, i64(1)))
		},
	}
	for field, mutate := range mutations {
		for _, s := range hostile {
			req := base()
			mutate(&req, s)
			code, out := post(t, h, "1", testKey, req)
			if s == "NULL" && strings.Contains(field, "custom") {
				// A valid parameter name: bound as data, it names a
				// parameter no event has.
				if code != http.StatusOK || strings.Count(string(out), `"(not set)"`) == 0 && field != "filter custom name" {
					t.Errorf("%s = %q: got %d %s, want 200 with (not set)", field, s, code, out)
				}
				continue
			}
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
		var resp plan.RunReportResponse
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
	// Filter values are data: bound, compared as text, answered like the
	// oracle. Only NUL (which text cannot hold) and patterns that are no
	// RE2 are refused.
	values := map[string]func(s string) plan.FilterExpression{
		"exact":          func(s string) plan.FilterExpression { return strF("pageTitle", "EXACT", s, true) },
		"exact, no case": func(s string) plan.FilterExpression { return strF("pageTitle", "EXACT", s, false) },
		"begins with":    func(s string) plan.FilterExpression { return strF("pageTitle", "BEGINS_WITH", s, false) },
		"ends with":      func(s string) plan.FilterExpression { return strF("pageTitle", "ENDS_WITH", s, true) },
		"contains":       func(s string) plan.FilterExpression { return strF("customEvent:plan", "CONTAINS", s, false) },
		"full regexp":    func(s string) plan.FilterExpression { return strF("pageTitle", "FULL_REGEXP", s, false) },
		"partial regexp": func(s string) plan.FilterExpression { return strF("pageTitle", "PARTIAL_REGEXP", s, true) },
		"in list":        func(s string) plan.FilterExpression { return inListF("pageTitle", false, "Home", s) },
		"in list, case":  func(s string) plan.FilterExpression { return inListF("pageTitle", true, s) },
	}
	matched := 0
	for kind, filter := range values {
		for _, s := range hostile {
			req := plan.RunReportRequest{Dimensions: dims("pageTitle"), Metrics: mets("eventCount"), MetricAggregations: allAggs,
				DateRanges: []plan.DateRange{{StartDate: "2026-03-01", EndDate: "today"}}, DimensionFilter: ptr(filter(s))}
			code, out := post(t, h, "1", testKey, req)
			if code == http.StatusBadRequest && (strings.ContainsRune(s, 0) || strings.Contains(kind, "regexp")) {
				continue
			}
			if code != http.StatusOK {
				t.Fatalf("%s %q: got %d %s, want 200", kind, s, code, out)
			}
			var got plan.RunReportResponse
			if err := json.Unmarshal(out, &got); err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(oracle(req, f.zones[1], fixtureNow, f.events, 1), &got); diff != "" {
				t.Fatalf("%s %q: differs from oracle (-want +got):\n%s", kind, s, diff)
			}
			if got.RowCount > 0 && kind != "in list" {
				matched++
			}
		}
	}
	if matched == 0 {
		t.Fatalf("no hostile value matched the stored title O'Reilly; DROP: values are not compared as data")
	}

	var after int64
	if err := f.pool.QueryRow(ctx, "SELECT count(*) FROM events").Scan(&after); err != nil {
		t.Fatalf("events table after hostile requests: %v", err)
	}
	if after != before {
		t.Fatalf("events: %d rows before, %d after", before, after)
	}
}
