package query

import (
	"context"
	"fmt"
	"github.com/avila-analytics/avila/query/plan"
	"testing"
)

// TestActiveUsersMarker: a rollup cell whose active-users sketch equals
// its users sketch stores an empty bytea instead of a copy, in rollup_days
// and in rollup_packs, after derivations, packing and a rebuild; reports
// from the rollups count the same as from events, and the same as when
// those cells hold full copies (rows written before the marker).
func TestActiveUsersMarker(t *testing.T) {
	f := newFixture(t, 400)
	ctx := context.Background()
	reqs := []plan.RunReportRequest{
		{Metrics: mets("totalUsers", "activeUsers", "newUsers")},
		{Dimensions: dims("eventName"), Metrics: mets("activeUsers", "totalUsers")},
		{Dimensions: dims("pagePath"), Metrics: mets("activeUsers")},
		{Dimensions: dims("country", "date"), Metrics: mets("activeUsers", "eventCountPerUser")},
	}
	for i := range reqs {
		reqs[i].DateRanges = []plan.DateRange{{StartDate: "2026-03-01", EndDate: "2026-03-11"}}
		reqs[i].MetricAggregations = []plan.MetricAggregation{"TOTAL"}
		if !f.coveredByRollups(t, 1, reqs[i]) {
			t.Fatalf("report %d not covered by rollups", i)
		}
	}
	report := func(r plan.Route, req plan.RunReportRequest) map[string]string {
		t.Helper()
		out := map[string]string{}
		resp := runRouted(t, f, r, req)
		for _, row := range append(resp.Rows, resp.Totals...) {
			out[fmt.Sprint(row.DimensionValues)] = fmt.Sprint(row.MetricValues)
		}
		return out
	}
	// stored counts site 1's active sketches stored as the marker and
	// stored as a copy of the users sketch, in both tables.
	stored := func() (markers, copies int) {
		t.Helper()
		if err := f.pool.QueryRow(ctx, `SELECT count(*) FILTER (WHERE a = ''::bytea), count(*) FILTER (WHERE a <> ''::bytea AND a = u) FROM (
				SELECT users AS u, active_users AS a FROM rollup_days WHERE site_id = 1
				UNION ALL SELECT x.u, x.a FROM rollup_packs p, unnest(p.users, p.active_users) AS x(u, a) WHERE p.site_id = 1) s`).
			Scan(&markers, &copies); err != nil {
			t.Fatal(err)
		}
		return markers, copies
	}
	check := func(phase string) {
		t.Helper()
		var packed int
		if err := f.pool.QueryRow(ctx, `SELECT count(*) FROM rollup_packs p, unnest(p.active_users) a WHERE p.site_id = 1 AND a = ''::bytea`).
			Scan(&packed); err != nil {
			t.Fatal(err)
		}
		markers, copies := stored()
		if markers == 0 || packed == 0 || copies != 0 {
			t.Errorf("%s: %d active sketches stored as the marker (%d in packs), %d as copies of the users sketch", phase, markers, packed, copies)
		}
		var wrong int
		if err := f.pool.QueryRow(ctx, "SELECT count(*) FROM rollup_days WHERE site_id = 1 AND active_users = ''::bytea AND users IS NULL").
			Scan(&wrong); err != nil || wrong != 0 {
			t.Errorf("%s: %d markers beside no users sketch (%v)", phase, wrong, err)
		}
		for i, req := range reqs {
			want, got := report(plan.RouteEvents, req), report(plan.RouteRollups, req)
			if fmt.Sprint(want) != fmt.Sprint(got) {
				t.Errorf("%s: report %d from the rollups\n%v\nfrom events\n%v", phase, i, got, want)
			}
		}
	}
	check("derived and packed")
	if err := f.store.PackRollups(ctx, fixtureNow); err != nil {
		t.Fatal(err)
	}
	check("packed to yesterday")

	// Full copies (rows written before the marker) read the same.
	compact := make([]map[string]string, len(reqs))
	for i, req := range reqs {
		compact[i] = report(plan.RouteRollups, req)
	}
	mustExec(t, f.pool, "UPDATE rollup_days SET active_users = users WHERE active_users = ''::bytea")
	mustExec(t, f.pool, `UPDATE rollup_packs p SET active_users = (SELECT array_agg(CASE WHEN x.a = ''::bytea THEN x.u ELSE x.a END ORDER BY x.i)
		FROM unnest(p.users, p.active_users) WITH ORDINALITY AS x(u, a, i))`)
	if markers, copies := stored(); markers != 0 || copies == 0 {
		t.Fatalf("expanding the markers left %d markers and %d copies", markers, copies)
	}
	for i, req := range reqs {
		if got := report(plan.RouteRollups, req); fmt.Sprint(got) != fmt.Sprint(compact[i]) {
			t.Errorf("report %d with copies\n%v\nwith markers\n%v", i, got, compact[i])
		}
	}
	if err := f.store.RebuildRollups(ctx, 1); err != nil {
		t.Fatal(err)
	}
	check("rebuilt")
}
