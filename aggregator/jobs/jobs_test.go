package jobs

import (
	"context"
	"errors"
	"log/slog"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/avila-analytics/avila/internal/testenv"
	"github.com/avila-analytics/avila/storage/postgres"
)

func TestMain(m *testing.M) { os.Exit(testenv.Run(m)) }

var now0 = time.Date(2025, 6, 1, 23, 0, 0, 0, time.FixedZone("x", -3*3600)) // 2025-06-02 02:00 UTC

func TestRunOnceOnRealStore(t *testing.T) {
	ctx := context.Background()
	url := testenv.PostgresURL(t)
	s, err := postgres.Open(ctx, url, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if err := s.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	db := testenv.Pool(t, url)
	site, _ := s.CreateSite(ctx, postgres.SiteSpec{Name: "a"})
	j := New(Options{Now: func() time.Time { return now0 }}, s)
	for range 2 { // idempotent
		if err := j.RunOnce(ctx); err != nil {
			t.Fatal(err)
		}
	}
	var parts []string
	rows, _ := db.Query(ctx, `SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
		WHERE i.inhparent = 'events'::regclass AND c.relkind = 'r' ORDER BY 1`)
	for rows.Next() {
		var p string
		_ = rows.Scan(&p)
		parts = append(parts, p)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	if got, want := strings.Join(parts, " "), "events_p20250601 events_p20250602 events_p20250603 events_p20250604 events_p20250605"; got != want {
		t.Errorf("partitions %q, want %q", got, want)
	}
	// Rows written into a fresh partition: the run gives it the planner
	// statistics autovacuum would give it later; a second run leaves it.
	// Autovacuum kept away from it, so only the job can analyze it. The
	// writer's counts reach the statistics views at its next transaction's
	// end once it asked for it.
	conn, err := db.Acquire(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, stmt := range []string{`ALTER TABLE events_p20250603 SET (autovacuum_enabled = off)`,
		`INSERT INTO events (ts, site_id, visitor_id, session_id, name_id)
		SELECT '2025-06-03 12:00Z'::timestamptz + n * interval '1 second', ` + strconv.Itoa(int(site.ID)) + `, n, n, 1 FROM generate_series(1, 500) n`,
		`SELECT pg_stat_force_next_flush()`, `SELECT 1`} {
		if _, err := conn.Exec(ctx, stmt); err != nil {
			t.Fatal(err)
		}
	}
	conn.Release()
	analyzed := func() int {
		t.Helper()
		var n int
		if err := db.QueryRow(ctx, `SELECT count(*) FROM pg_stat_user_tables
			WHERE relname = 'events_p20250603' AND (last_analyze IS NOT NULL OR last_autoanalyze IS NOT NULL)`).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	for deadline := time.Now().Add(15 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		if err := j.RunOnce(ctx); err != nil {
			t.Fatal(err)
		}
		if analyzed() == 1 || time.Now().After(deadline) {
			break
		}
	}
	if analyzed() != 1 {
		t.Error("a partition with rows written was left unanalyzed")
	}
	var stat int
	if err := db.QueryRow(ctx, `SELECT count(*) FROM pg_stats WHERE tablename = 'events_p20250603'`).Scan(&stat); err != nil || stat == 0 {
		t.Errorf("no column statistics for the written partition (%v)", err)
	}
	salts, err := s.Salts(ctx, now0)
	if err != nil {
		t.Fatal(err)
	}
	if len(salts) != 2 || salts[0].Site != site.ID || salts[0].Day != "2025-06-02" || salts[1].Day != "2025-06-03" {
		t.Errorf("salts %+v", salts)
	}
}

type failingStore struct{ calls chan string }

func (f failingStore) EnsurePartitions(ctx context.Context, from, to time.Time) error {
	f.calls <- "partitions"
	return errors.New("partitions down")
}

func (f failingStore) EnsureSalts(ctx context.Context, now time.Time) error {
	f.calls <- "salts"
	return errors.New("salts down")
}

func (f failingStore) PackRollups(ctx context.Context, now time.Time) error {
	f.calls <- "pack rollups"
	return errors.New("packing down")
}

func (f failingStore) PackEvents(ctx context.Context, now time.Time) (int, error) {
	f.calls <- "pack events"
	return 0, errors.New("event packing down")
}

func (f failingStore) PackItems(ctx context.Context, now time.Time) (int, error) {
	f.calls <- "pack items"
	return 0, errors.New("item packing down")
}

func (f failingStore) AnalyzeFresh(ctx context.Context) (int, error) {
	f.calls <- "analyze"
	return 0, errors.New("analyze down")
}

func TestRunKeepsGoingAndStops(t *testing.T) {
	f := failingStore{calls: make(chan string, 100)}
	j := New(Options{Interval: time.Millisecond}, f)
	err := j.RunOnce(context.Background())
	if err == nil || !strings.Contains(err.Error(), "partitions down") || !strings.Contains(err.Error(), "salts down") ||
		!strings.Contains(err.Error(), "packing down") || !strings.Contains(err.Error(), "event packing down") ||
		!strings.Contains(err.Error(), "analyze down") {
		t.Fatalf("RunOnce error %v, want every failure", err)
	}
	// One failing job does not stop the other, and Run repeats after failures.
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { j.Run(ctx); close(done) }()
	seen := 0
	deadline := time.After(10 * time.Second)
	for seen < 6 {
		select {
		case <-f.calls:
			seen++
		case <-deadline:
			t.Fatalf("only %d job runs", seen)
		}
	}
	cancel()
	for {
		select {
		case <-done:
			return
		case <-f.calls: // drain a run in flight
		case <-time.After(10 * time.Second):
			t.Fatal("Run did not stop on cancel")
		}
	}
}

// packingOnlyStore fails only the packing jobs.
type packingOnlyStore struct{ failingStore }

func (packingOnlyStore) EnsurePartitions(context.Context, time.Time, time.Time) error { return nil }
func (packingOnlyStore) EnsureSalts(context.Context, time.Time) error                 { return nil }

func TestOnlyDeferrable(t *testing.T) {
	f := failingStore{calls: make(chan string, 10)}
	if err := New(Options{}, f).RunOnce(context.Background()); OnlyDeferrable(err) {
		t.Errorf("OnlyDeferrable(%v) with partitions and salts failing", err)
	}
	err := New(Options{}, packingOnlyStore{f}).RunOnce(context.Background())
	if err == nil || !OnlyDeferrable(err) {
		t.Errorf("OnlyDeferrable(%v) with only packing failing: false", err)
	}
	if OnlyDeferrable(nil) {
		t.Error("OnlyDeferrable(nil)")
	}
}
