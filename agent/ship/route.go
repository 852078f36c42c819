package ship

import (
	"crypto/sha256"
	"crypto/tls"
	"encoding/binary"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/avila-analytics/avila/protocol"
)

// Penalty for an aggregator that failed: it is passed over for
// minPenalty, doubling per failure up to maxPenalty, then tried again.
const (
	minPenalty = time.Second
	maxPenalty = 30 * time.Second
)

// router chooses the aggregator a shipper talks to. The candidates are the
// live members last learned from an ack or config (seeds until then),
// ordered by rendezvous hash of the agent id: every agent prefers its own
// node, agents spread over the cluster, and a node joining or leaving moves
// only the agents that prefer it. A node that failed (error, timeout, Retry,
// draining) is passed over for a while, so the agent fails over to its next
// choice and comes back when the node does. Safe for concurrent use.
type router struct {
	agentID string
	seeds   []string
	dial    func(addr string) *protocol.Client
	log     *slog.Logger
	now     func() time.Time

	mu      sync.Mutex
	order   []string // candidate QUIC addresses, preferred first
	members []protocol.Member
	clients map[string]*protocol.Client
	bad     map[string]*penalty
	current string
}

type penalty struct {
	failures int
	until    time.Time
}

func newRouter(agentID string, seeds []string, tlsConf *tls.Config, idle time.Duration, log *slog.Logger) *router {
	r := &router{
		agentID: agentID, seeds: seeds, log: log, now: time.Now,
		dial: func(addr string) *protocol.Client {
			return protocol.NewClientOptions(addr, tlsConf, protocol.ClientOptions{IdleTimeout: idle})
		},
		clients: map[string]*protocol.Client{}, bad: map[string]*penalty{},
	}
	r.order = r.rank(seeds)
	return r
}

// score is the rendezvous weight of addr for this agent.
func (r *router) score(addr string) uint64 {
	h := sha256.Sum256([]byte(r.agentID + "\x00" + addr))
	return binary.BigEndian.Uint64(h[:8])
}

// rank orders addresses by descending score, dropping duplicates.
func (r *router) rank(addrs []string) []string {
	out := slices.Clone(addrs)
	slices.Sort(out)
	out = slices.Compact(out)
	slices.SortStableFunc(out, func(a, b string) int {
		sa, sb := r.score(a), r.score(b)
		switch {
		case sa > sb:
			return -1
		case sa < sb:
			return 1
		}
		return 0
	})
	return out
}

// learn takes the member list an aggregator sent. Live members come first;
// seeds that are not members follow (a cluster whose every member failed
// may still be reachable through them); draining members come last.
func (r *router) learn(ms []protocol.Member) {
	if len(ms) == 0 {
		return
	}
	var live, draining []string
	known := map[string]bool{}
	for _, m := range ms {
		if m.QUICAddr == "" {
			continue
		}
		known[m.QUICAddr] = true
		if m.Draining {
			draining = append(draining, m.QUICAddr)
		} else {
			live = append(live, m.QUICAddr)
		}
	}
	var seeds []string
	for _, s := range r.seeds {
		if !known[s] {
			seeds = append(seeds, s)
		}
	}
	order := append(append(r.rank(live), r.rank(seeds)...), r.rank(draining)...)

	r.mu.Lock()
	defer r.mu.Unlock()
	if slices.Equal(order, r.order) && slices.Equal(ms, r.members) {
		return
	}
	if !slices.Equal(order, r.order) {
		r.log.Info("aggregator cluster changed", "members", len(ms), "live", len(live), "draining", len(draining))
	}
	r.order, r.members = order, slices.Clone(ms)
	// Connections to nodes no longer known are closed; a request still on
	// one fails and is resent, which is safe.
	for addr, c := range r.clients {
		if !slices.Contains(order, addr) {
			_ = c.Close()
			delete(r.clients, addr)
			delete(r.bad, addr)
		}
	}
}

// pick returns the client of the preferred candidate that is not passed
// over; when every one is, the one whose penalty ends first.
func (r *router) pick() *protocol.Client {
	now := r.now()
	r.mu.Lock()
	defer r.mu.Unlock()
	chosen := ""
	var soonest time.Time
	for _, addr := range r.order {
		p := r.bad[addr]
		if p == nil || !now.Before(p.until) {
			chosen = addr
			break
		}
		if soonest.IsZero() || p.until.Before(soonest) {
			chosen, soonest = addr, p.until
		}
	}
	if chosen != r.current {
		if r.current != "" {
			r.log.Info("switching aggregator", "from", r.current, "to", chosen)
		}
		r.current = chosen
	}
	c := r.clients[chosen]
	if c == nil {
		c = r.dial(chosen)
		r.clients[chosen] = c
	}
	return c
}

// failed passes addr over for a while. Failures of requests that were in
// flight together count once: the penalty grows only when a node fails
// again after its penalty ended.
func (r *router) failed(addr string) {
	now := r.now()
	r.mu.Lock()
	defer r.mu.Unlock()
	p := r.bad[addr]
	if p == nil {
		p = &penalty{}
		r.bad[addr] = p
	} else if now.Before(p.until) {
		return
	}
	p.failures++
	d := maxPenalty
	if p.failures < 6 { // 1s << 5 > 30s
		d = min(maxPenalty, minPenalty<<(p.failures-1))
	}
	p.until = now.Add(d)
}

// succeeded clears addr's penalty.
func (r *router) succeeded(addr string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	delete(r.bad, addr)
}

// currentAddr is the aggregator last picked ("" before the first pick).
func (r *router) currentAddr() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.current
}

// close closes every connection.
func (r *router) close() {
	r.mu.Lock()
	defer r.mu.Unlock()
	for addr, c := range r.clients {
		_ = c.Close()
		delete(r.clients, addr)
	}
}
