package cluster

import (
	"context"
	"net"
	"time"
)

// Run tries, every RejoinInterval until ctx is done, the seeds that are not
// live members. Joining a live node is harmless, and joining a dead one
// fails fast, so this is cheap; it is what lets nodes started before their
// seeds, and the two sides of a healed network split, find each other.
func (c *Cluster) Run(ctx context.Context) {
	if len(c.seeds) == 0 {
		return
	}
	t := time.NewTicker(c.cfg.RejoinInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			c.rejoin()
		}
	}
}

func (c *Cluster) rejoin() {
	c.life.Lock()
	closed := c.closed
	c.life.Unlock()
	if closed {
		return
	}
	live := map[string]bool{}
	c.pmu.Lock()
	for _, p := range c.peers {
		live[p.gossip] = true
	}
	c.pmu.Unlock()
	var missing []string
	for _, s := range c.seeds {
		a, err := net.ResolveUDPAddr("udp", s)
		if err != nil || !live[a.String()] {
			missing = append(missing, s)
		}
	}
	if len(missing) == 0 {
		return
	}
	n, err := c.ml.Join(missing)
	if n > 0 {
		c.log.Info("contacted cluster seeds", "seeds", missing, "answered", n, "members", c.ml.NumMembers())
	} else if err != nil {
		c.log.Debug("cluster seeds not reachable", "seeds", missing, "err", err)
	}
}
