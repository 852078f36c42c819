package postgres

import (
	"context"
	"math"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
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
