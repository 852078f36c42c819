package write

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/avila-analytics/avila/storage/postgres"
)

// runWriter runs w until the returned stop is called.
func runWriter(w *Writer) (stop func()) {
	runCtx, cancel := context.WithCancel(context.Background())
	var loop sync.WaitGroup
	loop.Go(func() { w.Run(runCtx) })
	return func() { cancel(); loop.Wait() }
}

// TestRunInterval: under steady staging, derivation passes
// that find events start Config.Interval apart, so each takes what was
// staged meanwhile, instead of following each other as soon as one
// ends, each taking a batch or two.
func TestRunInterval(t *testing.T) {
	s := newStore(t)
	ctx := context.Background()
	for _, c := range []struct {
		interval time.Duration
		min, max float64
	}{
		// 2 s of batches: within 2/0.5 + 2 derivations, the first at
		// once, the last for the last batches, and one for a late wake.
		{500 * time.Millisecond, 2, 7},
		// Back to back (an interval shorter than a derivation): a
		// derivation every few batches (32–50 here; fewer and longer
		// on a loaded machine).
		{time.Millisecond, 10, 2000},
	} {
		site, _ := s.CreateSite(ctx, postgres.SiteSpec{Name: "steady " + c.interval.String()})
		m, _ := NewMetrics(nil)
		w := New(Config{Every: 10 * time.Millisecond, Interval: c.interval, Metrics: m, NoDerivedEvents: true}, s.Store)
		stop := runWriter(w)
		// Batches one after the other for 2 s (at most 2000), so that
		// every pass finds some: at most one a millisecond, so that they
		// span the 2 s (staged faster, the 2000 went in a fraction of
		// it, and a loaded machine's few passes took them all: a
		// clean-clone CI run counted 8 derivations, a loaded run 2).
		const per = 5
		batches := 0
		for start := time.Now(); time.Since(start) < 2*time.Second && batches < 2000; batches++ {
			if ahead := time.Duration(batches)*time.Millisecond - time.Since(start); ahead > 0 {
				time.Sleep(ahead) // pacing, bounded by the 2 s above
			}
			if _, err := w.WriteBatch(ctx, "steady-"+c.interval.String(), uint64(batches+1), visitEvents(site.ID, batches*per, per), nil); err != nil {
				t.Fatal(err)
			}
		}
		waitDerived(t, s, site.ID, time.Minute)
		stop() // before the next case's site: this Writer would derive it too
		if got := metricValue(t, m.derived); got != float64(batches*per) {
			t.Fatalf("interval %v: %v events derived, want %d", c.interval, got, batches*per)
		}
		if n := metricValue(t, m.derivations); n < c.min || n > c.max {
			t.Errorf("interval %v: %v derivations of 2 s of %d batches, want %v..%v", c.interval, n, batches, c.min, c.max)
		} else {
			t.Logf("interval %v: %v derivations of 2 s of %d batches", c.interval, n, batches)
		}
	}
}

// TestRunIntervalNotUnderBacklog: a derivation that stopped at its
// bounds with events still staged is followed at once, whatever the
// interval.
func TestRunIntervalNotUnderBacklog(t *testing.T) {
	s := newStore(t)
	ctx := context.Background()
	site, _ := s.CreateSite(ctx, postgres.SiteSpec{Name: "backlog"})
	m, _ := NewMetrics(nil)
	// Chunks of at most 10 events, one a derivation: 10 derivations for
	// the 100 events staged before Run starts.
	w := New(Config{Every: 10 * time.Millisecond, Interval: time.Hour, MaxEvents: 10, MaxChunks: 1, Metrics: m, NoDerivedEvents: true}, s.Store)
	for b := range 10 {
		if _, err := w.WriteBatch(ctx, "backlog", uint64(b+1), visitEvents(site.ID, b*10, 10), nil); err != nil {
			t.Fatal(err)
		}
	}
	stop := runWriter(w)
	waitDerived(t, s, site.ID, 30*time.Second)
	stop() // the last derivation counts itself after its commit
	if n := metricValue(t, m.derivations); n != 10 {
		t.Fatalf("%v derivations, want 10 of a chunk each", n)
	}
}

