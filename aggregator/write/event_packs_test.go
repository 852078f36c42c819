package write

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/avila-analytics/avila/storage/postgres"
	"github.com/google/go-cmp/cmp"
	"github.com/jackc/pgx/v5"
)

// eventRowsIn is every event of site in [lo, hi) as text, sorted, read
// through EventsIn (both tables) or straight from the events table.
func eventRowsIn(t *testing.T, s *testStore, fromTable string, site uint32, lo, hi time.Time) []string {
	t.Helper()
	return textRows(t, s, "SELECT e::text FROM "+fromTable+" e ORDER BY 1", int32(site), lo, hi)
}

var (
	viaEventsIn = postgres.EventsIn("$1", "$2", "$3", postgres.EventColumns)
	viaTable    = "(SELECT * FROM events WHERE site_id = $1 AND ts >= $2 AND ts < $3)"
)

var (
	allTime = [2]time.Time{time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC), time.Date(2100, 1, 1, 0, 0, 0, 0, time.UTC)}
	// A range that starts and ends inside packed days.
	partRange = [2]time.Time{time.Date(2025, 6, 2, 7, 30, 0, 0, time.UTC), time.Date(2025, 6, 3, 16, 45, 0, 0, time.UTC)}
)

// packEventsFixture writes two sites' events from 2025-06-01 20:00 to
// 06-04 09:40 UTC, some with custom parameters and referrers. Each starts
// a session (a visitor's events are 15 hours apart), unmarked: the write
// path puts the session's traffic source on its row.
func packEventsFixture(t *testing.T, s *testStore) [2]uint32 {
	t.Helper()
	ctx := context.Background()
	// The events written only: these tests count packed rows and parts
	// by the events they write.
	s.w.cfg.NoDerivedEvents = true
	var sites [2]uint32
	for i, zone := range []string{"Europe/Madrid", "America/New_York"} {
		site, err := s.CreateSite(ctx, postgres.SiteSpec{Name: fmt.Sprintf("pack%d", i), TimeZone: zone})
		if err != nil {
			t.Fatal(err)
		}
		sites[i] = site.ID
		events := rollupEvents(site.ID, 6000)
		for j := range events {
			if j%11 == 0 {
				events[j].Params = map[string]string{"plan": fmt.Sprintf("p%d", j%4)}
				events[j].NumParams = map[string]float64{"value": float64(j)}
			}
			if j%9 == 0 {
				events[j].Referrer = fmt.Sprintf("https://ref%d.example/x", j%5)
			}
		}
		if _, err := s.WriteBatch(ctx, "pack", uint64(i+1), events, nil); err != nil {
			t.Fatal(err)
		}
	}
	return sites
}

