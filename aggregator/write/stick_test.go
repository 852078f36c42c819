package write

import (
	"context"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/avila-analytics/avila/storage/postgres"
)

// otherNode opens a second Store on s's database, as another aggregator
// node would.
func (s *testStore) otherNode(t *testing.T) *postgres.Store {
	t.Helper()
	other, err := postgres.Open(context.Background(), s.url, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(other.Close)
	return other
}

// TestStagedSitesElsewhere: a site's last derivation by another Store
// (node) is seen as elsewhere within the window asked for, never by the
// Store that ran it.
func TestStagedSitesElsewhere(t *testing.T) {
	s := newStore(t)
	ctx := context.Background()
	site, _ := s.CreateSite(ctx, postgres.SiteSpec{Name: "one"})
	other := s.otherNode(t)
	w := New(Config{}, s.Store)
	for seq := range uint64(2) {
		if _, err := w.WriteBatch(ctx, "edge", seq+1, visitEvents(site.ID, int(seq)*5, 5), nil); err != nil {
			t.Fatal(err)
		}
		if seq == 0 {
			if err := w.Flush(ctx); err != nil {
				t.Fatal(err)
			}
		}
	}
	for _, c := range []struct {
		name     string
		store    *postgres.Store
		within   time.Duration
		min, max time.Duration
	}{
		{"the deriving node", s.Store, time.Hour, 0, 0},
		{"another node, within an hour", other, time.Hour, 59 * time.Minute, time.Hour},
		{"another node, within nothing", other, 0, 0, 0},
	} {
		got, err := c.store.StagedSites(ctx, c.within)
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != 1 || got[0].Site != site.ID || got[0].Elsewhere < c.min || got[0].Elsewhere > c.max {
			t.Errorf("%s: StagedSites = %+v, want site %d elsewhere for %v to %v", c.name, got, site.ID, c.min, c.max)
		}
	}
}

// TestTwoNodesKeepOneDeriver: under steady traffic staged through both
// nodes, the node deriving a site keeps deriving it (the other node's
// sessions memory would be cold); when it stops, the other takes over.
func TestTwoNodesKeepOneDeriver(t *testing.T) {
	s := newStore(t)
	ctx := context.Background()
	site, _ := s.CreateSite(ctx, postgres.SiteSpec{Name: "two"})
	other := s.otherNode(t)
	var mets [2]*Metrics
	var nodes [2]*Writer
	for i, st := range []*postgres.Store{s.Store, other} {
		mets[i], _ = NewMetrics(nil)
		nodes[i] = New(Config{Every: 10 * time.Millisecond, Metrics: mets[i]}, st)
	}
	var cancels [2]context.CancelFunc
	var loops sync.WaitGroup
	for i, w := range nodes {
		runCtx, cancel := context.WithCancel(ctx)
		cancels[i] = cancel
		loops.Go(func() { w.Run(runCtx) })
	}
	defer loops.Wait()
	defer func() {
		for _, c := range cancels {
			c()
		}
	}()

	const per = 20
	seq := uint64(0)
	stage := func(node int) {
		seq++
		if _, err := nodes[node].WriteBatch(ctx, "edge", seq, visitEvents(site.ID, int(seq)*per, per), nil); err != nil {
			t.Fatal(err)
		}
	}
	derived := func() [2]float64 {
		return [2]float64{metricValue(t, mets[0].derived), metricValue(t, mets[1].derived)}
	}
	// Steady traffic through both nodes: a batch every 40 ms for 1.5 s
	// settles which node derives, then 3.5 s more, three times stickFor.
	// counted waits until the nodes counted every event staged so far:
	// a derivation counts itself just after its commit, which empties
	// the staged rows.
	counted := func() [2]float64 {
		t.Helper()
		waitDerived(t, s, site.ID, time.Minute)
		for deadline := time.Now().Add(10 * time.Second); ; {
			d := derived()
			if d[0]+d[1] == float64(seq*per) {
				return d
			}
			if time.Now().After(deadline) {
				t.Fatalf("the nodes counted %v derived events, want %d", d, seq*per)
			}
			time.Sleep(5 * time.Millisecond) // polling, with the deadline above
		}
	}
	var before [2]float64
	for i := range 125 {
		if i == 37 {
			before = counted()
		}
		stage(i % 2)
		time.Sleep(40 * time.Millisecond)
	}
	after := counted()
	owner := 0
	if after[1]-before[1] > after[0]-before[0] {
		owner = 1
	}
	if took := after[1-owner] - before[1-owner]; took > 0 {
		t.Fatalf("node %d derived %v events while node %d kept deriving the site (%v): derivations alternated", 1-owner, took, owner, after[owner]-before[owner])
	}

	// The deriving node stops: the other derives what is staged next
	// within the interval, stickFor and a look.
	cancels[owner]()
	left := derived()[1-owner]
	stage(1 - owner)
	start := time.Now()
	waitDerived(t, s, site.ID, 2*stickFor+5*time.Second)
	cancels[1-owner]() // the last derivation counts itself after its commit
	loops.Wait()
	if got := derived()[1-owner] - left; got != per {
		t.Fatalf("the remaining node derived %v events after the other stopped, want %d", got, per)
	}
	t.Logf("taken over after %v", time.Since(start).Round(time.Millisecond))
}
