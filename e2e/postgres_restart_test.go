package e2e

import (
	"context"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/avila-analytics/avila/internal/pgserver"
)

// PostgreSQL crashes (immediate stop: no checkpoint, WAL recovery at start)
// and comes back, three times during load: every acknowledged hit is stored exactly
// once. The test runs its own server so it can stop it.
func TestPostgresRestartedUnderLoad(t *testing.T) {
	ctx := context.Background()
	dir, err := os.MkdirTemp("", "avila-e2e-pg-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o711); err != nil { // the server may run as another user
		t.Fatal(err)
	}
	srv, err := pgserver.Start(ctx, pgserver.Options{Dir: filepath.Join(dir, "data")})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = srv.Stop(context.Background()) })
	url, err := srv.CreateDatabase(ctx, "avila")
	if err != nil {
		t.Fatal(err)
	}
	s := newStack(t, url)
	// Each commit waits 50 ms before its WAL flush, so a crash often falls
	// between a statement's answer and its commit: what a client believes
	// from rows it was sent but whose commit never happened must not end
	// up in storage (a dims id cached before its insert committed did).
	for _, q := range []string{"ALTER SYSTEM SET commit_delay = 50000", "ALTER SYSTEM SET commit_siblings = 0", "SELECT pg_reload_conf()"} {
		if _, err := s.db.Exec(ctx, q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}

	var acked atomic.Int64
	done := make(chan struct{})
	restarted := make(chan struct{})
	go func() {
		defer close(restarted)
		for _, at := range []int64{5_000, 12_000, 19_000} {
			whenAcked(&acked, at, done, func() {
				if err := srv.StopImmediate(ctx); err != nil {
					t.Error(err)
					return
				}
				time.Sleep(3 * time.Second) // the outage under test, not a synchronization
				if err := srv.Start(ctx); err != nil {
					t.Error(err)
				}
			})
		}
	}()
	// ~1,900 hits per sender ~10 ms apart: the load runs ~20 s, before,
	// during and after the outages.
	res := sendHitsPaced(ctx, s, 30_000, 16, &acked, 10*time.Millisecond)
	close(done)
	<-restarted
	if len(res.acked) != 30_000 {
		t.Fatalf("agent refused hits while PostgreSQL was down: %d acknowledged, statuses %v", len(res.acked), res.status)
	}
	s.expectExactlyOnce(res)
}
