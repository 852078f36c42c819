package write

import (
	"context"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/avila-analytics/avila/protocol"
	"github.com/avila-analytics/avila/storage/postgres"
)

// TestRunIdleBackoff: an idle Run looks for staged events less and less
// often, up to IdleEvery; a batch this Writer stages wakes it at once, and
// a batch another node staged (without waking it) is derived within
// IdleEvery and a derivation.
func TestRunIdleBackoff(t *testing.T) {
	s := newStore(t)
	ctx := context.Background()
	site, _ := s.CreateSite(ctx, postgres.SiteSpec{Name: "idle"})
	w := New(Config{Every: 10 * time.Millisecond, IdleEvery: 160 * time.Millisecond}, s.Store)
	runCtx, cancel := context.WithCancel(ctx)
	var loop sync.WaitGroup
	loop.Go(func() { w.Run(runCtx) })
	defer loop.Wait()
	defer cancel()

	// Waits of 10, 20, 40, 80 ms, then 160 ms: about 12 looks in 1.5 s,
	// where a fixed 10 ms interval makes up to 150.
	time.Sleep(1500 * time.Millisecond) // the interval under test
	if n := w.looks.Load(); n < 2 || n > 20 {
		t.Fatalf("%d looks in 1.5 s idle, want 2..20 (backing off to 160 ms)", n)
	}

	derivedWithin := func(limit time.Duration, stage func() error) {
		t.Helper()
		if err := stage(); err != nil {
			t.Fatal(err)
		}
		waitDerived(t, s, site.ID, limit)
	}
	// Staged here: woken at once, well before the idle wait ends.
	derivedWithin(10*time.Second, func() error {
		_, err := w.WriteBatch(ctx, "edge", 1, testEvents(site.ID, 10), nil)
		return err
	})
	// Staged by another node's write stage, which does not run: found by
	// the next look, at most IdleEvery later (plus the derivation, on a
	// loaded machine).
	other := New(Config{}, s.Store)
	time.Sleep(500 * time.Millisecond) // back to idle waits
	derivedWithin(10*time.Second, func() error {
		_, err := other.WriteBatch(ctx, "edge", 2, testEvents(site.ID, 10), nil)
		return err
	})
	if got := derivedTotals(t, s, site.ID); got != [3]int{20, 20, 20} {
		t.Fatalf("events, in sessions, in rollups: %v, want 20 each", got)
	}
}

// siteHeldElsewhere creates a site whose derivation another node holds (a
// derivation transaction of the site, open until the test rolls it back
// or ends) and a Writer of cfg whose Run loop runs until the test ends.
func siteHeldElsewhere(t *testing.T, s *testStore, cfg Config) (postgres.Site, *postgres.DeriveTx, *Writer) {
	t.Helper()
	ctx := context.Background()
	site, err := s.CreateSite(ctx, postgres.SiteSpec{Name: "elsewhere"})
	if err != nil {
		t.Fatal(err)
	}
	held, err := s.BeginDerive(ctx, site.ID)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { held.Rollback(ctx) }) // a no-op once the test rolled it back
	w := New(cfg, s.Store)
	runCtx, cancel := context.WithCancel(ctx)
	var loop sync.WaitGroup
	loop.Go(func() { w.Run(runCtx) })
	t.Cleanup(loop.Wait)
	t.Cleanup(cancel)
	return site, held, w
}

