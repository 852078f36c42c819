package ingest

import (
	"context"
	"sync"
	"testing"

	"github.com/avila-analytics/avila/internal/testenv"
	"github.com/avila-analytics/avila/protocol"
	"github.com/avila-analytics/avila/storage/postgres"
)

// With mTLS the certificate names the agent: two agents claiming the same
// queue id under different certificates are different agents, and neither
// can make the other's batches look like duplicates.
func TestAgentIdentityFromCertificate(t *testing.T) {
	url := testenv.PostgresURL(t)
	s, db := openStore(t, url), testenv.Pool(t, url)
	ctx := context.Background()
	site, err := s.CreateSite(ctx, postgres.SiteSpec{Name: "a"})
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	seen := map[string]int{}
	h := newHandler(s)
	h.opts.Stored = func(agent string, n int) { mu.Lock(); seen[agent] += n; mu.Unlock() }

	w := wire(t, "q1", 1, events(site.ID, 5))
	for _, tc := range []struct {
		cn  string
		dup bool
	}{{"edge-1", false}, {"edge-2", false}, {"edge-1", true}, {"", false}} {
		ack := h.HandleBatch(ctx, w, protocol.Peer{CommonName: tc.cn})
		if ack.Status != protocol.AckOK || ack.Duplicate != tc.dup {
			t.Errorf("CN %q: ack %+v, want OK with duplicate=%v", tc.cn, ack, tc.dup)
		}
	}
	if got := count(t, db, `SELECT count(*) FROM agent_batches WHERE agent_id IN ('edge-1/q1', 'edge-2/q1', 'q1')`); got != 3 {
		t.Errorf("%d batch keys, want 3 (one per certificate, one without)", got)
	}
	if seen["edge-1/q1"] != 5 || seen["edge-2/q1"] != 5 || seen["q1"] != 5 || len(seen) != 3 {
		t.Errorf("Stored saw %v", seen)
	}
}
