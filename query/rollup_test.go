package query

import (
	"context"
	"encoding/json"
	"log/slog"
	"math"
	"math/rand/v2"
	"net/http"
	"strconv"
	"testing"
	"time"

	"github.com/avila-analytics/avila/protocol"
	"github.com/avila-analytics/avila/query/engine/rollups"
	"github.com/avila-analytics/avila/query/plan"
)

// routedHandler is f's handler with reports forced onto r's tables.
func (f *fixture) routedHandler(t testing.TB, r plan.Route) *handler {
	t.Helper()
	h := f.handler(t).(*handler)
	h.route = r
	return h
}

// coveredByRollups reports whether the rollups answer req on site.
func (f *fixture) coveredByRollups(t testing.TB, site uint32, req plan.RunReportRequest) bool {
	t.Helper()
	h := newHandler(Options{Logger: slog.New(slog.DiscardHandler), Now: func() time.Time { return fixtureNow }}, f.pool, nil)
	s, err := h.site(context.Background(), site)
	if err != nil {
		t.Fatal(err)
	}
	p, ae := plan.Validate(&req, s, fixtureNow)
	if ae != nil {
		t.Fatal(ae)
	}
	_, ok := rollups.Cover(p)
	return ok
}

// TestRollupUserCountsNearExact: on a generated set with thousands of
// visitors, user counts merged from rollup sketches stay within 2% of the
// exact counts the events give, per row and in totals, while counters match
// exactly.
func TestRollupUserCountsNearExact(t *testing.T) {
	f := newFixture(t, 0)
	writeSpread(t, f, rand.New(rand.NewPCG(3, 4)), 30000, 12000, 5000)
	checkNearExact(t, f, plan.RunReportRequest{Dimensions: dims("pagePath"), Metrics: mets("totalUsers", "activeUsers", "newUsers", "eventCount"),
		DateRanges: []plan.DateRange{{StartDate: "2026-03-01", EndDate: "2026-03-10"}}, MetricAggregations: []plan.MetricAggregation{"TOTAL"}},
		"eventCount", 100)
}

// writeSpread writes n generated events of site 1 over the week from
// 2026-03-02, of visitors distinct visitors, on three pages, in batches of
// batch events.
func writeSpread(t *testing.T, f *fixture, rng *rand.Rand, n, visitors, batch int) {
	t.Helper()
	loc, _ := time.LoadLocation(f.zones[1])
	var events []protocol.Event
	for i := range n {
		ts := time.Date(2026, 3, 2+rng.IntN(7), 0, 0, 0, 0, loc).Add(time.Duration(rng.Int64N(int64(24 * time.Hour))))
		e := randomEvent(rng, 1, ts)
		e.Visitor = uint64(rng.IntN(visitors)) * 0x9e3779b97f4a7c15
		e.Path = fixturePaths[i%3+1]
		events = append(events, e)
	}
	for i := 0; i < len(events); i += batch {
		if _, err := f.writeBatch(context.Background(), "spread", uint64(i), events[i:min(i+batch, len(events))], nil); err != nil {
			t.Fatal(err)
		}
	}
	// The raw engine's plans read the tables' statistics: analyze the
	// fresh partitions as autovacuum would a moment later (without
	// statistics, a session report's join to its sessions was planned as
	// a nested loop over every pair and ran past the report deadline).
	if _, err := f.pool.Exec(context.Background(), "ANALYZE events, sessions"); err != nil {
		t.Fatal(err)
	}
}

// checkNearExact runs req (by pagePath, on site 1, with totals) from the
// rollups and from the events: counter is exact, every other metric within
// 2% and at least least, per page and in totals (estimates within the
// error may order close pages differently).
func checkNearExact(t *testing.T, f *fixture, req plan.RunReportRequest, counter string, least float64) {
	t.Helper()
	if !f.coveredByRollups(t, 1, req) {
		t.Fatal("report not covered by rollups")
	}
	exact := runRouted(t, f, plan.RouteEvents, req)
	est := runRouted(t, f, plan.RouteRollups, req)
	if len(exact.Rows) != 3 || len(est.Rows) != 3 {
		t.Fatalf("rows: exact %d, rollups %d, want 3", len(exact.Rows), len(est.Rows))
	}
	compare := func(what string, want, got plan.Row) {
		t.Helper()
		for i, m := range req.Metrics {
			w, _ := strconv.ParseFloat(want.MetricValues[i].Value, 64)
			g, _ := strconv.ParseFloat(got.MetricValues[i].Value, 64)
			tol := 0.02 * w
			if m.Name == counter {
				tol = 0
			}
			if math.Abs(g-w) > tol || (m.Name != counter && w < least) {
				t.Errorf("%s %s: rollups %v, exact %v", what, m.Name, g, w)
			}
		}
	}
	byPage := map[string]plan.Row{}
	for _, r := range est.Rows {
		byPage[r.DimensionValues[0].Value] = r
	}
	for _, r := range exact.Rows {
		g, ok := byPage[r.DimensionValues[0].Value]
		if !ok {
			t.Fatalf("page %v missing from the rollups' rows %v", r.DimensionValues, est.Rows)
		}
		compare(r.DimensionValues[0].Value, r, g)
	}
	compare("totals", exact.Totals[0], est.Totals[0])
}

func runRouted(t *testing.T, f *fixture, r plan.Route, req plan.RunReportRequest) *plan.RunReportResponse {
	t.Helper()
	code, body := post(t, f.routedHandler(t, r), "1", testKey, req)
	if code != http.StatusOK {
		t.Fatalf("route %d: status %d: %s", r, code, body)
	}
	var resp plan.RunReportResponse
	if err := json.Unmarshal(body, &resp); err != nil {
		t.Fatal(err)
	}
	return &resp
}