// TestRunLeavesBatchesToTheDerivingNode: while another node derives a
// site, batches this node stages of it wake no pass (each would only list
// the staged sites and defer the site again); the timed looks go on, and
// take the site over once the other node stops.
func TestRunLeavesBatchesToTheDerivingNode(t *testing.T) {
	s := newStore(t)
	ctx := context.Background()
	site, held, w := siteHeldElsewhere(t, s, Config{Every: 100 * time.Millisecond})
	seq := uint64(0)
	stageOne := func() {
		t.Helper()
		seq++
		if _, err := w.WriteBatch(ctx, "edge", seq, testEvents(site.ID, 5), nil); err != nil {
			t.Fatal(err)
		}
	}
	stageOne()
	// Its pass finds the site derived elsewhere.
	for deadline := time.Now().Add(5 * time.Second); ; {
		if w.derivedElsewhere(site.ID) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the pass did not find the site derived elsewhere")
		}
		time.Sleep(5 * time.Millisecond) // polling, with the deadline above
	}
	before := w.looks.Load()
	start := time.Now()
	for range 40 {
		stageOne()
	}
	elapsed := time.Since(start)
	looks := w.looks.Load() - before
	// Timed looks every 100 ms at most, one more for the timer's phase.
	if limit := int64(elapsed/(100*time.Millisecond)) + 2; looks > limit {
		t.Fatalf("%d passes while 40 batches were staged in %s, want at most %d (timed looks only)", looks, elapsed.Round(time.Millisecond), limit)
	}
	// The other node stops: the timed looks take the site over.
	held.Rollback(ctx)
	waitDerived(t, s, site.ID, 10*time.Second)
	if got := derivedTotals(t, s, site.ID); got != [3]int{205, 205, 205} {
		t.Fatalf("events, in sessions, in rollups: %v, want 205 each", got)
	}
}

// TestRunDerivesSegmentsStagedOutOfOrderTogether: an agent ships segments
// at once, and a later one can be staged first. Run waits settleFor after
// a wake, so the earlier segment staged a moment later is derived in the
// same derivation, and the session's session_start and first_visit stand
// on its first page, not on the later segment's.
func TestRunDerivesSegmentsStagedOutOfOrderTogether(t *testing.T) {
	s := newStore(t)
	ctx := context.Background()
	site, _ := s.CreateSite(ctx, postgres.SiteSpec{Name: "out of order"})
	w := New(Config{Every: 50 * time.Millisecond}, s.Store)
	runCtx, cancel := context.WithCancel(ctx)
	var loop sync.WaitGroup
	loop.Go(func() { w.Run(runCtx) })
	defer loop.Wait()
	defer cancel()
	// Run's first pass, which finds nothing, ends before the batches are
	// staged: on a loaded machine it could otherwise begin late and take
	// the first batch staged alone, as no wake started it.
	for w.looks.Load() == 0 {
		time.Sleep(time.Millisecond)
	}
	w.deriving.Lock()
	//lint:ignore SA2001 an empty section: it waits for the pass in progress
	w.deriving.Unlock()

	hit := func(at time.Duration, name, path string) protocol.Event {
		return protocol.Event{Site: site.ID, Visitor: 7, SessionID: 1_748_779_200, SessionNum: 1, Name: name,
			TimeMicros: day0.Add(at).UnixMicro(), Host: "example.com", Path: path, Browser: "Firefox", OS: "Linux", Device: "desktop"}
	}
	later := []protocol.Event{hit(10*time.Second, "page_view", "/cart"), hit(11*time.Second, "click", "/cart")}
	earlier := []protocol.Event{hit(0, "page_view", "/landing")}
	if _, err := w.WriteBatch(ctx, "edge", 2, later, nil); err != nil {
		t.Fatal(err)
	}
	time.Sleep(30 * time.Millisecond) // the earlier segment's staging took longer
	if _, err := w.WriteBatch(ctx, "edge", 1, earlier, nil); err != nil {
		t.Fatal(err)
	}
	waitDerived(t, s, site.ID, 10*time.Second)
	got := textRows(t, s, `SELECT n.value || ' ' || p.value FROM events e JOIN dims n ON n.id = e.name_id
		JOIN content_profiles c ON c.id = e.content_id JOIN dims p ON p.id = c.page_id
		WHERE e.site_id = $1 AND n.value IN ('session_start', 'first_visit') ORDER BY 1`, int32(site.ID))
	if want := []string{"first_visit /landing", "session_start /landing"}; !slices.Equal(got, want) {
		t.Fatalf("derived events %q, want %q: on the session's first page", got, want)
	}
}
