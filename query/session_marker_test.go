package query

import (
	"context"
	"testing"

	"github.com/avila-analytics/avila/query/plan"
)

// TestSessionUsersMarker: a session_rollups cell whose users sketch equals
// its active-users sketch stores an empty bytea as the users sketch and
// the active sketch whole, as rollup cells do, after derivations, an
// erasure and a rebuild; session reports from the rollups count the same
// as from events, and the same as when those cells hold full copies (rows
// written before the marker).
func TestSessionUsersMarker(t *testing.T) {
	f := newFixture(t, 400)
	ctx := context.Background()
	reqs := []plan.RunReportRequest{
		{Metrics: mets("sessions", "totalUsers", "activeUsers", "newUsers")},
		{Dimensions: dims("sessionSource"), Metrics: mets("totalUsers", "activeUsers", "sessions")},
		{Dimensions: dims("country"), Metrics: mets("totalUsers", "engagedSessions")},
		// Cell by cell: a sketch merged wrong in one day's cell would hide
		// in the union over days.
		{Dimensions: dims("sessionSource", "date"), Metrics: mets("totalUsers", "activeUsers")},
		{Dimensions: dims("date"), Metrics: mets("totalUsers", "newUsers", "sessions")},
	}
	coverAll(t, f, 1, reqs)
	// stored counts site 1's session_rollups users sketches stored as the
	// marker, those stored as a copy of the active sketch, and the cells
	// whose users and active sketches differ.
	type counts struct{ markers, copies, differ int }
	stored := func() counts {
		t.Helper()
		var c counts
		if err := f.pool.QueryRow(ctx, `SELECT count(*) FILTER (WHERE users = ''::bytea), count(*) FILTER (WHERE users <> ''::bytea AND active_users = users),
				count(*) FILTER (WHERE users <> ''::bytea AND active_users <> users) FROM session_rollups WHERE site_id = 1`).
			Scan(&c.markers, &c.copies, &c.differ); err != nil {
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
		if c := stored(); c.markers == 0 || c.copies != 0 || c.differ == 0 {
			t.Errorf("%s: %d users sketches stored as the marker, %d as copies of the active sketch, %d cells with users beside other active users",
				phase, c.markers, c.copies, c.differ)
		}
		var wrong int
		if err := f.pool.QueryRow(ctx, "SELECT count(*) FROM session_rollups WHERE users = ''::bytea AND active_users IS NULL").Scan(&wrong); err != nil || wrong != 0 {
			t.Errorf("%s: %d markers beside no active sketch (%v)", phase, wrong, err)
		}
		same(phase+", from the rollups against events", routedAll(t, f, plan.RouteEvents, reqs))
	}
	check("derived")

	// An erasure corrects the subject's session cells in this form.
	eraseBusiest(t, f, 1, "sessions")
	check("erased")

	// Full copies (rows written before the marker) read the same.
	compact := routedAll(t, f, plan.RouteRollups, reqs)
	mustExec(t, f.pool, "UPDATE session_rollups SET users = active_users WHERE users = ''::bytea")
	if c := stored(); c.markers != 0 || c.copies == 0 {
		t.Fatalf("expanding the markers left %d markers and %d copies", c.markers, c.copies)
	}
	same("with copies", compact)

	if err := f.store.RebuildSessions(ctx, 1); err != nil {
		t.Fatal(err)
	}
	if err := f.store.RebuildRollups(ctx, 1); err != nil {
		t.Fatal(err)
	}
	check("rebuilt")
}
