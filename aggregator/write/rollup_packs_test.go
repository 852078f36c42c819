package write

import (
	"context"
	"testing"
	"time"

	"github.com/avila-analytics/avila/storage/postgres"
	"github.com/google/go-cmp/cmp"
)

// rollupRowsSQL is every rollup row, of rollup_days and unnested from
// rollup_packs; a key may have a row in each (late events of a packed day).
const rollupRowsSQL = `(SELECT site_id, kind, day, dim_id, events, page_views, key_events, engagement_ms, users, active_users, new_users FROM rollup_days
	UNION ALL SELECT p.site_id, p.kind, p.day, u.* FROM rollup_packs p,
		unnest(p.dim_ids, p.events, p.page_views, p.key_events, p.engagement_ms, p.users, p.active_users, p.new_users)
		AS u(dim_id, events, page_views, key_events, engagement_ms, users, active_users, new_users))`

// TestPackRollups: packing moves closed days into rollup_packs without
// changing a counter or a sketch; late events of a packed day add rows
// that the next pass merges into the pack.
func TestPackRollups(t *testing.T) {
	s := newStore(t)
	ctx := context.Background()
	site, err := s.CreateSite(ctx, postgres.SiteSpec{Name: "p", TimeZone: "Europe/Madrid"})
	if err != nil {
		t.Fatal(err)
	}
	events := rollupEvents(site.ID, 6000) // 2025-06-01 to 06-04, Madrid
	if _, err := s.WriteBatch(ctx, "a", 1, events[:5000], nil); err != nil {
		t.Fatal(err)
	}
	want := exactRollups(t, s, site.ID)
	var users [3]uint64
	users[0], users[1], users[2] = dayUsers(t, s, site.ID, "2025-06-02")

	// At noon of 06-04 in Madrid, days before 06-03 are closed.
	now := time.Date(2025, 6, 4, 10, 0, 0, 0, time.UTC)
	if err := s.PackRollups(ctx, now); err != nil {
		t.Fatal(err)
	}
	if n := count(t, s, "SELECT count(*) FROM rollup_days WHERE site_id = $1 AND day < '2025-06-03'", int32(site.ID)); n != 0 {
		t.Errorf("%d rows of closed days left in rollup_days", n)
	}
	if n := count(t, s, "SELECT count(DISTINCT day) FROM rollup_packs WHERE site_id = $1", int32(site.ID)); n != 2 {
		t.Errorf("packs on %d days, want 2 (06-01, 06-02)", n)
	}
	if n := count(t, s, "SELECT count(*) FROM rollup_days WHERE site_id = $1 AND day >= '2025-06-03'", int32(site.ID)); n == 0 {
		t.Error("open days were packed")
	}
	if diff := cmp.Diff(want, storedRollups(t, s, site.ID)); diff != "" {
		t.Fatalf("rollups after packing (-exact +stored):\n%s", diff)
	}
	if u, a, n := dayUsers(t, s, site.ID, "2025-06-02"); [3]uint64{u, a, n} != users {
		t.Errorf("packed sketches estimate %d %d %d, unpacked %d %d %d", u, a, n, users[0], users[1], users[2])
	}

	// Late events on a packed day (06-02 in Madrid) and on open days.
	late := events[5000:]
	for i := range late[:500] {
		late[i].TimeMicros = time.Date(2025, 6, 2, 12, 0, 0, 0, time.UTC).Add(time.Duration(i) * time.Second).UnixMicro()
	}
	if _, err := s.WriteBatch(ctx, "a", 2, late, nil); err != nil {
		t.Fatal(err)
	}
	want = exactRollups(t, s, site.ID)
	if diff := cmp.Diff(want, storedRollups(t, s, site.ID)); diff != "" {
		t.Fatalf("rollups with late rows (-exact +stored):\n%s", diff)
	}
	users[0], users[1], users[2] = dayUsers(t, s, site.ID, "2025-06-02")
	if err := s.PackRollups(ctx, now.AddDate(0, 0, 3)); err != nil {
		t.Fatal(err)
	}
	if n := count(t, s, "SELECT count(*) FROM rollup_days WHERE site_id = $1", int32(site.ID)); n != 0 {
		t.Errorf("%d rows left in rollup_days after packing every day", n)
	}
	if diff := cmp.Diff(want, storedRollups(t, s, site.ID)); diff != "" {
		t.Fatalf("rollups after packing late rows (-exact +stored):\n%s", diff)
	}
	if u, a, n := dayUsers(t, s, site.ID, "2025-06-02"); [3]uint64{u, a, n} != users {
		t.Errorf("merged packed sketches estimate %d %d %d, before merging %d %d %d", u, a, n, users[0], users[1], users[2])
	}
}
