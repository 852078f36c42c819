package ship

import (
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/avila-analytics/avila/agent/queue"
	"github.com/avila-analytics/avila/protocol"
)

// testRouter ranks and picks without ever dialing.
func testRouter(id string, seeds ...string) *router {
	return newRouter(id, seeds, &tls.Config{}, 0, slog.New(slog.NewTextHandler(io.Discard, nil)))
}

func members(addrs ...string) []protocol.Member {
	var ms []protocol.Member
	for i, a := range addrs {
		ms = append(ms, protocol.Member{Name: fmt.Sprintf("n%d", i), QUICAddr: a})
	}
	return ms
}

// Rendezvous hashing spreads agents over the nodes, and a node leaving
// moves only its own agents; coming back, it gets them back.
func TestRouterSpreadsAndMovesOnlyAffectedAgents(t *testing.T) {
	nodes := []string{"10.0.0.1:4433", "10.0.0.2:4433", "10.0.0.3:4433"}
	const agents = 900
	before := map[string]string{}
	count := map[string]int{}
	for i := range agents {
		r := testRouter(fmt.Sprintf("agent-%d", i), "seed:4433")
		r.learn(members(nodes...))
		addr := r.pick().Addr()
		before[r.agentID] = addr
		count[addr]++

		r.learn(members(nodes[0], nodes[2])) // node 2 left
		moved := r.pick().Addr()
		if addr != nodes[1] && moved != addr {
			t.Fatalf("%s moved from %s to %s though its node stayed", r.agentID, addr, moved)
		}
		if moved == nodes[1] {
			t.Fatalf("%s still on the node that left", r.agentID)
		}
		r.learn(members(nodes...)) // node 2 is back
		if back := r.pick().Addr(); back != addr {
			t.Fatalf("%s on %s after the node came back, was on %s", r.agentID, back, addr)
		}
	}
	for _, n := range nodes {
		if count[n] < agents/3-agents/10 || count[n] > agents/3+agents/10 {
			t.Errorf("node %s preferred by %d of %d agents; want about a third: %v", n, count[n], agents, count)
		}
	}
}

func TestRouterPenaltiesAndOrder(t *testing.T) {
	now := time.Unix(1000, 0)
	r := testRouter("agent-x", "seed-a:1", "seed-b:1")
	r.now = func() time.Time { return now }
	// Before any member list the seeds are the candidates.
	if first := r.pick().Addr(); first != r.order[0] || len(r.order) != 2 {
		t.Fatalf("seed order %v, picked %s", r.order, first)
	}
	r.learn([]protocol.Member{{Name: "a", QUICAddr: "a:1"}, {Name: "b", QUICAddr: "b:1"},
		{Name: "c", QUICAddr: "c:1", Draining: true}, {Name: "s", QUICAddr: "seed-a:1"}})
	// Live members first, then seeds that are not members, draining last.
	if len(r.order) != 5 || r.order[3] != "seed-b:1" || r.order[4] != "c:1" {
		t.Fatalf("order %v", r.order)
	}
	first, second := r.order[0], r.order[1]

	// Failures of requests in flight together count once.
	r.failed(first)
	r.failed(first)
	r.failed(first)
	if got := r.pick().Addr(); got != second {
		t.Fatalf("after a failure picked %s, want %s", got, second)
	}
	now = now.Add(minPenalty)
	if got := r.pick().Addr(); got != first {
		t.Fatalf("after the penalty picked %s, want %s back", got, first)
	}
	// Failing again after the penalty doubles it.
	r.failed(first)
	now = now.Add(minPenalty)
	if got := r.pick().Addr(); got != second {
		t.Fatalf("second penalty too short: picked %s", got)
	}
	now = now.Add(minPenalty)
	if got := r.pick().Addr(); got != first {
		t.Fatalf("after the doubled penalty picked %s, want %s", got, first)
	}
	r.succeeded(first)
	if r.bad[first] != nil {
		t.Error("success kept the penalty")
	}

	// Every candidate passed over: the one free soonest.
	for i, a := range r.order {
		r.bad[a] = &penalty{failures: 1, until: now.Add(time.Duration(10-i) * time.Second)}
	}
	if got := r.pick().Addr(); got != r.order[len(r.order)-1] {
		t.Errorf("all passed over: picked %s, want %s", got, r.order[len(r.order)-1])
	}
	// An empty list (an old aggregator) changes nothing.
	before := len(r.order)
	r.learn(nil)
	if len(r.order) != before {
		t.Error("an empty member list dropped the candidates")
	}
}

// node is one fake aggregator of a cluster whose nodes share storage (as
// real ones share PostgreSQL), so a batch resent to another node is found.
type node struct {
	*fakeAggregator
	name     string
	addr     string
	batches  atomic.Int64
	draining atomic.Bool
	cluster  *fakeCluster
}

