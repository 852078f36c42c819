package ship

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/avila-analytics/avila/protocol"
)

// configTimeout bounds one config fetch, so a dead aggregator does not delay
// the next attempt by a whole stream timeout.
const configTimeout = 10 * time.Second

// configLoop fetches the config at start and every ConfigRefresh; after a
// failure it tries again with backoff, never waiting longer than
// ConfigRefresh.
func (s *Shipper) configLoop(ctx context.Context) {
	failures := 0
	for {
		wait := s.opts.ConfigRefresh
		if err := s.fetchConfig(ctx); err != nil {
			if ctx.Err() != nil {
				return
			}
			s.noteError(err)
			if ok, n := s.cfgLog.allow(); ok {
				s.log.Warn("fetching site config failed; using the cached one", "err", err, "suppressed", n)
			}
			wait = min(wait, backoff(failures))
			failures++
		} else {
			failures = 0
		}
		if !sleep(ctx, wait) {
			return
		}
	}
}

func (s *Shipper) fetchConfig(ctx context.Context) error {
	c, idx := s.client()
	fctx, cancel := context.WithTimeout(ctx, configTimeout)
	defer cancel()
	cfg, err := c.FetchConfig(fctx, protocol.ConfigRequest{AgentID: s.q.AgentID()})
	if err != nil {
		if ctx.Err() == nil {
			s.dropConn(idx)
			s.failover(idx)
		}
		return fmt.Errorf("ship: fetch config from %s: %w", c.Addr(), err)
	}
	b, err := protocol.EncodeMsg(cfg)
	if err != nil {
		return fmt.Errorf("ship: cache config: %w", err)
	}
	if err := s.q.PutMeta(configMetaKey, b); err != nil {
		return fmt.Errorf("ship: cache config: %w", err)
	}
	s.mu.Lock()
	s.stats.ConfigFetched = time.Now()
	s.mu.Unlock()
	if s.onConfig != nil {
		s.onConfig(cfg)
	}
	return nil
}

// throttle lets a repeated log line through at most once per interval and
// counts what it held back, so an outage logs a few lines, not thousands.
type throttle struct {
	every time.Duration

	mu         sync.Mutex
	last       time.Time
	suppressed int
}

// allow reports whether to log now, and how many were suppressed since the
// last line that was let through.
func (t *throttle) allow() (bool, int) {
	t.mu.Lock()
	defer t.mu.Unlock()
	now := time.Now()
	if !t.last.IsZero() && now.Sub(t.last) < t.every {
		t.suppressed++
		return false, 0
	}
	n := t.suppressed
	t.last, t.suppressed = now, 0
	return true, n
}
