package query

import (
	"context"
	"testing"
	"time"

	"github.com/avila-analytics/avila/protocol"
	"github.com/avila-analytics/avila/query/plan"
	"github.com/avila-analytics/avila/storage/postgres"
)

// TestNewUsersMarker: a rollup cell whose new-users sketch equals its
// active-users sketch stores an empty bytea as the new-users sketch, in
// rollup_days, rollup_packs and session_rollups, after derivations,
// packing, a derivation that makes a marked cell's active users differ
// from its new users (the new-users sketch then stored whole), an
// erasure and a rebuild; reports of newUsers from the rollups count the
// same as from events, and the same as when those cells hold full copies
// (rows written before the marker).
func TestNewUsersMarker(t *testing.T) {
	// Four visitors in five come on a first visit at each of their events,
	// the others never: cells of only the first kind hold new users equal
	// to active users, cells with both hold them apart.
	f := newFixtureOf(t, 400, func(e *protocol.Event) {
		e.Flags &^= protocol.FlagFirstVisit
		if (e.Visitor>>58)%5 != 0 {
			e.Flags |= protocol.FlagFirstVisit
		}
	})
	ctx := context.Background()
	reqs := []plan.RunReportRequest{
		{Metrics: mets("newUsers", "activeUsers", "totalUsers")},
		{Dimensions: dims("pagePath"), Metrics: mets("newUsers")},
		{Dimensions: dims("eventName"), Metrics: mets("newUsers", "activeUsers")},
		{Dimensions: dims("date"), Metrics: mets("newUsers", "totalUsers")},
		// Cell by cell: a sketch merged wrong in one day's cell would hide
		// in the union over days.
		{Dimensions: dims("pagePath", "date"), Metrics: mets("newUsers", "totalUsers", "activeUsers")},
		{Dimensions: dims("country", "date"), Metrics: mets("newUsers")},
		{Dimensions: dims("pageTitle", "date"), Metrics: mets("newUsers")},
		// session_rollups.
		{Dimensions: dims("sessionSource"), Metrics: mets("newUsers", "sessions")},
		{Dimensions: dims("sessionSource", "date"), Metrics: mets("newUsers", "totalUsers", "activeUsers")},
		{Dimensions: dims("date"), Metrics: mets("newUsers", "sessions")},
	}
	coverAll(t, f, 1, reqs)
	// tables are site 1's cells (new users, active users) by table.
	tables := map[string]string{
		"rollup_days":     "SELECT new_users AS n, active_users AS a FROM rollup_days WHERE site_id = 1",
		"rollup_packs":    "SELECT x.n, x.a FROM rollup_packs p, unnest(p.new_users, p.active_users) AS x(n, a) WHERE p.site_id = 1",
		"session_rollups": "SELECT new_users AS n, active_users AS a FROM session_rollups WHERE site_id = 1",
	}
	// stored counts a table's new-users sketches stored as the marker,
	// those stored as a copy of the active sketch, the cells whose new and
	// active sketches differ, and markers beside no active sketch.
	type counts struct{ markers, copies, differ, orphans int }
	stored := func(table string) counts {
		t.Helper()
		var c counts
		if err := f.pool.QueryRow(ctx, `SELECT count(*) FILTER (WHERE n = ''::bytea), count(*) FILTER (WHERE n <> ''::bytea AND a = n),
				count(*) FILTER (WHERE n <> ''::bytea AND a <> n), count(*) FILTER (WHERE n = ''::bytea AND a IS NULL) FROM (`+tables[table]+`) s`).
			Scan(&c.markers, &c.copies, &c.differ, &c.orphans); err != nil {
			t.Fatal(err)
		}
		return c
	}
	same := func(phase string, want []map[string]string) {
		t.Helper()
		sameOnRollups(t, f, phase, reqs, want)
	}
	check := func(phase string, in ...string) {
		t.Helper()
		differ := 0
		for _, table := range in {
			c := stored(table)
			if c.markers == 0 || c.copies != 0 || c.orphans != 0 {
				t.Errorf("%s: %s holds %d new-users sketches as the marker, %d as copies of the active sketch, %d markers beside no active sketch",
					phase, table, c.markers, c.copies, c.orphans)
			}
			differ += c.differ
		}
		if differ == 0 {
			t.Errorf("%s: no cell with new users beside other active users", phase)
		}
		same(phase+", from the rollups against events", routedAll(t, f, plan.RouteEvents, reqs))
	}
	check("derived and packed", "rollup_days", "rollup_packs", "session_rollups")

	// A late event of a returning, active visitor on a page cell of
	// rollup_days whose new-users sketch is the marker: the cell's active
	// sketch takes the visitor, its new-users sketch does not, so the
	// derivation stores it whole.
	var day time.Time
	var page int32
	if err := f.pool.QueryRow(ctx, `SELECT day, dim_id FROM rollup_days
			WHERE site_id = 1 AND kind = $1 AND dim_id > 0 AND new_users = ''::bytea ORDER BY 1, 2 LIMIT 1`, int16(postgres.DimPagePath)).Scan(&day, &page); err != nil {
		t.Fatal(err)
	}
	late := latePageView(t, f, 1, day, page, 7)
	late.Visitor, late.Flags, late.EngageMs = 42<<58, protocol.FlagEngaged, 5000
	if _, err := f.writeBatch(ctx, "late", 1, []protocol.Event{late}, nil); err != nil {
		t.Fatal(err)
	}
	var form string
	if err := f.pool.QueryRow(ctx, `SELECT CASE WHEN new_users = ''::bytea THEN 'marker' WHEN new_users = active_users THEN 'copy' ELSE 'whole' END
			FROM rollup_days WHERE site_id = 1 AND kind = $1 AND day = $2 AND dim_id = $3`, int16(postgres.DimPagePath), day, page).Scan(&form); err != nil || form != "whole" {
		t.Errorf("the page cell with a late returning active user holds its new-users sketch as %q (%v), want it whole", form, err)
	}
	check("a returning visitor added", "rollup_days", "rollup_packs", "session_rollups")

	if err := f.store.PackRollups(ctx, fixtureNow); err != nil {
		t.Fatal(err)
	}
	check("packed to yesterday", "rollup_packs", "session_rollups")

	// An erasure corrects the subject's cells, packed and not, and its
	// session cells in this form.
	eraseBusiest(t, f, 1, "events")
	check("erased", "rollup_packs", "session_rollups")
	eraseBusiest(t, f, 1, "sessions")
	check("sessions erased", "rollup_packs", "session_rollups")

	// Full copies (rows written before the marker) read the same.
	compact := routedAll(t, f, plan.RouteRollups, reqs)
	mustExec(t, f.pool, "UPDATE rollup_days SET new_users = active_users WHERE new_users = ''::bytea")
	mustExec(t, f.pool, "UPDATE session_rollups SET new_users = active_users WHERE new_users = ''::bytea")
	mustExec(t, f.pool, `UPDATE rollup_packs p SET new_users = (SELECT array_agg(CASE WHEN x.n = ''::bytea THEN x.a ELSE x.n END ORDER BY x.i)
		FROM unnest(p.new_users, p.active_users) WITH ORDINALITY AS x(n, a, i)) WHERE p.ref_kind IS NULL`)
	for table := range tables {
		if c := stored(table); c.markers != 0 {
			t.Fatalf("expanding the markers left %d in %s", c.markers, table)
		}
	}
	same("with copies", compact)

	if err := f.store.RebuildSessions(ctx, 1); err != nil {
		t.Fatal(err)
	}
	if err := f.store.RebuildRollups(ctx, 1); err != nil {
		t.Fatal(err)
	}
	check("rebuilt", "rollup_packs", "session_rollups")
}
