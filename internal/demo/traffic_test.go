package demo

import (
	"context"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"
)

// collector is a stand-in agent that records hits.
type collector struct {
	mu     sync.Mutex
	hits   []*http.Request
	status int
}

func (c *collector) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	c.mu.Lock()
	c.hits = append(c.hits, r)
	c.mu.Unlock()
	w.WriteHeader(c.status)
}

func (c *collector) count() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.hits)
}

// waitFor polls cond until it holds, failing the test after 30 s.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// runTraffic runs tr until stop holds, then cancels it and waits for Run to
// return.
func runTraffic(t *testing.T, tr *Traffic, what string, stop func() bool) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		tr.Run(ctx)
	}()
	waitFor(t, what, stop)
	cancel()
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		t.Fatal("Run did not return after its context ended")
	}
}

func TestTrafficSendsGtagHits(t *testing.T) {
	c := &collector{status: http.StatusNoContent}
	srv := httptest.NewServer(c)
	defer srv.Close()
	tr := NewTraffic(TrafficOptions{AgentURL: srv.URL, MeasurementID: "G-TRAFFIC001", Rate: 500, MaxPause: time.Millisecond, Seed: 7})
	runTraffic(t, tr, "200 hits", func() bool { return c.count() >= 200 })

	s := tr.Stats()
	c.mu.Lock()
	defer c.mu.Unlock()
	// A hit whose answer the cancellation cut off is neither a hit nor a
	// failure: at most one per visitor.
	if n := int64(len(c.hits)); s.Hits > n || s.Hits < n-s.Visitors || s.Failed != 0 {
		t.Errorf("stats %+v, but the agent answered 204 to %d hits", s, n)
	}
	if s.Visitors == 0 || s.Visitors > s.Hits {
		t.Errorf("stats %+v: want visitors between 1 and the hit count", s)
	}
	cids, addrs := map[string]bool{}, map[string]bool{}
	for _, r := range c.hits {
		addrs[r.Header.Get("X-Forwarded-For")] = true
		q := r.URL.Query()
		if r.Method != http.MethodGet || r.URL.Path != "/g/collect" || q.Get("tid") != "G-TRAFFIC001" || q.Get("en") == "" {
			t.Fatalf("hit %s %s", r.Method, r.URL)
		}
		if r.Header.Get("User-Agent") == "" || r.Header.Get("Accept-Language") == "" {
			t.Fatalf("hit without browser headers: %v", r.Header)
		}
		cids[q.Get("cid")] = true
	}
	if len(cids) < 2 {
		t.Errorf("%d distinct visitors in %d hits", len(cids), len(c.hits))
	}
	if len(addrs) < 3 || addrs[""] {
		t.Errorf("client addresses %v: want every hit to name one, several in all", addrs)
	}
}

func TestTrafficCountsRefusedHits(t *testing.T) {
	c := &collector{status: http.StatusBadRequest}
	srv := httptest.NewServer(c)
	defer srv.Close()
	tr := NewTraffic(TrafficOptions{AgentURL: srv.URL, MeasurementID: "G-TRAFFIC001", Rate: 500, MaxPause: time.Millisecond, Seed: 8})
	runTraffic(t, tr, "20 refused hits", func() bool { return tr.Stats().Failed >= 20 })
	if s := tr.Stats(); s.Hits != 0 || s.Failed < int64(c.count())-s.Visitors {
		t.Errorf("stats %+v, %d hits refused: want every refused hit counted as failed", s, c.count())
	}
}

func TestTrafficBoundsVisitorsInFlight(t *testing.T) {
	// An agent that holds every request until the test ends: visitors pile up.
	release := make(chan struct{})
	var mu sync.Mutex
	inFlight := 0
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		inFlight++
		mu.Unlock()
		select {
		case <-release:
		case <-r.Context().Done():
		}
		w.WriteHeader(http.StatusNoContent)
	}))
	defer srv.Close()
	defer close(release)
	tr := NewTraffic(TrafficOptions{AgentURL: srv.URL, MeasurementID: "G-TRAFFIC001", Rate: 1000, MaxVisitors: 3, Seed: 9})
	runTraffic(t, tr, "3 visitors in flight and one skipped", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return inFlight >= 3 && tr.Stats().Skipped > 0
	})
	mu.Lock()
	defer mu.Unlock()
	if s := tr.Stats(); inFlight != 3 || s.Visitors != 3 {
		t.Errorf("%d requests in flight, stats %+v: want 3 visitors at most", inFlight, s)
	}
}
