package write

import (
	"context"
	"testing"
	"time"

	"github.com/avila-analytics/avila/storage/postgres"
)

// TestBacklogLook: each pass's look at the staged rows tells what reports
// do not show yet (Writer.Backlog and its gauges): the events staged, on
// how many sites, and the age of the oldest staged row, which grows while
// another transaction holds the site's derivation and is 0 once it is
// derived.
func TestBacklogLook(t *testing.T) {
	s := newStore(t)
	ctx := context.Background()
	held, _ := s.CreateSite(ctx, postgres.SiteSpec{Name: "held"})
	free, _ := s.CreateSite(ctx, postgres.SiteSpec{Name: "free"})
	m, _ := NewMetrics(nil)
	w := New(Config{Metrics: m, NoDerivedEvents: true}, s.Store)
	if b := w.Backlog(); !b.At.IsZero() {
		t.Fatalf("Backlog before any look = %+v, want none", b)
	}
	// Another node's derivation of held, left open.
	d, err := s.otherNode(t).BeginDerive(ctx, held.ID)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Rollback(ctx)
	for seq := range uint64(2) {
		if _, err := w.WriteBatch(ctx, "look", seq+1, visitEvents(held.ID, int(seq)*5, 5), nil); err != nil {
			t.Fatal(err)
		}
	}
	const wait = 300 * time.Millisecond
	time.Sleep(wait)
	if _, err := w.WriteBatch(ctx, "look", 3, visitEvents(free.ID, 0, 7), nil); err != nil {
		t.Fatal(err)
	}
	look := func(events int64, sites int, minOldest, maxOldest time.Duration) {
		t.Helper()
		before := time.Now()
		if _, _, _, err := w.pass(ctx); err != nil {
			t.Fatal(err)
		}
		b := w.Backlog()
		if b.Events != events || b.Sites != sites || b.Oldest < minOldest || b.Oldest > maxOldest || b.At.Before(before) {
			t.Fatalf("Backlog = %+v, want %d events on %d sites, the oldest %v to %v old, looked after %v",
				b, events, sites, minOldest, maxOldest, before)
		}
		if g, o := metricValue(t, m.staged), metricValue(t, m.oldest); g != float64(events) || o != b.Oldest.Seconds() {
			t.Fatalf("gauges %v events, oldest %v s; want %d, %v", g, o, events, b.Oldest.Seconds())
		}
	}
	// The look precedes the derivations: both sites, held's rows the oldest.
	look(17, 2, wait, time.Minute)
	// free derived; held still waits, older.
	look(10, 1, wait, time.Minute)
	d.Rollback(ctx)
	if err := w.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	look(0, 0, 0, 0)
}
