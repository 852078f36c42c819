package ship

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"encoding/binary"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/avila-analytics/avila/protocol"
)

// Penalty for an aggregator that failed: it is skipped for at least
// minPenalty, doubling per failure up to maxPenalty; after that a dial in
// the background tells whether it is back.
const (
	minPenalty = time.Second
	maxPenalty = 30 * time.Second
)

// router chooses the aggregator a shipper talks to. The candidates are the
// members last learned from an ack or config (seeds until then), ordered by
// rendezvous hash of the agent id: every agent prefers its own node, agents
// spread over the cluster, and a node joining or leaving moves only the
// agents that prefer it. Alive members come first, then seeds that are not
// members, then suspect members, then draining ones; dead ones are not
// candidates.
//
// A node that failed (error, timeout, Retry, draining) is down for this
// agent: deliveries skip it, so they never wait on a node that just failed,
// until it is worth a try again: the cluster lists it with a new
// incarnation (it restarted), or, once its penalty ended or the cluster
// lists it alive again after not doing so, a dial in the background
// succeeds. Only when every candidate is down do deliveries try one (the
// one whose penalty ends first).
//
// Dials run outside the router's lock, one at a time per node (the client
// shares one dial between its callers). A preferred node that has no
// connection yet is dialed in the background while deliveries go on over
// an established connection further down the order, if there is one; the
// next candidate after the chosen one is kept connected as a standby.
// Safe for concurrent use.
type router struct {
	agentID   string
	seeds     []string
	newClient func(addr string) *protocol.Client
	// connect dials c (or joins its dial in progress); connected reports
	// whether c holds a live connection. Tests replace both.
	connect   func(ctx context.Context, c *protocol.Client) error
	connected func(c *protocol.Client) bool
	touch     func(c *protocol.Client) // counts a use of a connection without a request
	log       *slog.Logger
	now       func() time.Time

	ctx    context.Context // ends background dials at close
	cancel context.CancelFunc
	probes sync.WaitGroup

	mu      sync.Mutex
	order   []string // candidate QUIC addresses, preferred first
	members []protocol.Member
	byAddr  map[string]protocol.Member
	clients map[string]*protocol.Client
	down    map[string]*downMark
	probing map[string]bool // background dial in progress
	current string
}

// downMark records that a node failed for this agent.
type downMark struct {
	failures    int
	until       time.Time // end of the penalty
	incarnation int64     // the node's incarnation when it failed; 0 when unknown
	// unlisted: since the failure the cluster listed the node as not
	// usable (suspect, dead, draining) or not at all; when it lists it
	// alive again, the node is dialed at once.
	unlisted bool
}