// TestRollupsNotCovering: reports the rollups cannot answer read events
// under the automatic route and fail when forced onto rollups.
func TestRollupsNotCovering(t *testing.T) {
	f := newFixture(t, 200)
	cases := []plan.RunReportRequest{
		{Dimensions: dims("dateHourMinute"), Metrics: mets("eventCount")},
		{Dimensions: dims("hour", "pagePath"), Metrics: mets("eventCount")}, // hours are rolled up for all events only
		{Dimensions: dims("date"), Metrics: mets("eventCount"), DimensionFilter: ptr(andF(strF("hour", "EXACT", "07", false),
			strF("browser", "EXACT", "Firefox", false)))},
		{Dimensions: dims("pagePath", "country"), Metrics: mets("eventCount")},
		{Dimensions: dims("customEvent:plan"), Metrics: mets("eventCount")},
		{Dimensions: dims("city"), Metrics: mets("eventCount")},
		{Dimensions: dims("pagePath"), Metrics: mets("eventCount"), MetricFilter: &plan.FilterExpression{Filter: &plan.Filter{FieldName: "eventCount",
			NumericFilter: &plan.NumericFilter{Operation: "GREATER_THAN", Value: i64(1)}}}},
	}
	for i, req := range cases {
		req.DateRanges = []plan.DateRange{{StartDate: "2026-03-01", EndDate: "today"}}
		if f.coveredByRollups(t, 1, req) {
			t.Errorf("case %d: covered by rollups", i)
		}
		if code, body := post(t, f.routedHandler(t, plan.RouteRollups), "1", testKey, req); code != http.StatusInternalServerError {
			t.Errorf("case %d forced onto rollups: %d %s, want 500", i, code, body)
		}
		checkOracle(t, f, f.handler(t), 1, req, false)
	}
	// Days before the site's rollups are complete read events.
	mustExec(t, f.pool, "UPDATE sites SET rollups_from = '2026-03-05' WHERE id = 1")
	req := plan.RunReportRequest{Dimensions: dims("date"), Metrics: mets("eventCount"), DateRanges: []plan.DateRange{{StartDate: "2026-03-04", EndDate: "today"}}}
	if f.coveredByRollups(t, 1, req) {
		t.Error("range before rollups_from covered by rollups")
	}
	req.DateRanges[0].StartDate = "2026-03-05"
	if !f.coveredByRollups(t, 1, req) {
		t.Error("range from rollups_from not covered by rollups")
	}
	// Hourly rows have their own start (sites that existed before them).
	mustExec(t, f.pool, "UPDATE sites SET hour_rollups_from = '2026-03-07' WHERE id = 1")
	hours := plan.RunReportRequest{Dimensions: dims("dateHour"), Metrics: mets("eventCount"), DateRanges: []plan.DateRange{{StartDate: "2026-03-06", EndDate: "today"}}}
	if f.coveredByRollups(t, 1, hours) {
		t.Error("hours before hour_rollups_from covered by rollups")
	}
	if !f.coveredByRollups(t, 1, req) {
		t.Error("days covered by daily rollups no longer covered")
	}
	hours.DateRanges[0].StartDate = "2026-03-07"
	if !f.coveredByRollups(t, 1, hours) {
		t.Error("hours from hour_rollups_from not covered by rollups")
	}
}

// TestHourlyRollupsCover: reports by hour and dateHour, alone or with day
// dimensions and an hour filter, read the hourly rollups and agree with the
// oracle (checked against every route in TestReportsMatchOracle too).
func TestHourlyRollupsCover(t *testing.T) {
	f := newFixture(t, 300)
	for i, req := range []plan.RunReportRequest{
		{Dimensions: dims("hour"), Metrics: mets("eventCount", "activeUsers", "screenPageViews")},
		{Dimensions: dims("dateHour"), Metrics: mets("totalUsers", "newUsers", "userEngagementDuration")},
		{Dimensions: dims("date", "hour"), Metrics: mets("keyEvents"), DimensionFilter: ptr(strF("hour", "BEGINS_WITH", "1", false))},
		{Dimensions: dims("dayOfWeek"), Metrics: mets("eventCount"), DimensionFilter: ptr(notF(strF("hour", "EXACT", "00", false)))},
	} {
		req.DateRanges = []plan.DateRange{{StartDate: "2026-03-01", EndDate: "today"}}
		req.MetricAggregations = allAggs
		if !f.coveredByRollups(t, 1, req) {
			t.Fatalf("case %d: not covered by rollups", i)
		}
		got := checkOracle(t, f, f.routedHandler(t, plan.RouteRollups), 1, req, false)
		if len(got.Rows) < 2 {
			t.Fatalf("case %d: %d rows", i, len(got.Rows))
		}
	}
}

// TestFixtureHasPackedRollups: the fixture's rollups mix packed days,
// unpacked days and late rows on packed days, so the oracle tests cover
// reports adding rollup_packs and rollup_days.
func TestFixtureHasPackedRollups(t *testing.T) {
	f := newFixture(t, 300)
	var packs, unpacked, late int
	if err := f.pool.QueryRow(context.Background(), `SELECT (SELECT count(*) FROM rollup_packs),
		(SELECT count(*) FROM rollup_days),
		(SELECT count(*) FROM rollup_days r WHERE EXISTS (SELECT FROM rollup_packs p WHERE (p.site_id, p.kind, p.day) = (r.site_id, r.kind, r.day)))`).
		Scan(&packs, &unpacked, &late); err != nil {
		t.Fatal(err)
	}
	if packs == 0 || unpacked == 0 || late == 0 {
		t.Fatalf("%d packs, %d rollup_days rows, %d of them on packed days: want all > 0", packs, unpacked, late)
	}
}
