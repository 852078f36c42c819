package write

import (
	"context"
	"fmt"
	"math"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/avila-analytics/avila/protocol"
	"github.com/avila-analytics/avila/storage/postgres"
)

// rollupEvents makes n events over three local days of Madrid with
// visitors, pages and flags varying independently.
func rollupEvents(site uint32, n int) []protocol.Event {
	start := time.Date(2025, 6, 1, 20, 0, 0, 0, time.UTC)
	out := make([]protocol.Event, n)
	for i := range out {
		name := "page_view"
		if i%3 == 0 {
			name = "scroll"
		}
		var flags uint8
		if i%5 == 0 {
			flags |= protocol.FlagFirstVisit
		}
		if i%7 == 0 {
			flags |= protocol.FlagKeyEvent
		}
		out[i] = protocol.Event{
			Site: site, TimeMicros: start.Add(time.Duration(i) * 37 * time.Second).UnixMicro(),
			Name: name, Visitor: uint64(i % 1500), Flags: flags, EngageMs: int64(i % 4 * 100),
			Path: fmt.Sprintf("/p/%d", i%13), Country: []string{"ES", "FR", ""}[i%3], Device: "mobile",
		}
	}
	return out
}

type rollupTotals struct {
	Events, Views, Keys int
	Engage              int64
}

// exactRollups is what rollup_days must hold, computed from the events table.
func exactRollups(t *testing.T, s *testStore, site uint32) map[string]rollupTotals {
	t.Helper()
	rows, err := s.Pool.Query(context.Background(), `
		SELECT 'all ' || (e.ts AT TIME ZONE 'Europe/Madrid')::date, count(*), count(*) FILTER (WHERE n.value = 'page_view'),
			count(*) FILTER (WHERE e.flags & 16 <> 0), sum(e.engagement_ms)
		FROM events e JOIN dims n ON n.id = e.name_id WHERE e.site_id = $1 GROUP BY 1
		UNION ALL
		SELECT 'page ' || COALESCE(c.page_id, 0) || ' ' || (e.ts AT TIME ZONE 'Europe/Madrid')::date, count(*), count(*) FILTER (WHERE n.value = 'page_view'),
			count(*) FILTER (WHERE e.flags & 16 <> 0), sum(e.engagement_ms)
		FROM events e JOIN dims n ON n.id = e.name_id LEFT JOIN content_profiles c ON c.id = e.content_id WHERE e.site_id = $1 GROUP BY 1
		UNION ALL
		SELECT 'hour ' || extract(hour FROM e.ts AT TIME ZONE 'Europe/Madrid') || ' ' || (e.ts AT TIME ZONE 'Europe/Madrid')::date,
			count(*), count(*) FILTER (WHERE n.value = 'page_view'), count(*) FILTER (WHERE e.flags & 16 <> 0), sum(e.engagement_ms)
		FROM events e JOIN dims n ON n.id = e.name_id WHERE e.site_id = $1 GROUP BY 1`, int32(site))
	if err != nil {
		t.Fatal(err)
	}
	return scanRollupTotals(t, rows)
}

func storedRollups(t *testing.T, s *testStore, site uint32) map[string]rollupTotals {
	t.Helper()
	rows, err := s.Pool.Query(context.Background(), `
		SELECT CASE kind WHEN 0 THEN 'all ' || day WHEN $3 THEN 'hour ' || dim_id || ' ' || day ELSE 'page ' || dim_id || ' ' || day END,
			sum(events), sum(page_views), sum(key_events), sum(engagement_ms)
		FROM `+rollupRowsSQL+` r WHERE site_id = $1 AND kind IN (0, $2, $3) GROUP BY kind, day, dim_id`, int32(site), int16(postgres.DimPagePath), int16(postgres.RollupHour))
	if err != nil {
		t.Fatal(err)
	}
	return scanRollupTotals(t, rows)
}

