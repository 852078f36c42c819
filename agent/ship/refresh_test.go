package ship

import (
	"context"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/avila-analytics/avila/agent/queue"
	"github.com/avila-analytics/avila/protocol"
)

// TestRefreshConfig: with a refresh interval of an hour, only
// RefreshConfig can cause a second fetch, and a burst of calls causes one
// fetch, not one per call.
func TestRefreshConfig(t *testing.T) {
	srvTLS, cliTLS := testCerts(t)
	f := newFake()
	srv := startServer(t, "127.0.0.1:0", srvTLS, f)
	q, err := queue.Open(queue.Options{Path: filepath.Join(t.TempDir(), "queue.db")})
	if err != nil {
		t.Fatal(err)
	}
	var fetched atomic.Int64
	s, err := New(Options{Aggregators: []string{srv.addr}, TLS: cliTLS, ConfigRefresh: time.Hour}, q,
		func(*protocol.Config) { fetched.Add(1) })
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = s.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done; _ = q.Close() })

	waitFor(t, "first config fetch", 10*time.Second, func() bool { return fetched.Load() == 1 })
	for range 50 {
		s.RefreshConfig()
	}
	waitFor(t, "refreshed config fetch", 10*time.Second, func() bool { return fetched.Load() >= 2 })
	// The burst was one request: a second fetch needs another call.
	start := time.Now()
	for time.Since(start) < 2*minConfigGap {
		if n := fetched.Load(); n != 2 {
			t.Fatalf("%d fetches after one burst of RefreshConfig, want 2", n)
		}
		time.Sleep(50 * time.Millisecond)
	}
	s.RefreshConfig()
	waitFor(t, "third fetch", 10*time.Second, func() bool { return fetched.Load() == 3 })
}
