package query

import (
	"context"
	"math/rand/v2"
	"net/http"
	"testing"
	"time"

	"github.com/avila-analytics/avila/protocol"
	"github.com/avila-analytics/avila/query/engine/rollups"
	"github.com/avila-analytics/avila/query/plan"
)

// TestPageRollupsMatchOracle: event metrics by the session's landing page
// read the rows by landing page (postgres.RollupLandingPage), and sessions
// by page path or title read the sessions sketches by page
// (RollupPageSessions, RollupTitleSessions); both give the oracle's
// numbers and the raw-event engine's, before and after a rebuild, with
// time dimensions, two ranges, a filter on the dimension and totals.
// Reports the rows do not hold (users by landing page, another dimension
// or filter, a session metric other than sessions) go to the events.
func TestPageRollupsMatchOracle(t *testing.T) {
	f := newFixture(t, 1500)
	h := f.handler(t)
	rolled, events := f.routedHandler(t, plan.RouteRollups), f.routedHandler(t, plan.RouteEvents)
	week := []plan.DateRange{{StartDate: "2026-03-02", EndDate: "2026-03-08"}}
	two := []plan.DateRange{{StartDate: "2026-03-01", EndDate: "2026-03-04", Name: "early"}, {StartDate: "5daysAgo", EndDate: "today"}}
	covered := []struct {
		name string
		site uint32
		req  plan.RunReportRequest
	}{
		{"top landing pages by page views", 1, plan.RunReportRequest{Dimensions: dims("landingPage"),
			Metrics: mets("screenPageViews"), DateRanges: week, Limit: 10, OrderBys: []plan.OrderBy{byMetric("screenPageViews", true)}}},
		{"landing page with query string by date, every counter", 2, plan.RunReportRequest{Dimensions: dims("date", "landingPagePlusQueryString"),
			Metrics: mets("eventCount", "screenPageViews", "keyEvents", "userEngagementDuration"), DateRanges: week, MetricAggregations: allAggs}},
		{"landing pages filtered, two ranges", 3, plan.RunReportRequest{Dimensions: dims("landingPage"),
			Metrics: mets("eventCount"), DateRanges: two, DimensionFilter: ptr(strF("landingPage", "BEGINS_WITH", "/a", true))}},
		{"sessions by page path", 1, plan.RunReportRequest{Dimensions: dims("pagePath"), Metrics: mets("sessions"),
			DateRanges: week, MetricAggregations: allAggs}},
		{"sessions and views by page title, two ranges", 2, plan.RunReportRequest{Dimensions: dims("pageTitle"),
			Metrics: mets("sessions", "screenPageViews", "eventCount", "keyEvents"), DateRanges: two, MetricAggregations: allAggs}},
		{"sessions by page path and date, across DST", 1, plan.RunReportRequest{Dimensions: dims("date", "pagePath"),
			Metrics:    mets("sessions", "userEngagementDuration"),
			DateRanges: []plan.DateRange{{StartDate: "2026-03-06", EndDate: "2026-03-10"}}, MetricAggregations: allAggs,
			OrderBys: []plan.OrderBy{byDim("date", "", false), byDim("pagePath", "", false)}}},
		{"sessions by page path filtered on it", 3, plan.RunReportRequest{Dimensions: dims("pagePath"), Metrics: mets("sessions"),
			DateRanges: week, DimensionFilter: ptr(strF("pagePath", "BEGINS_WITH", "/a", true))}},
	}
	for _, tc := range covered {
		t.Run(tc.name, func(t *testing.T) {
			if !f.coveredByRollups(t, tc.site, tc.req) {
				t.Fatal("the rollups should answer it")
			}
			checkOracle(t, f, rolled, tc.site, tc.req, false)
			checkOracle(t, f, events, tc.site, tc.req, false)
			checkOracle(t, f, h, tc.site, tc.req, false)
			if err := f.store.RebuildRollups(context.Background(), tc.site); err != nil {
				t.Fatal(err)
			}
			checkOracle(t, f, rolled, tc.site, tc.req, false)
		})
	}
	for _, tc := range []struct {
		name string
		site uint32
		req  plan.RunReportRequest
	}{
		{"users by landing page", 1, plan.RunReportRequest{Dimensions: dims("landingPage"), Metrics: mets("screenPageViews", "activeUsers"), DateRanges: week}},
		{"revenue by landing page", 2, plan.RunReportRequest{Dimensions: dims("landingPage"), Metrics: mets("totalRevenue"), DateRanges: week}},
		{"landing page and country", 3, plan.RunReportRequest{Dimensions: dims("landingPage", "country"), Metrics: mets("eventCount"), DateRanges: week}},
		{"sessions by page filtered on country", 1, plan.RunReportRequest{Dimensions: dims("pagePath"), Metrics: mets("sessions"),
			DateRanges: week, DimensionFilter: ptr(strF("country", "EXACT", "United States", false))}},
		{"engaged sessions by page", 2, plan.RunReportRequest{Dimensions: dims("pagePath"), Metrics: mets("sessions", "engagedSessions"), DateRanges: week}},
		{"sessions and users by page", 3, plan.RunReportRequest{Dimensions: dims("pagePath"), Metrics: mets("sessions", "activeUsers"), DateRanges: week}},
		{"sessions by event name", 1, plan.RunReportRequest{Dimensions: dims("eventName"), Metrics: mets("sessions"), DateRanges: week}},
		{"sessions by page and host", 2, plan.RunReportRequest{Dimensions: dims("pagePath", "hostName"), Metrics: mets("sessions"), DateRanges: week}},
	} {
		t.Run("falls back/"+tc.name, func(t *testing.T) {
			if f.coveredByRollups(t, tc.site, tc.req) {
				t.Fatal("the rollups claim a report they do not hold")
			}
			if rollups.ReadsAmounts(tc.req.Metrics[0].Name) {
				// The oracle counts no revenue: the answer must come.
				if code, body := post(t, h, "2", testKey, tc.req); code != http.StatusOK {
					t.Fatalf("status %d: %s", code, body)
				}
				return
			}
			checkOracle(t, f, h, tc.site, tc.req, true)
		})
	}
}