// TestPackEvents: packing moves settled days' events into event_packs
// without changing one, EventsIn reads every event exactly once over any
// range, emptied partitions give their pages back, and late events of a
// packed day are read at once and merged into the day's pack by the next
// pass.
func TestPackEvents(t *testing.T) {
	s := newStore(t)
	ctx := context.Background()
	sites := packEventsFixture(t, s)
	want := map[uint32][2][]string{}
	for _, site := range sites {
		want[site] = [2][]string{
			eventRowsIn(t, s, viaTable, site, allTime[0], allTime[1]),
			eventRowsIn(t, s, viaTable, site, partRange[0], partRange[1]),
		}
		if len(want[site][0]) != 6000 {
			t.Fatalf("site %d: %d events stored, want 6000", site, len(want[site][0]))
		}
	}
	// At noon of 06-07 UTC, days that ended 72 hours earlier are settled:
	// 06-01 to 06-03; 06-04 stays.
	now := time.Date(2025, 6, 7, 12, 0, 0, 0, time.UTC)
	days, err := s.PackEvents(ctx, now)
	if err != nil {
		t.Fatal(err)
	}
	if days != 3 {
		t.Errorf("PackEvents packed %d days, want 3", days)
	}
	if n := count(t, s, "SELECT count(*) FROM events WHERE ts < '2025-06-04Z'"); n != 0 {
		t.Errorf("%d events of settled days left in the events table", n)
	}
	if n := count(t, s, "SELECT count(*) FROM events WHERE ts >= '2025-06-04Z'"); n == 0 {
		t.Error("the unsettled day 06-04 was packed")
	}
	if n := count(t, s, "SELECT count(*) FROM event_packs"); n != 6 {
		t.Errorf("%d packs, want one per site and day (6)", n)
	}
	for _, day := range []string{"2025-06-01", "2025-06-02", "2025-06-03"} {
		d, _ := time.Parse(time.DateOnly, day)
		if n := count(t, s, "SELECT pg_relation_size($1::regclass)::int", postgres.PartitionName(d)); n != 0 {
			t.Errorf("packed partition of %s still holds %d bytes", day, n)
		}
	}
	check := func(when string) {
		t.Helper()
		for _, site := range sites {
			if diff := cmp.Diff(want[site][0], eventRowsIn(t, s, viaEventsIn, site, allTime[0], allTime[1])); diff != "" {
				t.Fatalf("%s: site %d events (-stored before +read now):\n%s", when, site, diff)
			}
			if diff := cmp.Diff(want[site][1], eventRowsIn(t, s, viaEventsIn, site, partRange[0], partRange[1])); diff != "" {
				t.Fatalf("%s: site %d events in %v (-stored before +read now):\n%s", when, site, partRange, diff)
			}
		}
	}
	check("after packing")
	if days, err := s.PackEvents(ctx, now); err != nil || days != 0 {
		t.Errorf("second pass packed %d days (%v), want none", days, err)
	}

	// Late events on the packed 06-02 are read at once, then merged into
	// that day's part by the next pass.
	late := rollupEvents(sites[0], 40)
	for i := range late {
		late[i].TimeMicros = time.Date(2025, 6, 2, 9, 0, i, 0, time.UTC).UnixMicro()
		late[i].Visitor = uint64(90000 + i)
	}
	if _, err := s.WriteBatch(ctx, "pack", 3, late, nil); err != nil {
		t.Fatal(err)
	}
	want[sites[0]] = [2][]string{
		eventRowsIn(t, s, viaEventsIn, sites[0], allTime[0], allTime[1]),
		eventRowsIn(t, s, viaEventsIn, sites[0], partRange[0], partRange[1]),
	}
	if len(want[sites[0]][0]) != 6040 || len(want[sites[0]][1]) <= len(want[sites[1]][1]) {
		t.Fatalf("%d events with the late ones, want 6040; %d in range", len(want[sites[0]][0]), len(want[sites[0]][1]))
	}
	if days, err := s.PackEvents(ctx, now); err != nil || days != 1 {
		t.Errorf("pass after late events packed %d days (%v), want 1", days, err)
	}
	if n := count(t, s, "SELECT count(*) FROM event_packs WHERE site_id = $1 AND day = '2025-06-02'", int32(sites[0])); n != 1 {
		t.Errorf("late events made %d packs of the day, want them merged into 1", n)
	}
	check("after packing late events")
}

