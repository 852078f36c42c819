package e2e

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/avila-analytics/avila/internal/testenv"
)

// 20,000 hits from 32 concurrent senders: the query API counts exactly 20,000.
func TestHitsReachPostgresExactlyOnce(t *testing.T) {
	s := newStack(t, testenv.PostgresURL(t))
	res := sendHits(context.Background(), s, 20_000, 32, nil)
	if len(res.acked) != 20_000 {
		t.Fatalf("agent acknowledged %d of 20000 hits (statuses %v)", len(res.acked), res.status)
	}
	t.Logf("agent: %.0f hits/s with 32 senders (durable)", res.hitsPerSecond())
	s.expectExactlyOnce(res)
	eventually(t, time.Minute, "runReport eventCount = 20000", func() error {
		n, err := s.pageViews()
		if err != nil {
			return err
		}
		if n != 20_000 {
			return fmt.Errorf("eventCount = %d", n)
		}
		return nil
	})
}

// SIGKILL the agent in the middle of 50,000 hits and start it again on the
// same data directory: every 204-acknowledged hit is stored exactly once.
func TestAgentKilledUnderLoad(t *testing.T) {
	s := newStack(t, testenv.PostgresURL(t))
	var acked atomic.Int64
	done := make(chan struct{})
	go whenAcked(&acked, 15_000, done, func() {
		s.agent.kill()
		s.agent.restart()
	})
	res := sendHits(context.Background(), s, 50_000, 32, &acked)
	close(done)
	if len(res.failed) == 0 {
		t.Fatal("no request failed: the agent was not killed during the load")
	}
	s.expectExactlyOnce(res)
}

// Stop the aggregator (SIGKILL) for 30 s during load: the agent keeps
// acknowledging from its queue, and everything arrives once it is back.
func TestAggregatorDownForThirtySeconds(t *testing.T) {
	s := newStack(t, testenv.PostgresURL(t))
	var acked atomic.Int64
	done := make(chan struct{})
	restarted := make(chan struct{})
	var atRestart atomic.Int64
	go func() {
		defer close(restarted)
		whenAcked(&acked, 5_000, done, func() {
			s.agg.kill()
			if acked.Load() >= 40_000 {
				t.Error("the load ended before the aggregator went down")
			}
			time.Sleep(30 * time.Second) // the outage under test, not a synchronization
			s.agg.restart()
			atRestart.Store(acked.Load())
		})
	}()
	// ~2,500 hits per sender at ~18 ms apart: the load runs ~45 s, before,
	// during and after the outage.
	res := sendHitsPaced(context.Background(), s, 40_000, 16, &acked, 18*time.Millisecond)
	close(done)
	<-restarted
	if int64(len(res.acked)) <= atRestart.Load() {
		t.Fatal("the load ended before the aggregator came back")
	}
	if len(res.acked) != 40_000 {
		t.Fatalf("agent refused hits while the aggregator was down: %d acknowledged, statuses %v", len(res.acked), res.status)
	}
	s.expectExactlyOnce(res)
}