func newRouter(agentID string, seeds []string, tlsConf *tls.Config, idle time.Duration, log *slog.Logger) *router {
	ctx, cancel := context.WithCancel(context.Background())
	r := &router{
		agentID: agentID, seeds: seeds, log: log, now: time.Now, ctx: ctx, cancel: cancel,
		newClient: func(addr string) *protocol.Client {
			return protocol.NewClientOptions(addr, tlsConf, protocol.ClientOptions{IdleTimeout: idle, CloseIdle: idle})
		},
		connect:   func(ctx context.Context, c *protocol.Client) error { return c.Connect(ctx) },
		connected: func(c *protocol.Client) bool { return c.Connected() },
		touch:     func(c *protocol.Client) { c.Touch() },
		byAddr:    map[string]protocol.Member{},
		clients:   map[string]*protocol.Client{}, down: map[string]*downMark{}, probing: map[string]bool{},
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

// learn takes the member list an aggregator sent.
func (r *router) learn(ms []protocol.Member) {
	if len(ms) == 0 {
		return
	}
	var live, suspect, draining []string
	byAddr := map[string]protocol.Member{}
	for _, m := range ms {
		if m.QUICAddr == "" {
			continue
		}
		byAddr[m.QUICAddr] = m
		switch {
		case m.State == protocol.MemberDead:
		case m.Draining:
			draining = append(draining, m.QUICAddr)
		case m.State == protocol.MemberSuspect:
			suspect = append(suspect, m.QUICAddr)
		default:
			live = append(live, m.QUICAddr)
		}
	}
	var seeds []string
	for _, s := range r.seeds {
		if _, ok := byAddr[s]; !ok {
			seeds = append(seeds, s)
		}
	}
	order := slices.Concat(r.rank(live), r.rank(seeds), r.rank(suspect), r.rank(draining))
	if len(order) == 0 { // every member dead: the seeds are all that is left
		order = r.rank(r.seeds)
	}

	r.mu.Lock()
	defer r.mu.Unlock()
	r.noteStates(byAddr)
	if slices.Equal(order, r.order) && slices.Equal(ms, r.members) {
		return
	}
	if !slices.Equal(order, r.order) {
		r.log.Info("aggregator cluster changed", "members", len(ms), "live", len(live), "suspect", len(suspect),
			"draining", len(draining), "dead", len(byAddr)-len(live)-len(suspect)-len(draining))
	}
	r.order, r.members, r.byAddr = order, slices.Clone(ms), byAddr
	// Connections to nodes no longer candidates (dead, or gone from the
	// list) are closed; a request still on one fails and is resent, which
	// is safe.
	for addr, c := range r.clients {
		if !slices.Contains(order, addr) {
			_ = c.Close()
			delete(r.clients, addr)
		}
	}
	// Marks of nodes the agent no longer knows of at all are forgotten.
	for addr := range r.down {
		if _, ok := byAddr[addr]; !ok && !slices.Contains(r.seeds, addr) {
			delete(r.down, addr)
		}
	}
}

// noteStates updates the down marks from a member list: a node listed with
// a new incarnation is up again; one listed alive after being listed as not
// usable is dialed now. r.mu is held.
func (r *router) noteStates(byAddr map[string]protocol.Member) {
	for addr, d := range r.down {
		m, ok := byAddr[addr]
		switch {
		case !ok || !m.Usable():
			d.unlisted = true
		case d.incarnation != 0 && m.Incarnation > d.incarnation:
			r.log.Info("aggregator restarted; using it again", "aggregator", addr)
			delete(r.down, addr)
		case d.unlisted:
			d.unlisted = false
			r.probe(addr)
		}
	}
}

// pick returns the client of the preferred candidate that is not down,
// preferring an established connection over one still to be dialed; when
// every candidate is down, the one whose penalty ends first.
func (r *router) pick() *protocol.Client {
	now := r.now()
	r.mu.Lock()
	defer r.mu.Unlock()
	chosen := ""
	for i, addr := range r.order {
		if d := r.down[addr]; d != nil {
			if !now.Before(d.until) {
				r.probe(addr)
			}
			continue
		}
		if r.connected(r.client(addr)) || !r.connectedAfter(i) {
			chosen = addr
			break
		}
		// Dial it for the next pick; this one goes where a connection is.
		r.probe(addr)
	}
	if chosen == "" {
		var soonest time.Time
		for _, addr := range r.order {
			if d := r.down[addr]; d != nil && (chosen == "" || d.until.Before(soonest)) {
				chosen, soonest = addr, d.until
			}
		}
	}
	// Keep the next candidate connected too, so that when the chosen node
	// dies the deliveries move without a dial; while deliveries go on, it
	// is in use as much as the chosen one, and closes only when they stop.
	if i := slices.Index(r.order, chosen); i >= 0 {
		for _, addr := range r.order[i+1:] {
			if r.down[addr] == nil {
				if c := r.client(addr); r.connected(c) {
					r.touch(c)
				} else {
					r.probe(addr)
				}
				break
			}
		}
	}
	if chosen != r.current {
		if r.current != "" {
			r.log.Info("switching aggregator", "from", r.current, "to", chosen)
		}
		r.current = chosen
	}
	return r.client(chosen)
}

// client returns addr's client, made on first use. r.mu is held.
func (r *router) client(addr string) *protocol.Client {
	c := r.clients[addr]
	if c == nil {
		c = r.newClient(addr)
		r.clients[addr] = c
	}
	return c
}

// connectedAfter reports whether a candidate after position i is up and
// connected. r.mu is held.
func (r *router) connectedAfter(i int) bool {
	for _, addr := range r.order[i+1:] {
		if r.down[addr] == nil && r.connected(r.client(addr)) {
			return true
		}
	}
	return false
}

// probe dials addr in the background, unless a dial is already under way:
// success ends its down mark, failure renews it. r.mu is held.
func (r *router) probe(addr string) {
	if r.probing[addr] || r.ctx.Err() != nil {
		return
	}
	r.probing[addr] = true
	c := r.client(addr)
	r.probes.Go(func() {
		err := r.connect(r.ctx, c)
		r.mu.Lock()
		defer r.mu.Unlock()
		delete(r.probing, addr)
		switch {
		case r.ctx.Err() != nil:
		case err == nil:
			if r.down[addr] != nil {
				r.log.Info("aggregator reachable again", "aggregator", addr)
				delete(r.down, addr)
			}
		default:
			r.markDown(addr)
		}
	})
}

// failed marks addr down. Failures of requests that were in flight
// together count once: the penalty grows only when a node fails again
// after its penalty ended.
func (r *router) failed(addr string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.markDown(addr)
}

// markDown is failed with r.mu held.
func (r *router) markDown(addr string) {
	now := r.now()
	d := r.down[addr]
	if d == nil {
		d = &downMark{}
		r.down[addr] = d
	} else if now.Before(d.until) {
		return
	}
	d.incarnation = r.byAddr[addr].Incarnation
	d.failures++
	p := maxPenalty
	if d.failures < 6 { // 1s << 5 > 30s
		p = min(maxPenalty, minPenalty<<(d.failures-1))
	}
	d.until = now.Add(p)
}

// succeeded ends addr's down mark.
func (r *router) succeeded(addr string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	delete(r.down, addr)
}

// currentAddr is the aggregator last picked ("" before the first pick).
func (r *router) currentAddr() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.current
}

// close ends background dials and closes every connection.
func (r *router) close() {
	r.cancel()
	r.probes.Wait()
	r.mu.Lock()
	defer r.mu.Unlock()
	for addr, c := range r.clients {
		_ = c.Close()
		delete(r.clients, addr)
	}
}