// TestRunIntervalEndsForBurst: the wait for Config.Interval after a pass
// that found events ends once a whole derivation's events (MaxEvents ×
// MaxChunks) are staged for the site, and not before, whether this node
// staged them or another.
func TestRunIntervalEndsForBurst(t *testing.T) {
	s := newStore(t)
	ctx := context.Background()
	for _, by := range []string{"this node", "another node"} {
		site, _ := s.CreateSite(ctx, postgres.SiteSpec{Name: "burst by " + by})
		// A derivation takes a chunk of 40 events: 40 staged end the wait.
		// (A site's first chunk takes at most 17 here, room for two
		// events added to each, so the first 5 do not fill it.)
		w := New(Config{Every: 10 * time.Millisecond, Interval: time.Hour, MaxEvents: 40, MaxChunks: 1, NoDerivedEvents: true}, s.Store)
		stager := w
		if by == "another node" {
			stager = New(Config{}, s.otherNode(t))
		}
		stop := runWriter(w)
		seq := uint64(0)
		stageFive := func(on *Writer) {
			t.Helper()
			seq++
			if _, err := on.WriteBatch(ctx, "burst "+by, seq, visitEvents(site.ID, int(seq)*5, 5), nil); err != nil {
				t.Fatal(err)
			}
		}
		// The first pass, woken by this node's batch, finds events: the
		// next waits for the interval.
		stageFive(w)
		waitDerived(t, s, site.ID, 30*time.Second)
		// 35 events: less than a derivation's, so they wait.
		for range 7 {
			stageFive(stager)
		}
		time.Sleep(time.Second)
		if n, err := s.StagedEvents(ctx, site.ID); err != nil || n != 35 {
			t.Fatalf("by %s: %d events staged (err %v) a second after 35 were, want 35 waiting for the interval", by, n, err)
		}
		// The batch that makes 40 ends the wait.
		stageFive(stager)
		waitDerived(t, s, site.ID, 30*time.Second)
		stop() // before the next site: this Writer would derive it too
	}
}

// TestRunIntervalBurstIsPerSite: sites that together hold more than a
// derivation's events, each less, wait for the interval: each site's
// derivation would take only its own.
func TestRunIntervalBurstIsPerSite(t *testing.T) {
	s := newStore(t)
	ctx := context.Background()
	a, _ := s.CreateSite(ctx, postgres.SiteSpec{Name: "burst a"})
	b, _ := s.CreateSite(ctx, postgres.SiteSpec{Name: "burst b"})
	w := New(Config{Every: 10 * time.Millisecond, Interval: time.Hour, MaxEvents: 40, MaxChunks: 1, NoDerivedEvents: true}, s.Store)
	stop := runWriter(w)
	defer stop()
	seq := uint64(0)
	stage := func(site uint32, n int) {
		t.Helper()
		for range n / 5 {
			seq++
			if _, err := w.WriteBatch(ctx, "per site", seq, visitEvents(site, int(seq)*5, 5), nil); err != nil {
				t.Fatal(err)
			}
		}
	}
	stage(a.ID, 5)
	waitDerived(t, s, a.ID, 30*time.Second)
	// 70 staged, 35 a site: under a derivation's 40 each.
	stage(a.ID, 35)
	stage(b.ID, 35)
	time.Sleep(time.Second)
	if n, err := s.StagedEvents(ctx, 0); err != nil || n != 70 {
		t.Fatalf("%d events staged (err %v) a second after 70 were, 35 a site; want them waiting for the interval", n, err)
	}
	stage(b.ID, 5) // b holds 40: the wait ends, and the pass derives both
	waitDerived(t, s, 0, 30*time.Second)
}
