package postgres

import (
	"context"
	"log/slog"
	"math"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/avila-analytics/avila/internal/testenv"
)

func partitions(t *testing.T, s *Store) map[string]string {
	t.Helper()
	rows, err := s.pool.Query(context.Background(), `SELECT c.relname, pg_get_expr(c.relpartbound, c.oid)
		FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
		WHERE i.inhparent = 'events'::regclass AND c.relkind = 'r'`)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for rows.Next() {
		var name, bound string
		if err := rows.Scan(&name, &bound); err != nil {
			t.Fatal(err)
		}
		out[name] = bound
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

func TestEnsurePartitions(t *testing.T) {
	s := newStore(t)
	ctx := context.Background()
	// A time late on the 29th of February in UTC-5 is already the 1st of March in UTC.
	from := time.Date(2024, 2, 29, 21, 0, 0, 0, time.FixedZone("EST", -5*3600))
	to := time.Date(2024, 3, 2, 0, 0, 0, 0, time.UTC)
	errs := make(chan error, 3)
	for range 3 { // nodes starting together
		go func() { errs <- s.EnsurePartitions(ctx, from, to) }()
	}
	for range 3 {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	got := partitions(t, s)
	if len(got) != 2 || got["events_p20240301"] == "" || got["events_p20240302"] == "" {
		t.Fatalf("partitions %v, want events_p20240301 and events_p20240302", got)
	}
	// The bounds are whole UTC days whatever the server's time zone.
	for _, ts := range []string{"2024-03-01 00:00:00+00", "2024-03-02 23:59:59.999999+00"} {
		if _, err := s.pool.Exec(ctx, "INSERT INTO events (site_id, ts, visitor_id, name_id) VALUES (1, $1::timestamptz, 1, 1)", ts); err != nil {
			t.Errorf("insert at %s: %v", ts, err)
		}
	}
	if _, err := s.pool.Exec(ctx, "INSERT INTO events (site_id, ts, visitor_id, name_id) VALUES (1, '2024-03-03 00:00:00+00', 1, 1)"); err == nil {
		t.Error("a row past the last partition was accepted")
	}

	// Known days cost nothing: dropping one behind the store's back is not
	// noticed until the cache is forgotten.
	if _, err := s.pool.Exec(ctx, "DROP TABLE events_p20240302"); err != nil {
		t.Fatal(err)
	}
	if err := s.EnsurePartitions(ctx, to, to); err != nil {
		t.Fatal(err)
	}
	if _, ok := partitions(t, s)["events_p20240302"]; ok {
		t.Fatal("EnsurePartitions queried the database for a day it knew")
	}
	s.forgetPartitions()
	if err := s.EnsurePartitions(ctx, to, to); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{"events_p20240301", "events_p20240302"}, sortedKeys(partitions(t, s))); diff != "" {
		t.Errorf("partitions (-want +got):\n%s", diff)
	}

	if err := s.EnsurePartitions(ctx, to, from); err == nil {
		t.Error("reversed range accepted")
	}
	if err := s.EnsurePartitions(ctx, from, from.AddDate(5, 0, 0)); err == nil {
		t.Error("five years of partitions accepted")
	}
}

func sortedKeys(m map[string]string) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

// TestUnixDayMicros holds the floor division to unixDay of the time,
// around midnights on both sides of 1970 and over random instants.
func TestUnixDayMicros(t *testing.T) {
	const dayMicros = 86400 * 1_000_000
	var cases []int64
	for _, day := range []int64{-800_000, -719_528, -1, 0, 1, 10_957, 20_429, 2_932_896} {
		for _, off := range []int64{-1, 0, 1, dayMicros / 2} {
			cases = append(cases, day*dayMicros+off)
		}
	}
	cases = append(cases, math.MinInt64, math.MinInt64+1, math.MaxInt64, math.MaxInt64-1)
	rng := rand.New(rand.NewPCG(1, 2))
	for range 200_000 {
		cases = append(cases, rng.Int64(), rng.Int64N(1<<52)-1<<51)
	}
	for _, us := range cases {
		if got, want := unixDayMicros(us), unixDay(time.UnixMicro(us)); got != want {
			t.Fatalf("unixDayMicros(%d) = %d, unixDay = %d", us, got, want)
		}
	}
}

// sessionsFillFactor is the fillfactor storage parameter of table (0:
// none set).
func sessionsFillFactor(t *testing.T, s *Store, table string) int {
	t.Helper()
	var ff int
	if err := s.pool.QueryRow(context.Background(), `SELECT coalesce((SELECT split_part(o, '=', 2)::int
		FROM unnest(c.reloptions) o WHERE o LIKE 'fillfactor=%'), 0) FROM pg_class c WHERE c.oid = $1::regclass`, table).Scan(&ff); err != nil {
		t.Fatal(err)
	}
	return ff
}

// TestSessionUpdatesStayOnPage: sessions partitions are made with
// SessionsFillFactor, so the derivations that rewrite a session put its
// new version beside the old one (a HOT update) rather than on another
// page with a new index entry: over six derivations rewriting 2,000
// sessions, 79% of the updates were HOT (2% on full pages).
func TestSessionUpdatesStayOnPage(t *testing.T) {
	ctx := context.Background()
	s := newStore(t)
	day := time.Now().UTC().Truncate(24 * time.Hour)
	if err := s.EnsurePartitions(ctx, day, day); err != nil {
		t.Fatal(err)
	}
	part := SessionsPartitionName(day)
	if ff := sessionsFillFactor(t, s, part); ff != SessionsFillFactor {
		t.Fatalf("%s has fillfactor %d, want %d", part, ff, SessionsFillFactor)
	}
	site, err := s.CreateSite(ctx, SiteSpec{Name: "sessions"})
	if err != nil {
		t.Fatal(err)
	}
	const n, rounds = 2000, 6
	rows := sessionRowsOn(site.ID, day, n)
	upsertSessionsCommitted(t, s, site.ID, rows)
	for round := range rounds {
		for j := range rows {
			rows[j].Last = rows[j].TS.Add(time.Duration(round+1) * time.Second)
			rows[j].Events = 1
		}
		upsertSessionsCommitted(t, s, site.ID, rows)
	}
	// The backends report their counts when idle, within a second or so.
	var updated, hot int64
	deadline := time.Now().Add(20 * time.Second)
	for {
		if err := s.pool.QueryRow(ctx, "SELECT n_tup_upd, n_tup_hot_upd FROM pg_stat_user_tables WHERE relid = $1::regclass",
			part).Scan(&updated, &hot); err != nil {
			t.Fatal(err)
		}
		if updated >= rounds*n || time.Now().After(deadline) {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if updated != rounds*n {
		t.Fatalf("%d sessions updated, want %d", updated, rounds*n)
	}
	if hot*100 < 60*updated {
		t.Fatalf("%d of %d session updates were HOT (%.0f%%), want 60%% or more", hot, updated, 100*float64(hot)/float64(updated))
	}
	t.Logf("%d of %d session updates HOT", hot, updated)
}

// TestMigrationSetsSessionsFillFactor: migration 035 gives the sessions
// partitions made before it SessionsFillFactor.
func TestMigrationSetsSessionsFillFactor(t *testing.T) {
	ctx := context.Background()
	s, err := Open(ctx, testenv.PostgresURL(t), slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	if err := s.MigrateTo(ctx, 34); err != nil {
		t.Fatal(err)
	}
	if _, err := s.pool.Exec(ctx, `CREATE TABLE sessions_p20260301 PARTITION OF sessions
		FOR VALUES FROM ('2026-03-01 00:00:00+00') TO ('2026-03-02 00:00:00+00')`); err != nil {
		t.Fatal(err)
	}
	if ff := sessionsFillFactor(t, s, "sessions_p20260301"); ff != 0 {
		t.Fatalf("before migration 035, fillfactor %d", ff)
	}
	if err := s.MigrateTo(ctx, 35); err != nil {
		t.Fatal(err)
	}
	if ff := sessionsFillFactor(t, s, "sessions_p20260301"); ff != SessionsFillFactor {
		t.Fatalf("after migration 035, fillfactor %d, want %d", ff, SessionsFillFactor)
	}
}
