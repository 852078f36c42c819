package ship

import (
	"context"
	"fmt"
	"time"

	"github.com/avila-analytics/avila/protocol"
)

// configTimeout bounds one config fetch, so a dead aggregator does not delay
// the next attempt by a whole stream timeout.
const configTimeout = 10 * time.Second

// minConfigGap is the least time between the starts of two fetches that
// RefreshConfig asked for, so a stream of hits for an unknown site costs at
// most one fetch per second.
const minConfigGap = time.Second

// RefreshConfig asks for the site config to be fetched soon, without waiting
// for ConfigRefresh: for example because a hit named a measurement id the
// agent does not know, which a site created a moment ago would. It never
// blocks; calls while a fetch is due collapse into one, and fetches it causes
// start at least minConfigGap apart.
func (s *Shipper) RefreshConfig() {
	select {
	case s.refresh <- struct{}{}:
	default:
	}
}

// configLoop fetches the config at start and every ConfigRefresh; after a
// failure it tries again with backoff, never waiting longer than
// ConfigRefresh.
func (s *Shipper) configLoop(ctx context.Context) {
	failures := 0
	for {
		wait := s.opts.ConfigRefresh
		started := time.Now()
		if err := s.fetchConfig(ctx); err != nil {
			if ctx.Err() != nil {
				return
			}
			s.noteError(err)
			if n, ok := s.cfgLog.Allow(time.Now()); ok {
				s.log.Warn("fetching site config failed; using the cached one", "err", err, "suppressed", n)
			}
			wait = min(wait, backoff(failures))
			failures++
		} else {
			failures = 0
		}
		if !s.waitConfig(ctx, wait, started) {
			return
		}
	}
}

// waitConfig waits d, or less when RefreshConfig is called, but then until
// at least minConfigGap after last; false means ctx is done.
func (s *Shipper) waitConfig(ctx context.Context, d time.Duration, last time.Time) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	case <-s.refresh:
		if !sleep(ctx, time.Until(last.Add(minConfigGap))) {
			return false
		}
		// Requests made while waiting are served by the fetch that follows.
		select {
		case <-s.refresh:
		default:
		}
		return true
	}
}

func (s *Shipper) fetchConfig(ctx context.Context) error {
	c := s.route.pick()
	fctx, cancel := context.WithTimeout(ctx, configTimeout)
	defer cancel()
	cfg, err := c.FetchConfig(fctx, protocol.ConfigRequest{AgentID: s.q.AgentID()})
	if err != nil {
		if ctx.Err() == nil {
			s.failover(c)
		}
		return fmt.Errorf("ship: fetch config from %s: %w", c.Addr(), err)
	}
	s.route.learn(cfg.Members)
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