type fakeCluster struct {
	mu    sync.Mutex
	nodes []*node
}

func (c *fakeCluster) members() []protocol.Member {
	c.mu.Lock()
	defer c.mu.Unlock()
	var ms []protocol.Member
	for _, n := range c.nodes {
		ms = append(ms, protocol.Member{Name: n.name, QUICAddr: n.addr, Draining: n.draining.Load()})
	}
	return ms
}

func (n *node) HandleBatch(ctx context.Context, wire []byte, p protocol.Peer) protocol.Ack {
	if n.draining.Load() {
		return protocol.Ack{Status: protocol.AckRetry, Reason: "draining", Members: n.cluster.members()}
	}
	n.batches.Add(1)
	ack := n.fakeAggregator.HandleBatch(ctx, wire, p)
	ack.Members = n.cluster.members()
	return ack
}

func (n *node) HandleConfig(ctx context.Context, req protocol.ConfigRequest, p protocol.Peer) (*protocol.Config, error) {
	cfg, err := n.fakeAggregator.HandleConfig(ctx, req, p)
	if err == nil {
		cfg.Members = n.cluster.members()
	}
	return cfg, err
}

// An agent seeded with one node learns the other two, sticks to its
// rendezvous choice, leaves it when it drains and when it dies, and
// everything is stored exactly once.
func TestShipFollowsClusterMembers(t *testing.T) {
	srvTLS, cliTLS := testCerts(t)
	store := newFake()
	cl := &fakeCluster{}
	servers := map[string]*server{}
	for _, name := range []string{"a", "b", "c"} {
		n := &node{fakeAggregator: store, name: name, cluster: cl}
		srv := startServer(t, "127.0.0.1:0", srvTLS, n)
		n.addr = srv.addr
		servers[name] = srv
		cl.mu.Lock()
		cl.nodes = append(cl.nodes, n)
		cl.mu.Unlock()
	}
	q, err := queue.Open(queue.Options{Path: filepath.Join(t.TempDir(), "queue.db")})
	if err != nil {
		t.Fatal(err)
	}
	r := &rig{t: t, q: q}
	r.s, err = New(Options{Aggregators: []string{cl.nodes[0].addr}, TLS: cliTLS, SegmentEvents: 20,
		SealInterval: 10 * time.Millisecond, InFlight: 3, SendTimeout: 5 * time.Second, PeerTimeout: time.Second,
		ConfigRefresh: time.Hour}, q, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	r.cancel, r.done = cancel, make(chan struct{})
	go func() { defer close(r.done); _ = r.s.Run(ctx) }()
	t.Cleanup(func() { r.stop(); _ = q.Close() })

	// The agent's own ranking of the three, as it will learn them.
	rank := testRouter(q.AgentID())
	rank.learn(cl.members())
	var byAddr = map[string]*node{}
	for _, n := range cl.nodes {
		byAddr[n.addr] = n
	}
	first, second := byAddr[rank.order[0]], byAddr[rank.order[1]]

	ids := r.append(200)
	waitDelivered(t, r, store, ids, 20*time.Second)
	waitFor(t, "the agent on its preferred node", 10*time.Second, func() bool { return r.s.Stats().Aggregator == first.addr })
	got := first.batches.Load()
	ids = append(ids, r.append(200)...)
	waitDelivered(t, r, store, ids, 20*time.Second)
	if first.batches.Load() == got {
		t.Fatalf("preferred node %s got none of the second load", first.name)
	}

	// Its node drains: the agent moves to its second choice at once.
	first.draining.Store(true)
	ids = append(ids, r.append(200)...)
	waitDelivered(t, r, store, ids, 20*time.Second)
	if st := r.s.Stats(); st.Aggregator != second.addr {
		t.Fatalf("while %s drains the agent uses %s, want %s", first.name, st.Aggregator, second.addr)
	}
	// Its second choice dies without a word: the agent moves on to its
	// third, the only node left taking batches.
	third := byAddr[rank.order[2]]
	servers[second.name].stop()
	ids = append(ids, r.append(200)...)
	waitDelivered(t, r, store, ids, 30*time.Second)
	if st := r.s.Stats(); st.Aggregator != third.addr {
		t.Fatalf("with %s draining and %s dead the agent uses %s, want %s", first.name, second.name, st.Aggregator, third.addr)
	}

	// The drained node is back: the agent returns to it.
	first.draining.Store(false)
	got = first.batches.Load()
	waitFor(t, "the agent back on its preferred node", 30*time.Second, func() bool {
		ids = append(ids, r.append(20)...)
		return r.s.Stats().Aggregator == first.addr && first.batches.Load() > got
	})
	waitDelivered(t, r, store, ids, 30*time.Second)
}
