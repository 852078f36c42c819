package jobs

import (
	"context"
	"errors"
	"log/slog"
	"os"
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

func TestRunKeepsGoingAndStops(t *testing.T) {
	f := failingStore{calls: make(chan string, 100)}
	j := New(Options{Interval: time.Millisecond}, f)
	err := j.RunOnce(context.Background())
	if err == nil || !strings.Contains(err.Error(), "partitions down") || !strings.Contains(err.Error(), "salts down") ||
		!strings.Contains(err.Error(), "packing down") || !strings.Contains(err.Error(), "event packing down") {
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

func TestOnlySpace(t *testing.T) {
	f := failingStore{calls: make(chan string, 10)}
	if err := New(Options{}, f).RunOnce(context.Background()); OnlySpace(err) {
		t.Errorf("OnlySpace(%v) with partitions and salts failing", err)
	}
	err := New(Options{}, packingOnlyStore{f}).RunOnce(context.Background())
	if err == nil || !OnlySpace(err) {
		t.Errorf("OnlySpace(%v) with only packing failing: false", err)
	}
	if OnlySpace(nil) {
		t.Error("OnlySpace(nil)")
	}
}
