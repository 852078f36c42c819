package query

import (
	"context"
	"testing"
	"time"

	"github.com/avila-analytics/avila/protocol"
	"github.com/avila-analytics/avila/query/plan"
	"github.com/avila-analytics/avila/storage/postgres"
)

// TestUsersMarker: a rollup cell whose users sketch equals its active-users
// sketch stores an empty bytea as the users sketch and the active sketch
// whole, in rollup_days and in rollup_packs, after derivations, packing (a
// late row merged into a packed marker cell included), an erasure,
// migration 027 (over cells in the earlier form, the active sketch stored
// as the marker) and a rebuild; reports from the rollups count the same as
// from events, and the same as when those cells hold full copies (rows
// written before the marker).
func TestUsersMarker(t *testing.T) {
	f := newFixture(t, 400)
	ctx := context.Background()
	reqs := []plan.RunReportRequest{
		{Metrics: mets("totalUsers", "activeUsers", "newUsers")},
		{Dimensions: dims("eventName"), Metrics: mets("activeUsers", "totalUsers")},
		{Dimensions: dims("pagePath"), Metrics: mets("activeUsers")},
		{Dimensions: dims("pagePath"), Metrics: mets("totalUsers", "screenPageViews")},
		{Dimensions: dims("country", "date"), Metrics: mets("activeUsers", "eventCountPerUser")},
		{Dimensions: dims("date"), Metrics: mets("totalUsers")},
		// Cell by cell: a sketch merged wrong in one day's cell would hide
		// in the union over days.
		{Dimensions: dims("pagePath", "date"), Metrics: mets("totalUsers", "activeUsers")},
		{Dimensions: dims("eventName", "date"), Metrics: mets("totalUsers", "activeUsers")},
	}
	coverAll(t, f, 1, reqs)
	// cells are site 1's rollup cells of both tables (users, active).
	const cells = `(SELECT users AS u, active_users AS a FROM rollup_days WHERE site_id = 1
		UNION ALL SELECT x.u, x.a FROM rollup_packs p, unnest(p.users, p.active_users) AS x(u, a) WHERE p.site_id = 1) s`
	// stored counts site 1's users sketches stored as the marker, those
	// stored as a copy of the active sketch, the active sketches stored as
	// the marker, and the cells whose users and active sketches differ.
	type counts struct{ markers, copies, activeMarkers, differ int }
	stored := func() counts {
		t.Helper()
		var c counts
		if err := f.pool.QueryRow(ctx, `SELECT count(*) FILTER (WHERE u = ''::bytea), count(*) FILTER (WHERE u <> ''::bytea AND a = u),
				count(*) FILTER (WHERE a = ''::bytea), count(*) FILTER (WHERE u <> ''::bytea AND a <> ''::bytea AND a <> u) FROM `+cells).
			Scan(&c.markers, &c.copies, &c.activeMarkers, &c.differ); err != nil {
			t.Fatal(err)
		}
		return c
	}
	same := func(phase string, want []map[string]string) {
		t.Helper()
		sameOnRollups(t, f, phase, reqs, want)
	}
	check := func(phase string) {
		t.Helper()
		var packed int
		if err := f.pool.QueryRow(ctx, `SELECT count(*) FROM rollup_packs p, unnest(p.users) u WHERE p.site_id = 1 AND u = ''::bytea`).
			Scan(&packed); err != nil {
			t.Fatal(err)
		}
		c := stored()
		if c.markers == 0 || packed == 0 || c.copies != 0 || c.activeMarkers != 0 || c.differ == 0 {
			t.Errorf("%s: %d users sketches stored as the marker (%d in packs), %d as copies of the active sketch, %d active sketches as the marker, %d cells with users beside other active users",
				phase, c.markers, packed, c.copies, c.activeMarkers, c.differ)
		}
		var wrong int
		if err := f.pool.QueryRow(ctx, "SELECT count(*) FROM "+cells+" WHERE u = ''::bytea AND a IS NULL").Scan(&wrong); err != nil || wrong != 0 {
			t.Errorf("%s: %d markers beside no active sketch (%v)", phase, wrong, err)
		}
		same(phase+", from the rollups against events", routedAll(t, f, plan.RouteEvents, reqs))
	}
	check("derived and packed")
	// A late event of a new, inactive visitor on a packed page cell whose
	// users sketch is the marker: packing merges its row into the pack, whose
	// users sketch then differs from the active one.
	var day time.Time
	var page int32
	if err := f.pool.QueryRow(ctx, `SELECT p.day, x.d FROM rollup_packs p, unnest(p.dim_ids, p.users) AS x(d, u)
			WHERE p.site_id = 1 AND p.kind = $1 AND p.day >= '2026-03-01' AND x.u = ''::bytea ORDER BY 1, 2 LIMIT 1`, int16(postgres.DimPagePath)).Scan(&day, &page); err != nil {
		t.Fatal(err)
	}
	late := latePageView(t, f, 1, day, page, 5)
	late.Visitor, late.Flags, late.EngageMs = 41<<58, 0, 0
	if _, err := f.writeBatch(ctx, "late", 1, []protocol.Event{late}, nil); err != nil {
		t.Fatal(err)
	}
	if err := f.store.PackRollups(ctx, fixtureNow); err != nil {
		t.Fatal(err)
	}
	var merged string
	if err := f.pool.QueryRow(ctx, `SELECT CASE WHEN x.u = ''::bytea THEN 'marker' WHEN x.u = x.a THEN 'copy' ELSE 'whole' END
			FROM rollup_packs p, unnest(p.dim_ids, p.users, p.active_users) AS x(d, u, a)
			WHERE p.site_id = 1 AND p.kind = $1 AND p.day = $2 AND x.d = $3`, int16(postgres.DimPagePath), day, page).Scan(&merged); err != nil || merged != "whole" {
		t.Errorf("the packed cell with a late inactive user holds its users sketch as %q (%v), want it whole", merged, err)
	}
	check("packed to yesterday")

	// An erasure corrects the subject's cells, packed and not, in this form.
	eraseBusiest(t, f, 1, "events")
	check("erased")

	// Full copies (rows written before the marker) read the same.
	compact := routedAll(t, f, plan.RouteRollups, reqs)
	mustExec(t, f.pool, "UPDATE rollup_days SET users = active_users WHERE users = ''::bytea")
	mustExec(t, f.pool, `UPDATE rollup_packs p SET users = (SELECT array_agg(CASE WHEN x.u = ''::bytea THEN x.a ELSE x.u END ORDER BY x.i)
		FROM unnest(p.users, p.active_users) WITH ORDINALITY AS x(u, a, i))`)
	if c := stored(); c.markers != 0 || c.copies == 0 {
		t.Fatalf("expanding the markers left %d markers and %d copies", c.markers, c.copies)
	}
	same("with copies", compact)

	// The earlier form (the active sketch as the marker), as databases
	// before migration 027 hold it: the migration turns it into this one.
	mustExec(t, f.pool, "UPDATE rollup_days SET active_users = ''::bytea WHERE active_users = users")
	mustExec(t, f.pool, `UPDATE rollup_packs p SET active_users = (SELECT array_agg(CASE WHEN x.a = x.u THEN ''::bytea ELSE x.a END ORDER BY x.i)
		FROM unnest(p.users, p.active_users) WITH ORDINALITY AS x(u, a, i))`)
	if c := stored(); c.activeMarkers == 0 || c.markers != 0 || c.copies != 0 {
		t.Fatalf("the earlier form has %d active markers, %d users markers, %d copies", c.activeMarkers, c.markers, c.copies)
	}
	mustExec(t, f.pool, "UPDATE public.schema_version SET version = 26")
	if err := f.store.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	check("migrated from the earlier form")
	same("migrated from the earlier form", compact)

	if err := f.store.RebuildRollups(ctx, 1); err != nil {
		t.Fatal(err)
	}
	check("rebuilt")
}
