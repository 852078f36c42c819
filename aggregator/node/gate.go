package node

import (
	"context"
	"sync"
	"time"

	"github.com/avila-analytics/avila/protocol"
)

// drainReason is the Retry reason a draining node gives; agents move to
// another node at once.
const drainReason = "draining: this node is shutting down, send to another node"

// membersTTL is how long a member list is reused for acks; gossip changes
// it far less often than batches arrive.
const membersTTL = 500 * time.Millisecond

// gate wraps the ingest handler: it adds the live members to every ack and
// config, so agents learn the cluster from whichever node they talk to, and
// once draining it takes no new batch while the ones in flight finish.
type gate struct {
	h       protocol.Handler
	members func() []protocol.Member

	mu       sync.Mutex
	draining bool
	inflight int
	idle     chan struct{} // closed when draining and no batch is in flight

	cacheMu  sync.Mutex
	cached   []protocol.Member
	cachedAt time.Time
	cacheGen int // bumped by invalidate, so a stale fill is not kept
}

func newGate(h protocol.Handler, members func() []protocol.Member) *gate {
	return &gate{h: h, members: members, idle: make(chan struct{})}
}

var _ protocol.Handler = (*gate)(nil)

func (g *gate) HandleBatch(ctx context.Context, wire []byte, peer protocol.Peer) protocol.Ack {
	if !g.enter() {
		return protocol.Ack{Status: protocol.AckRetry, Reason: drainReason, Members: g.liveMembers()}
	}
	ack := g.h.HandleBatch(ctx, wire, peer)
	g.leave()
	ack.Members = g.liveMembers()
	return ack
}

func (g *gate) HandleConfig(ctx context.Context, req protocol.ConfigRequest, peer protocol.Peer) (*protocol.Config, error) {
	cfg, err := g.h.HandleConfig(ctx, req, peer)
	if err != nil {
		return nil, err
	}
	// The handler may share cfg between requests: answer a copy.
	out := *cfg
	out.Members = g.liveMembers()
	return &out, nil
}

func (g *gate) enter() bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.draining {
		return false
	}
	g.inflight++
	return true
}

func (g *gate) leave() {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.inflight--
	if g.inflight == 0 && g.draining {
		close(g.idle)
	}
}

// drain stops taking batches and returns a channel closed once the batches
// in flight are answered.
func (g *gate) drain() <-chan struct{} {
	g.mu.Lock()
	defer g.mu.Unlock()
	if !g.draining {
		g.draining = true
		if g.inflight == 0 {
			close(g.idle)
		}
	}
	return g.idle
}

func (g *gate) isDraining() bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.draining
}

// invalidate makes the next ack read the member list afresh (after this
// node's own metadata changed).
func (g *gate) invalidate() {
	g.cacheMu.Lock()
	g.cached, g.cacheGen = nil, g.cacheGen+1
	g.cacheMu.Unlock()
}

func (g *gate) liveMembers() []protocol.Member {
	g.cacheMu.Lock()
	if g.cached != nil && time.Since(g.cachedAt) < membersTTL {
		m := g.cached
		g.cacheMu.Unlock()
		return m
	}
	gen := g.cacheGen
	g.cacheMu.Unlock()
	m := g.members()
	g.cacheMu.Lock()
	if gen == g.cacheGen {
		g.cached, g.cachedAt = m, time.Now()
	}
	g.cacheMu.Unlock()
	return m
}
