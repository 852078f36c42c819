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
// and comes back during load: every acknowledged hit is stored exactly
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

	var acked atomic.Int64
	done := make(chan struct{})
	restarted := make(chan struct{})
	go func() {
		defer close(restarted)
		whenAcked(&acked, 5_000, done, func() {
			if err := srv.StopImmediate(ctx); err != nil {
				t.Error(err)
				return
			}
			time.Sleep(5 * time.Second) // the outage under test, not a synchronization
			if err := srv.Start(ctx); err != nil {
				t.Error(err)
			}
		})
	}()
	// ~1,900 hits per sender ~10 ms apart: the load runs ~20 s, before,
	// during and after the outage.
	res := sendHitsPaced(ctx, s, 30_000, 16, &acked, 10*time.Millisecond)
	close(done)
	<-restarted
	if len(res.acked) != 30_000 {
		t.Fatalf("agent refused hits while PostgreSQL was down: %d acknowledged, statuses %v", len(res.acked), res.status)
	}
	s.expectExactlyOnce(res)
}