// TestPackEventsParts: a day with more events than a part holds is cut
// into parts; late events join a small last part and start a new one
// after a full one.
func TestPackEventsParts(t *testing.T) {
	s := newStore(t)
	s.SetPackPartEvents(1000)
	ctx := context.Background()
	sites := packEventsFixture(t, s)
	want := eventRowsIn(t, s, viaTable, sites[0], allTime[0], allTime[1])
	now := time.Date(2025, 6, 7, 12, 0, 0, 0, time.UTC)
	if _, err := s.PackEvents(ctx, now); err != nil {
		t.Fatal(err)
	}
	// 06-02 holds 24 h / 37 s = 2335 events per site: parts of 1000,
	// 1000 and 335, each in (session_id, ts) order.
	parts := func() []int {
		rows, err := s.Pool.Query(ctx, "SELECT events FROM event_packs WHERE site_id = $1 AND day = '2025-06-02' ORDER BY part", int32(sites[0]))
		if err != nil {
			t.Fatal(err)
		}
		n, err := pgx.CollectRows(rows, pgx.RowTo[int])
		if err != nil {
			t.Fatal(err)
		}
		return n
	}
	if got := parts(); !cmp.Equal(got, []int{1000, 1000, 335}) {
		t.Errorf("parts of 06-02 hold %v events, want [1000 1000 335]", got)
	}
	if n := count(t, s, `SELECT count(*) FROM event_packs p, LATERAL (
			SELECT bool_and((session_id, ts) >= (lag_s, lag_t)) ok FROM (
				SELECT session_id, ts, lag(session_id) OVER (ORDER BY o) lag_s, lag(ts) OVER (ORDER BY o) lag_t
				FROM unnest(p.session_id, p.ts) WITH ORDINALITY AS u(session_id, ts, o)) x) c WHERE NOT c.ok`); n != 0 {
		t.Errorf("%d packs not in (session_id, ts) order", n)
	}
	if diff := cmp.Diff(want, eventRowsIn(t, s, viaEventsIn, sites[0], allTime[0], allTime[1])); diff != "" {
		t.Fatalf("events (-stored before +read now):\n%s", diff)
	}
	// 100 late events join the last part (335 < 500), 400 more too (435 <
	// 500), and the next ones start a part of their own (835 >= 500).
	for i, step := range []struct {
		n    int
		want []int
	}{{100, []int{1000, 1000, 435}}, {400, []int{1000, 1000, 835}}, {10, []int{1000, 1000, 835, 10}}} {
		n := step.n
		late := rollupEvents(sites[0], n)
		for j := range late {
			late[j].TimeMicros = time.Date(2025, 6, 2, 23, 0, 0, 0, time.UTC).Add(time.Duration(i*1000+j) * time.Second).UnixMicro()
		}
		if _, err := s.WriteBatch(ctx, "late", uint64(i+1), late, nil); err != nil {
			t.Fatal(err)
		}
		if _, err := s.PackEvents(ctx, now); err != nil {
			t.Fatal(err)
		}
		if got := parts(); !cmp.Equal(got, step.want) {
			t.Errorf("parts of 06-02 after %d late events hold %v, want %v", n, got, step.want)
		}
	}
	if n := count(t, s, "SELECT count(*) FROM "+postgres.EventsIn("$1", "'-infinity'", "'infinity'", postgres.EventColumns)+" e", int32(sites[0])); n != 6000+510 {
		t.Errorf("%d events read after packing late ones, want %d", n, 6000+510)
	}
}

// TestRebuildsReadPackedEvents: rollups and sessions rebuilt from packed
// events equal those the write path made.
func TestRebuildsReadPackedEvents(t *testing.T) {
	s := newStore(t)
	ctx := context.Background()
	sites := packEventsFixture(t, s)
	site := sites[0]
	rollups := storedRollups(t, s, site)
	sessions := storedSessions(t, s, site)
	if _, err := s.PackEvents(ctx, time.Date(2025, 6, 9, 0, 0, 0, 0, time.UTC)); err != nil {
		t.Fatal(err)
	}
	if n := count(t, s, "SELECT count(*) FROM events WHERE site_id = $1", int32(site)); n != 0 {
		t.Fatalf("%d events not packed", n)
	}
	if err := s.RebuildRollups(ctx, site); err != nil {
		t.Fatal(err)
	}
	if err := s.RebuildSessions(ctx, site); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(rollups, storedRollups(t, s, site)); diff != "" {
		t.Errorf("rollups rebuilt from packs (-written +rebuilt):\n%s", diff)
	}
	if diff := cmp.Diff(sessions, storedSessions(t, s, site)); diff != "" {
		t.Errorf("sessions rebuilt from packs (-written +rebuilt):\n%s", diff)
	}
}

// TestPackEventsBudgetSpentWaiting: a run whose budget is spent before it
// moved a day (waiting on the locks of another packer, the aggregator's
// upkeep beside a bulk load, whose days it then finds moved) goes on
// instead of returning 0 with settled days left, so a caller's "until 0"
// loop packs every settled day.
func TestPackEventsBudgetSpentWaiting(t *testing.T) {
	s := newStore(t)
	ctx := context.Background()
	packEventsFixture(t, s)
	s.SetPackBudget(time.Nanosecond)
	now := time.Date(2025, 6, 7, 12, 0, 0, 0, time.UTC)
	runs := 0
	for ; runs < 10; runs++ {
		days, err := s.PackEvents(ctx, now)
		if err != nil {
			t.Fatal(err)
		}
		if days == 0 {
			break
		}
		if days != 1 {
			t.Errorf("run %d packed %d days past its budget, want it to stop after its first", runs, days)
		}
	}
	if n := count(t, s, "SELECT count(*) FROM events WHERE ts < '2025-06-04Z'"); n != 0 {
		t.Errorf("PackEvents returned 0 after %d runs with %d events of settled days left", runs, n)
	}
	if runs != 3 {
		t.Errorf("%d runs moved the three settled days, want 3", runs)
	}
}