// TestLandingPageSetLater: a session whose first derivations hold no page
// view counts its events under no landing page until one arrives; then
// they move to its landing page, as the raw-event engine shows them,
// whether the session's earlier events lie on one day (eve) or on two
// (dan, across midnight), and late events of the session follow.
func TestLandingPageSetLater(t *testing.T) {
	f := newFixture(t, 0)
	ctx := context.Background()
	at := func(day, hour, minute int) int64 {
		return time.Date(2026, 3, day, hour, minute, 0, 0, time.UTC).UnixMicro()
	}
	const (
		dan = uint64(4) << 58
		eve = uint64(5) << 58
		fay = uint64(6) << 58 // lands at once
	)
	ev := func(v uint64, ts int64, name, path string, flags uint8, engage int64) protocol.Event {
		return protocol.Event{Site: 3, Visitor: v, TimeMicros: ts, Name: name, Host: "example.com", Path: path, Title: path,
			Flags: flags, EngageMs: engage, Country: "US", Browser: "Chrome", OS: "Windows", Device: "desktop"}
	}
	batches := [][]protocol.Event{
		{ev(dan, at(8, 23, 50), "scroll", "/d", protocol.FlagFirstVisit|protocol.FlagSessionStart, 1000),
			ev(eve, at(9, 12, 0), "click", "/e", protocol.FlagFirstVisit|protocol.FlagSessionStart, 2000),
			ev(fay, at(9, 12, 0), "page_view", "/f", protocol.FlagFirstVisit|protocol.FlagSessionStart, 0)},
		{ev(dan, at(9, 0, 2), "click", "/d", 0, 0), ev(eve, at(9, 12, 1), "scroll", "/e", 0, 0)},
		// dan's landing page comes with an event of the 8th sent late.
		{ev(dan, at(9, 0, 5), "page_view", "/d", 0, 3000), ev(dan, at(8, 23, 58), "scroll", "/d", 0, 0),
			ev(eve, at(9, 12, 2), "page_view", "/e", 0, 500)},
		{ev(dan, at(9, 0, 10), "purchase", "/d", protocol.FlagKeyEvent, 0), ev(eve, at(9, 12, 3), "scroll", "/e", 0, 0)},
	}
	for i, b := range batches {
		if _, err := f.writeBatch(ctx, "late-landing", uint64(i+1), b, nil); err != nil {
			t.Fatal(err)
		}
		f.events = append(f.events, b...)
	}
	markSessions(f.events, []uint32{3})
	h := f.handler(t)
	rolled, events := f.routedHandler(t, plan.RouteRollups), f.routedHandler(t, plan.RouteEvents)
	week := []plan.DateRange{{StartDate: "2026-03-04", EndDate: "2026-03-10"}}
	for _, req := range []plan.RunReportRequest{
		{Dimensions: dims("landingPage"), Metrics: mets("eventCount", "screenPageViews", "keyEvents", "userEngagementDuration"),
			DateRanges: week, MetricAggregations: allAggs},
		{Dimensions: dims("date", "landingPage"), Metrics: mets("eventCount"), DateRanges: week},
	} {
		if !f.coveredByRollups(t, 3, req) {
			t.Fatal("the rollups should answer event metrics by landing page")
		}
		got := checkOracle(t, f, rolled, 3, req, false)
		checkOracle(t, f, events, 3, req, false)
		checkOracle(t, f, h, 3, req, false)
		for _, r := range got.Rows {
			if r.DimensionValues[len(req.Dimensions)-1].Value == plan.NotSet {
				t.Fatalf("events left under no landing page: %v", r)
			}
		}
		if len(req.Dimensions) == 1 {
			want := map[string]string{"/d": "5", "/e": "4", "/f": "1"}
			for _, r := range got.Rows {
				if w := want[r.DimensionValues[0].Value]; r.MetricValues[0].Value != w {
					t.Fatalf("landing page %s: %s events, want %s", r.DimensionValues[0].Value, r.MetricValues[0].Value, w)
				}
			}
		}
	}
	// A site of before migration 024 has these rows from page_rollups_from
	// on: earlier days read events, while the other rollups still answer.
	mustExec(t, f.pool, "UPDATE sites SET page_rollups_from = '2026-03-09' WHERE id = 3")
	landing := plan.RunReportRequest{Dimensions: dims("landingPage"), Metrics: mets("eventCount"), DateRanges: week}
	sessions := plan.RunReportRequest{Dimensions: dims("pagePath"), Metrics: mets("sessions"), DateRanges: week}
	views := plan.RunReportRequest{Dimensions: dims("pagePath"), Metrics: mets("screenPageViews"), DateRanges: week}
	if f.coveredByRollups(t, 3, landing) || f.coveredByRollups(t, 3, sessions) {
		t.Fatal("days before page_rollups_from covered by the page rollups")
	}
	if !f.coveredByRollups(t, 3, views) {
		t.Fatal("page views by page no longer covered by the rollups")
	}
	checkOracle(t, f, h, 3, landing, false)
	checkOracle(t, f, h, 3, sessions, false)
	for _, req := range []plan.RunReportRequest{landing, sessions} {
		req.DateRanges = []plan.DateRange{{StartDate: "2026-03-09", EndDate: "2026-03-10"}}
		if !f.coveredByRollups(t, 3, req) {
			t.Fatalf("%v by %v from page_rollups_from on not covered by the rollups", mnames(req), dnames(req))
		}
		checkOracle(t, f, h, 3, req, false)
	}
}

// TestPageSessionsNearExact: on a generated set with thousands of sessions
// per page, sessions by page merged from the rollups' session sketches
// stay within 2% of the exact counts the events give, per row and in
// totals, while the page views match exactly.
func TestPageSessionsNearExact(t *testing.T) {
	f := newFixture(t, 0)
	writeSpread(t, f, rand.New(rand.NewPCG(5, 6)), 12000, 6000, 4000)
	checkNearExact(t, f, plan.RunReportRequest{Dimensions: dims("pagePath"), Metrics: mets("sessions", "screenPageViews"),
		DateRanges: []plan.DateRange{{StartDate: "2026-03-01", EndDate: "2026-03-10"}}, MetricAggregations: []plan.MetricAggregation{"TOTAL"}},
		"screenPageViews", 1000)
}
