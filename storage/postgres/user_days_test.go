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
