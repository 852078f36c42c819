package postgres

import (
	"context"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// TestPackRollupsPrunesUserDays: the rollups' upkeep drops the user-days
// of days no event may reach any more (userDaysKept days before the
// site's today) and keeps the others.
func TestPackRollupsPrunesUserDays(t *testing.T) {
	s := newStore(t)
	ctx := context.Background()
	site, err := s.CreateSite(ctx, SiteSpec{Name: "prune", TimeZone: "Pacific/Auckland"})
	if err != nil {
		t.Fatal(err)
	}
	now := time.Date(2026, 3, 10, 12, 0, 0, 0, time.UTC) // 11 March in Auckland
	for _, day := range []string{"2026-03-05", "2026-03-06", "2026-03-07", "2026-03-11"} {
		if _, err := s.pool.Exec(ctx, "INSERT INTO rollup_user_days (site_id, day, visitor_id, cells) VALUES ($1, $2::date, 7, '{1}')",
			int32(site.ID), day); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.PackRollups(ctx, now); err != nil {
		t.Fatal(err)
	}
	rows, err := s.pool.Query(ctx, "SELECT day::text FROM rollup_user_days WHERE site_id = $1 ORDER BY day", int32(site.ID))
	if err != nil {
		t.Fatal(err)
	}
	days, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Fatal(err)
	}
	// Auckland's today is the 11th: the 7th to the 11th are kept.
	if got := len(days); got != 2 || days[0] != "2026-03-07" || days[1] != "2026-03-11" {
		t.Errorf("user-days after the upkeep: %v, want [2026-03-07 2026-03-11]", days)
	}
}

// TestReadUserDaysInterleavedRuns: each row's DayActive is whether its
// visitor is active on its local day (stored before, or by any of the
// derivation's events of that day), for runs of visitors interleaved, a
// run crossing midnight and a user-day stored active before: a row takes
// the state of the previous row's user-day only when it shares it.
func TestReadUserDaysInterleavedRuns(t *testing.T) {
	s := newStore(t)
	ctx := context.Background()
	site, err := s.CreateSite(ctx, SiteSpec{Name: "runs"})
	if err != nil {
		t.Fatal(err)
	}
	t0 := time.Date(2026, 12, 6, 23, 58, 0, 0, time.UTC)
	day := localDay(t0, time.UTC)
	if _, err := s.pool.Exec(ctx, "INSERT INTO rollup_user_days (site_id, day, visitor_id, cells) VALUES ($1, $2, 3, NULL)",
		int32(site.ID), dayDate(day)); err != nil {
		t.Fatal(err)
	}
	type ev struct {
		visitor int64
		minute  int // after t0; 2 and later fall on the next day
		engaged bool
	}
	evs := []ev{{1, 0, false}, {1, 0, false}, {2, 0, false}, {1, 1, true}, {1, 2, false}, {2, 1, false},
		{2, 1, false}, {3, 1, false}, {1, 3, false}, {2, 3, true}, {3, 3, false}}
	rows := make([]EventRow, len(evs))
	for i, e := range evs {
		rows[i] = EventRow{Site: int32(site.ID), Visitor: e.visitor, TS: t0.Add(time.Duration(e.minute) * time.Minute)}
		if e.engaged {
			rows[i].Engage = 100
		}
	}
	// Active user-days: visitor 1 on the first day (its minute-1 event),
	// 3 on the first (stored), 2 on the second (its minute-3 event).
	want := []bool{true, true, false, true, false, false, false, true, false, true, false}
	d, err := s.BeginDerive(ctx, site.ID)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Rollback(ctx)
	if _, err := readUserDays(ctx, d.tx, site.ID, rows, &hourCache{loc: time.UTC}); err != nil {
		t.Fatal(err)
	}
	for i := range rows {
		if rows[i].DayActive != want[i] {
			t.Errorf("row %d (visitor %d, minute %d): DayActive %v, want %v", i, evs[i].visitor, evs[i].minute, rows[i].DayActive, want[i])
		}
	}
}
