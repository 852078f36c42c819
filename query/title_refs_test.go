package query

import (
	"context"
	"fmt"
	"math/rand/v2"
	"strconv"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/avila-analytics/avila/protocol"
	"github.com/avila-analytics/avila/query/plan"
	"github.com/avila-analytics/avila/storage/postgres"
)

// TestTitlePackRefs: on a site giving each page path one title, the page
// title kinds' packs are stored as references to the page path kinds'
// (migration 029); reports by pageTitle from the rollups count the same
// as from events, and the same as with every pack holding its own values,
// after derivation and packing, a late event that gives a packed page a
// second title (its day's title packs then hold their own values), an
// erasure on days whose title packs are references, and a rebuild. On the
// fixture of the other tests, whose titles are drawn apart from the
// paths, no pack is a reference.
func TestTitlePackRefs(t *testing.T) {
	titles := map[string]string{}
	for i, p := range fixturePaths[1:] {
		titles[p] = "Title " + strconv.Itoa(i) + " of " + p
	}
	var purchases int
	f := newFixtureOf(t, 400, func(e *protocol.Event) {
		e.Title = titles[e.Path]
		if e.Name == "purchase" {
			purchases++
			e.Value, e.Currency, e.TransactionID = float64(purchases%40)+0.25, "USD", "T"+strconv.Itoa(purchases)
		}
	})
	ctx := context.Background()
	reqs := []plan.RunReportRequest{
		{Dimensions: dims("pageTitle"), Metrics: mets("screenPageViews", "activeUsers", "eventCount")},
		{Dimensions: dims("pageTitle"), Metrics: mets("totalUsers", "newUsers", "keyEvents")},
		{Dimensions: dims("pageTitle"), Metrics: mets("purchaseRevenue", "userEngagementDuration")},
		{Dimensions: dims("pageTitle"), Metrics: mets("sessions", "screenPageViews")},
		{Dimensions: dims("pageTitle", "date"), Metrics: mets("activeUsers", "totalUsers", "screenPageViews")},
		{Dimensions: dims("pageTitle", "date"), Metrics: mets("sessions")},
		{Dimensions: dims("pagePath"), Metrics: mets("sessions", "screenPageViews")},
		{Dimensions: dims("pagePath"), Metrics: mets("activeUsers", "purchaseRevenue")},
	}
	coverAll(t, f, 1, reqs)
	report := func(r plan.Route, req plan.RunReportRequest) map[string]string {
		t.Helper()
		return routedRows(t, f, r, req)
	}
	// refs counts site 1's packs stored as references, those of them at
	// positions of their own (ref_pos), and the title packs holding their
	// own values.
	refs := func() (refs, positioned, own int) {
		t.Helper()
		if err := f.pool.QueryRow(ctx, `SELECT count(*) FILTER (WHERE ref_kind IS NOT NULL), count(*) FILTER (WHERE ref_pos IS NOT NULL),
				count(*) FILTER (WHERE ref_kind IS NULL) FROM rollup_packs WHERE site_id = 1 AND kind IN ($1, $2)`,
			int16(postgres.DimTitle), int16(postgres.RollupTitleSessions)).Scan(&refs, &positioned, &own); err != nil {
			t.Fatal(err)
		}
		return refs, positioned, own
	}
	check := func(phase string) {
		t.Helper()
		for i, req := range reqs {
			want, got := report(plan.RouteEvents, req), report(plan.RouteRollups, req)
			if len(want) < 3 {
				t.Fatalf("%s: report %d has %d rows: it proves little", phase, i, len(want))
			}
			if fmt.Sprint(got) != fmt.Sprint(want) {
				t.Errorf("%s: report %d from the rollups\n%v\nfrom events\n%v", phase, i, got, want)
			}
		}
	}
	if r, pos, _ := refs(); r == 0 || pos == 0 {
		t.Fatalf("derived and packed: %d title packs stored as references (%d with positions)", r, pos)
	}
	check("derived and packed")

	// A late event of a packed day gives a page a second title: that
	// day's title packs hold their own values; the others stay references.
	var day time.Time
	if err := f.pool.QueryRow(ctx, `SELECT day FROM rollup_packs WHERE site_id = 1 AND kind = $1 AND ref_kind IS NOT NULL ORDER BY day DESC LIMIT 1`,
		int16(postgres.DimTitle)).Scan(&day); err != nil {
		t.Fatal(err)
	}
	loc, err := time.LoadLocation(f.zones[1])
	if err != nil {
		t.Fatal(err)
	}
	late := randomEvent(rand.New(rand.NewPCG(7, 8)), 1, time.Date(day.Year(), day.Month(), day.Day(), 12, 0, 0, 0, loc))
	late.Name, late.Path, late.Title = "page_view", "/a", "Another title of /a"
	if _, err := f.writeBatch(ctx, "late", 1, []protocol.Event{late}, nil); err != nil {
		t.Fatal(err)
	}
	if err := f.store.PackRollups(ctx, fixtureNow); err != nil {
		t.Fatal(err)
	}
	var lateRefs int
	if err := f.pool.QueryRow(ctx, `SELECT count(*) FROM rollup_packs WHERE site_id = 1 AND kind = $1 AND day = $2 AND ref_kind IS NOT NULL`,
		int16(postgres.DimTitle), day).Scan(&lateRefs); err != nil || lateRefs != 0 {
		t.Errorf("the title pack of %s holds two titles of one path and is a reference (%d, %v)", day.Format(time.DateOnly), lateRefs, err)
	}
	if r, _, own := refs(); r == 0 || own == 0 {
		t.Errorf("after the late event: %d references, %d title packs with their own values", r, own)
	}
	check("a late second title")

	// An erasure of the most active visitor: days whose title packs are
	// references have their path and title cells corrected together.
	before, _, _ := refs()
	refDays := func() map[time.Time]bool {
		t.Helper()
		rows, err := f.pool.Query(ctx, "SELECT day FROM rollup_packs WHERE site_id = 1 AND kind = $1 AND ref_kind IS NOT NULL", int16(postgres.DimTitle))
		if err != nil {
			t.Fatal(err)
		}
		days, err := pgx.CollectRows(rows, pgx.RowTo[time.Time])
		if err != nil {
			t.Fatal(err)
		}
		out := map[time.Time]bool{}
		for _, d := range days {
			out[d] = true
		}
		return out
	}
	wereRefs := refDays()
	subject := eraseBusiest(t, f, 1, "events")
	// The subject's sessions began on days whose title packs were
	// references: the erasure corrected their cells.
	var touched int
	for _, e := range f.events {
		if e.Site == 1 && int64(e.Visitor) == subject {
			y, m, d := time.UnixMicro(e.TimeMicros).In(loc).Date()
			if wereRefs[time.Date(y, m, d, 0, 0, 0, 0, time.UTC)] {
				touched++
			}
		}
	}
	if touched == 0 {
		t.Fatalf("the erased subject has no event on a day whose title pack was a reference")
	}
	if r, _, _ := refs(); r == 0 || r < before-1 {
		t.Errorf("erased: %d references, %d before", r, before)
	}
	check("erased")

	// Every pack holding its own values (as written before migration 029)
	// reads the same.
	compact := routedAll(t, f, plan.RouteRollups, reqs)
	mustExec(t, f.pool, `UPDATE rollup_packs p SET events = q.events, page_views = q.page_views, key_events = q.key_events,
			engagement_ms = q.engagement_ms, users = q.users, active_users = q.active_users, new_users = q.new_users, amounts = q.amounts,
			ref_kind = NULL, ref_pos = NULL
		FROM (SELECT r.site_id, r.kind, r.day, x.* FROM rollup_packs r, LATERAL (
			SELECT array_agg(c.events ORDER BY o.o) AS events, array_agg(c.page_views ORDER BY o.o) AS page_views,
				array_agg(c.key_events ORDER BY o.o) AS key_events, array_agg(c.engagement_ms ORDER BY o.o) AS engagement_ms,
				array_agg(c.users ORDER BY o.o) AS users, array_agg(c.active_users ORDER BY o.o) AS active_users,
				array_agg(c.new_users ORDER BY o.o) AS new_users,
				CASE WHEN t.amounts IS NOT NULL THEN (SELECT array_agg(t.amounts[(pp - 1) * $1 + s] ORDER BY oo, s)
					FROM unnest(COALESCE(r.ref_pos, (SELECT array_agg(g) FROM generate_series(1, cardinality(t.dim_ids)) g))) WITH ORDINALITY AS z(pp, oo),
						generate_series(1, $1) s) END AS amounts
			FROM rollup_packs t,
				unnest(COALESCE(r.ref_pos, (SELECT array_agg(g) FROM generate_series(1, cardinality(t.dim_ids)) g))) WITH ORDINALITY AS o(i, o),
				unnest(t.events, t.page_views, t.key_events, t.engagement_ms, t.users, t.active_users, t.new_users) WITH ORDINALITY
					AS c(events, page_views, key_events, engagement_ms, users, active_users, new_users, n)
			WHERE t.site_id = r.site_id AND t.kind = r.ref_kind AND t.day = r.day AND c.n = o.i
			GROUP BY t.amounts, t.dim_ids) x
			WHERE r.ref_kind IS NOT NULL) q
		WHERE p.site_id = q.site_id AND p.kind = q.kind AND p.day = q.day`, postgres.NumAmounts)
	if r, _, _ := refs(); r != 0 {
		t.Fatalf("%d references left", r)
	}
	for i, req := range reqs {
		if got := report(plan.RouteRollups, req); fmt.Sprint(got) != fmt.Sprint(compact[i]) {
			t.Errorf("packs with their own values: report %d\n%v\nwant\n%v", i, got, compact[i])
		}
	}

	if err := f.store.RebuildRollups(ctx, 1); err != nil {
		t.Fatal(err)
	}
	if r, _, _ := refs(); r == 0 {
		t.Errorf("rebuilt: no title pack stored as a reference")
	}
	check("rebuilt")

	// Titles drawn apart from the paths: every pack holds its own values.
	g := newFixture(t, 400)
	var n int
	if err := g.pool.QueryRow(ctx, "SELECT count(*) FROM rollup_packs WHERE ref_kind IS NOT NULL").Scan(&n); err != nil || n != 0 {
		t.Errorf("titles apart from paths: %d packs stored as references (%v)", n, err)
	}
}
