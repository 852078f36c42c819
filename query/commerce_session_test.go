package query

import (
	"github.com/avila-analytics/avila/query/plan"
	"math"
	"strings"
	"testing"
)

// TestCommerceBesideSessionMetrics: GA4 reports commerce metrics beside
// session metrics, by an event-scoped dimension (revenue and sessions by
// page) and by the session's traffic source (its traffic acquisition
// report: sessions and revenue by source). Each value's commerce metrics
// are those of its events, as the event report without sessions gives
// them; its sessions are those in which it occurred (by source, every
// session of the source).
func TestCommerceBesideSessionMetrics(t *testing.T) {
	f, _ := commerceFixture(t)
	auto, events := f.handler(t).(*handler), f.routedHandler(t, plan.RouteEvents)
	groups := [][]string{ // beside sessions: GA4 takes 10 metrics at most
		{"totalRevenue", "purchaseRevenue", "refundAmount", "shippingAmount", "taxAmount", "transactions", "ecommercePurchases"},
		{"averagePurchaseRevenue", "purchaseRevenue", "purchaserRate", "firstTimePurchasers", "addToCarts", "checkouts", "userKeyEventRate",
			"keyEvents:purchase"},
	}
	for _, dim := range []string{"pagePath", "eventName", "sessionSource"} {
		for _, commerce := range groups {
			t.Run(dim, func(t *testing.T) {
				checkBesideSessions(t, auto, dim, commerce)
				checkBesideSessions(t, events, dim, commerce)
			})
		}
	}
}

// checkBesideSessions compares the commerce metrics by dim (the second of
// them purchaseRevenue) beside sessions with the event report's.
func checkBesideSessions(t *testing.T, h *handler, dim string, commerce []string) {
	month := []plan.DateRange{{StartDate: "2026-03-01", EndDate: "today"}}
	total := []plan.MetricAggregation{"TOTAL"}
	events := runOn(t, h, plan.RunReportRequest{Dimensions: dims(dim), Metrics: mets(commerce...), DateRanges: month,
		MetricAggregations: total, KeepEmptyRows: true})
	mixed := runOn(t, h, plan.RunReportRequest{Dimensions: dims(dim), Metrics: mets(append([]string{"sessions"}, commerce...)...),
		DateRanges: month, MetricAggregations: total, KeepEmptyRows: true})
	want, got := keyedRows(append(events.Rows, events.Totals...)), keyedRows(append(mixed.Rows, mixed.Totals...))
	if len(want) < 3 {
		t.Fatalf("%d rows by %s: the seed proves nothing", len(want), dim)
	}
	purchases := false
	for k, w := range want {
		g := strings.Fields(got[k])
		if len(g) == 0 {
			t.Errorf("%s %q: no row beside sessions", dim, k)
			continue
		}
		wv, gv := strings.Fields(w), g[1:]
		for i := range wv {
			a, b := number(t, wv[i]), number(t, gv[i])
			if math.Abs(a-b) > 1e-6*math.Max(1, math.Abs(a)) {
				t.Errorf("%s %q: %s %v beside sessions, %v without", dim, k, commerce[i], b, a)
			}
		}
		purchases = purchases || number(t, wv[1]) > 0
	}
	if !purchases {
		t.Fatalf("no purchase revenue by %s: the seed proves nothing", dim)
	}
	if dim == "sessionSource" { // over the whole range, all of a source's sessions
		sessions := keyedRows(runOn(t, h, plan.RunReportRequest{Dimensions: dims(dim), Metrics: mets("sessions"), DateRanges: month}).Rows)
		for k, n := range sessions {
			if g := strings.Fields(got[k]); len(g) == 0 || g[0] != n {
				t.Errorf("sessionSource %q: %v beside revenue, %s sessions without", k, g, n)
			}
		}
	}
}
