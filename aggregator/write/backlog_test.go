package write

import (
	"context"
	"testing"
	"time"

	"github.com/avila-analytics/avila/storage/postgres"
)

// TestDerivationTakesBacklog: under a backlog one derivation takes up to
// Config.MaxChunks chunks of Config.MaxEvents staged events, and the next
// one the rest. The rollup rows a derivation writes are bounded by its
// distinct cells, not its events, so the larger a derivation, the fewer
// rows per event. The site's first chunk on the node, before any chunk
// measured the events its traffic adds, takes as many as leave room for
// the most (every event a new visitor's): 5 batches of 1,000 here.
func TestDerivationTakesBacklog(t *testing.T) {
	s := newStore(t)
	ctx := context.Background()
	site, err := s.CreateSite(ctx, postgres.SiteSpec{Name: "backlog"})
	if err != nil {
		t.Fatal(err)
	}
	w := New(Config{MaxEvents: 10_000, MaxChunks: 4, DeriveFor: time.Hour}, s.Store)
	for i, evs := range pipelineBatches(site.ID, time.Now().Add(-time.Hour), 51) {
		if _, err := w.WriteBatch(ctx, "backlog", uint64(i+1), evs, nil); err != nil {
			t.Fatal(err)
		}
	}
	for _, want := range []int{5_000 + 3*10_000, 16_000} {
		n, _, err := w.deriveSite(ctx, site.ID, true)
		if err != nil {
			t.Fatal(err)
		}
		if n != want {
			t.Fatalf("a derivation took %d staged events, want %d", n, want)
		}
	}
	if left, err := s.StagedEvents(ctx, site.ID); err != nil || left != 0 {
		t.Fatalf("staged events left: %d, %v; want 0", left, err)
	}
}