func scanRollupTotals(t *testing.T, rows interface {
	Next() bool
	Scan(...any) error
	Err() error
	Close()
}) map[string]rollupTotals {
	t.Helper()
	defer rows.Close()
	out := map[string]rollupTotals{}
	for rows.Next() {
		var k string
		var v rollupTotals
		if err := rows.Scan(&k, &v.Events, &v.Views, &v.Keys, &v.Engage); err != nil {
			t.Fatal(err)
		}
		out[k] = v
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// dayUsers estimates the day's users from the stored kind-0 sketch.
func dayUsers(t *testing.T, s *testStore, site uint32, day string) (users, active, newUsers uint64) {
	t.Helper()
	var b [3][][]byte
	err := s.Pool.QueryRow(context.Background(), "SELECT array_agg(users), array_agg(active_users), array_agg(new_users) FROM "+rollupRowsSQL+
		" r WHERE site_id = $1 AND kind = 0 AND day = $2", int32(site), day).Scan(&b[0], &b[1], &b[2])
	if err != nil {
		t.Fatal(err)
	}
	for k := range b[0] { // a users or new users sketch equal to the active sketch is stored as a marker
		one := [3][]byte{b[0][k], b[1][k], b[2][k]}
		postgres.ExpandSketches(&one)
		b[0][k], b[2][k] = one[0], one[2]
	}
	var est [3]uint64
	for i := range b {
		sk := postgres.NewSketch()
		for _, one := range b[i] {
			if err := postgres.MergeSketch(sk, one); err != nil {
				t.Fatal(err)
			}
		}
		est[i] = sk.Estimate()
	}
	return est[0], est[1], est[2]
}

func TestRollupsWrittenWithBatchOnce(t *testing.T) {
	s := newStore(t)
	ctx := context.Background()
	site, err := s.CreateSite(ctx, postgres.SiteSpec{Name: "r", TimeZone: "Europe/Madrid"})
	if err != nil {
		t.Fatal(err)
	}
	events := rollupEvents(site.ID, 6000)
	// Batches of 1000 from two agents at once, each sent twice: the
	// rollups must count every event once, with concurrent sketch merges.
	var wg sync.WaitGroup
	errs := make(chan error, 12)
	for a := range 2 {
		wg.Go(func() {
			for b := a; b < 6; b += 2 {
				for range 2 {
					if _, err := s.WriteBatch(ctx, fmt.Sprintf("agent-%d", a), uint64(b), events[b*1000:(b+1)*1000], nil); err != nil {
						errs <- err
					}
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	want := exactRollups(t, s, site.ID)
	if len(want) < 4 {
		t.Fatalf("test data spans %d rollup keys, want several days and pages", len(want))
	}
	if diff := cmp.Diff(want, storedRollups(t, s, site.ID)); diff != "" {
		t.Fatalf("rollups after batches (-exact +stored):\n%s", diff)
	}
	// The first Madrid day: exact visitor counts against the sketches.
	var day string
	var exact [3]int
	err = s.Pool.QueryRow(ctx, `SELECT min((ts AT TIME ZONE 'Europe/Madrid')::date)::text FROM events`).Scan(&day)
	if err != nil {
		t.Fatal(err)
	}
	err = s.Pool.QueryRow(ctx, `SELECT count(DISTINCT visitor_id), count(DISTINCT visitor_id) FILTER (WHERE flags & 6 <> 0 OR engagement_ms > 0),
		count(DISTINCT visitor_id) FILTER (WHERE flags & 2 <> 0) FROM events WHERE (ts AT TIME ZONE 'Europe/Madrid')::date = $1::date`, day).Scan(&exact[0], &exact[1], &exact[2])
	if err != nil {
		t.Fatal(err)
	}
	u, a, n := dayUsers(t, s, site.ID, day)
	for i, got := range []uint64{u, a, n} {
		if math.Abs(float64(got)-float64(exact[i])) > 0.02*float64(exact[i]) {
			t.Errorf("day %s sketch %d estimates %d, exact %d", day, i, got, exact[i])
		}
	}

	// A rebuild from the events gives the same rows.
	if err := s.RebuildRollups(ctx, site.ID); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(want, storedRollups(t, s, site.ID)); diff != "" {
		t.Fatalf("rollups after rebuild (-exact +stored):\n%s", diff)
	}
	if u2, a2, n2 := dayUsers(t, s, site.ID, day); u2 != u || a2 != a || n2 != n {
		t.Errorf("rebuilt sketches estimate %d %d %d, batches' %d %d %d", u2, a2, n2, u, a, n)
	}
}

func TestRebuildRollupsMarksComplete(t *testing.T) {
	s := newStore(t)
	ctx := context.Background()
	site, _ := s.CreateSite(ctx, postgres.SiteSpec{Name: "old"})
	// A site from before rollups: covered from tomorrow only.
	if _, err := s.Pool.Exec(ctx, "UPDATE sites SET rollups_from = current_date + 1 WHERE id = $1", int32(site.ID)); err != nil {
		t.Fatal(err)
	}
	if err := s.EnsurePartitions(ctx, day0, day0); err != nil {
		t.Fatal(err)
	}
	// Events loaded around WriteBatch have no rollups until a rebuild.
	if _, err := s.Pool.Exec(ctx, `INSERT INTO events (site_id, ts, visitor_id, name_id) VALUES ($1, $2, 1, 0), ($1, $2, 2, 0)`, int32(site.ID), day0); err != nil {
		t.Fatal(err)
	}
	if err := s.RebuildRollups(ctx, site.ID); err != nil {
		t.Fatal(err)
	}
	if n := count(t, s, "SELECT sum(events) FROM "+rollupRowsSQL+" r WHERE site_id = $1 AND kind = 0", int32(site.ID)); n != 2 {
		t.Errorf("rebuilt day holds %d events, want 2", n)
	}
	if n := count(t, s, "SELECT count(*) FROM sites WHERE id = $1 AND rollups_from = '-infinity'", int32(site.ID)); n != 1 {
		t.Error("rebuild did not mark the site's rollups complete")
	}
	if err := s.RebuildRollups(ctx, 999); err == nil {
		t.Error("rebuild of an unknown site succeeded")
	}
}

// A rebuild running while batches arrive neither loses nor doubles a
// batch: each batch commits wholly before or after it (the site row lock).
func TestRebuildRollupsDuringBatches(t *testing.T) {
	s := newStore(t)
	ctx := context.Background()
	site, err := s.CreateSite(ctx, postgres.SiteSpec{Name: "busy", TimeZone: "Europe/Madrid"})
	if err != nil {
		t.Fatal(err)
	}
	events := rollupEvents(site.ID, 4000)
	var wg sync.WaitGroup
	errs := make(chan error, 20)
	wg.Go(func() {
		for b := range 20 {
			if _, err := s.WriteBatch(ctx, "agent", uint64(b), events[b*200:(b+1)*200], nil); err != nil {
				errs <- err
			}
		}
	})
	wg.Go(func() {
		for range 4 {
			if err := s.RebuildRollups(ctx, site.ID); err != nil {
				errs <- err
			}
		}
	})
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if diff := cmp.Diff(exactRollups(t, s, site.ID), storedRollups(t, s, site.ID)); diff != "" {
		t.Fatalf("rollups after batches and rebuilds (-exact +stored):\n%s", diff)
	}
}

// Sites that exist when migration 009 adds hourly rows are covered by them
// from tomorrow in their time zone (earlier batches wrote none), and from
// the start once rebuilt; new sites from the start.
func TestHourRollupsFrom(t *testing.T) {
	ctx := context.Background()
	s := newStoreAt(t, 8)
	old := s.createOldSite(t, "old", "Pacific/Auckland")
	if err := s.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	fresh, err := s.CreateSite(ctx, postgres.SiteSpec{Name: "new"})
	if err != nil {
		t.Fatal(err)
	}
	from := func(site uint32) string {
		var v string
		if err := s.Pool.QueryRow(ctx, "SELECT hour_rollups_from::text FROM sites WHERE id = $1", int32(site)).Scan(&v); err != nil {
			t.Fatal(err)
		}
		return v
	}
	tomorrow := time.Now().In(mustZone(t, "Pacific/Auckland")).AddDate(0, 0, 1).Format(time.DateOnly)
	if got := from(old.ID); got != tomorrow {
		t.Errorf("existing site: hourly rollups from %s, want %s", got, tomorrow)
	}
	if got := from(fresh.ID); got != "-infinity" {
		t.Errorf("new site: hourly rollups from %s, want -infinity", got)
	}
	if err := s.RebuildRollups(ctx, old.ID); err != nil {
		t.Fatal(err)
	}
	if got := from(old.ID); got != "-infinity" {
		t.Errorf("rebuilt site: hourly rollups from %s, want -infinity", got)
	}
}

func mustZone(t *testing.T, name string) *time.Location {
	t.Helper()
	loc, err := time.LoadLocation(name)
	if err != nil {
		t.Fatal(err)
	}
	return loc
}
