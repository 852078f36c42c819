package cluster

import (
	"context"
	"net"
	"sync"
	"time"
)

// Run probes every peer each ProbeInterval, and tries every RejoinInterval
// the seeds that are not live members, until ctx is done. Joining a live
// node is harmless, and joining a dead one fails fast, so this is cheap;
// it is what lets nodes started before their seeds, and the two sides of a
// healed network split, find each other.
func (c *Cluster) Run(ctx context.Context) {
	probe := time.NewTicker(c.cfg.ProbeInterval)
	defer probe.Stop()
	var rejoin <-chan time.Time
	if len(c.seeds) > 0 {
		t := time.NewTicker(c.cfg.RejoinInterval)
		defer t.Stop()
		rejoin = t.C
	}
	for {
		select {
		case <-ctx.Done():
			return
		case <-probe.C:
			c.probe()
		case <-rejoin:
			c.rejoin()
		}
	}
}

// running holds off Leave and Shutdown while gossip is used, and reports
// whether it is still up; call done after true.
func (c *Cluster) running() bool {
	c.life.RLock()
	if c.closed {
		c.life.RUnlock()
		return false
	}
	return true
}

func (c *Cluster) done() { c.life.RUnlock() }

// probe pings every peer at once and lists those that do not answer
// within the probe timeout as suspect, until they answer again or gossip
// declares them dead. memberlist suspects a node too, but neither says so
// nor lets it be read; these probes give this node's own view at once,
// each ProbeInterval, instead of one peer per interval.
func (c *Cluster) probe() {
	if !c.running() {
		return
	}
	defer c.done()
	targets := map[string]net.Addr{}
	c.pmu.Lock()
	for name, p := range c.peers {
		if name != c.cfg.NodeName && p.addr != nil {
			targets[name] = p.addr
		}
	}
	c.pmu.Unlock()
	var wg sync.WaitGroup
	for name, addr := range targets {
		wg.Go(func() {
			_, err := c.ml.Ping(name, addr)
			suspect := err != nil
			c.pmu.Lock()
			p, ok := c.peers[name]
			changed := ok && p.suspect != suspect
			if changed {
				p.suspect = suspect
				c.peers[name] = p
			}
			c.pmu.Unlock()
			switch {
			case changed && suspect:
				c.log.Warn("cluster member suspect: no answer to probe", "member", name, "err", err)
			case changed:
				c.log.Info("cluster member answers again", "member", name)
			}
		})
	}
	wg.Wait()
}

func (c *Cluster) rejoin() {
	if !c.running() {
		return
	}
	defer c.done()
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
