package ship

import (
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/avila-analytics/avila/agent/queue"
	"github.com/avila-analytics/avila/protocol"
)

// testRouter ranks and picks without ever dialing: its background dials
// succeed at once without touching the network, and no client counts as
// connected.
func testRouter(id string, seeds ...string) *router {
	r := newRouter(id, seeds, &tls.Config{}, 0, slog.New(slog.NewTextHandler(io.Discard, nil)))
	r.connect = func(context.Context, *protocol.Client) error { return nil }
	r.connected = func(*protocol.Client) bool { return false }
	return r
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
	nodes := []string{"127.0.1.1:4433", "127.0.1.2:4433", "127.0.1.3:4433"}
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

// fakeDial stands in for the network in router tests: which addresses
// have a connection up, and whether a dial to an address succeeds.
type fakeDial struct {
	mu    sync.Mutex
	up    map[string]bool
	fails map[string]bool
	dials map[string]int
}

func fakeDialer(r *router) *fakeDial {
	f := &fakeDial{up: map[string]bool{}, fails: map[string]bool{}, dials: map[string]int{}}
	r.connect = func(_ context.Context, c *protocol.Client) error {
		f.mu.Lock()
		defer f.mu.Unlock()
		f.dials[c.Addr()]++
		if f.fails[c.Addr()] {
			return fmt.Errorf("dial %s: no answer", c.Addr())
		}
		f.up[c.Addr()] = true
		return nil
	}
	r.connected = func(c *protocol.Client) bool {
		f.mu.Lock()
		defer f.mu.Unlock()
		return f.up[c.Addr()]
	}
	return f
}

func (f *fakeDial) set(addr string, up, fails bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.up[addr], f.fails[addr] = up, fails
}

// use is pick as a delivery does it: the picked node gets a connection.
func (f *fakeDial) use(r *router) string {
	addr := r.pick().Addr()
	f.mu.Lock()
	defer f.mu.Unlock()
	f.up[addr] = true
	return addr
}

// reset forgets every connection and dial.
func (f *fakeDial) reset() {
	f.mu.Lock()
	defer f.mu.Unlock()
	clear(f.up)
	clear(f.dials)
}

func (f *fakeDial) count(addr string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.dials[addr]
}

func TestRouterPenaltiesAndOrder(t *testing.T) {
	now := time.Unix(1000, 0)
	r := testRouter("agent-x", "seed-a:1", "seed-b:1")
	r.now = func() time.Time { return now }
	dial := fakeDialer(r)
	// Before any member list the seeds are the candidates.
	if first := r.pick().Addr(); first != r.order[0] || len(r.order) != 2 {
		t.Fatalf("seed order %v, picked %s", r.order, first)
	}
	// That pick dialed the next seed in the background to keep it as a
	// standby; start the member list from no connection and no dial, so
	// what follows does not depend on whether that dial has finished.
	r.probes.Wait()
	dial.reset()
	r.learn([]protocol.Member{{Name: "a", QUICAddr: "a:1"}, {Name: "b", QUICAddr: "b:1"},
		{Name: "c", QUICAddr: "c:1", Draining: true}, {Name: "s", QUICAddr: "seed-a:1"},
		{Name: "p", QUICAddr: "p:1", State: protocol.MemberSuspect},
		{Name: "d", QUICAddr: "d:1", State: protocol.MemberDead, Draining: true}})
	// Live members first, then seeds that are not members, suspect ones,
	// draining last; dead ones are no candidates.
	if len(r.order) != 6 || r.order[3] != "seed-b:1" || r.order[4] != "p:1" || r.order[5] != "c:1" {
		t.Fatalf("order %v", r.order)
	}
	first, second := r.order[0], r.order[1]

	// Failures of requests in flight together count once.
	r.failed(first)
	r.failed(first)
	r.failed(first)
	if got := dial.use(r); got != second {
		t.Fatalf("after a failure picked %s, want %s", got, second)
	}
	r.probes.Wait()
	if n := dial.count(first); n != 0 {
		t.Fatalf("a node down within its penalty was dialed %d times", n)
	}
	// After the penalty deliveries still go elsewhere: the node is dialed
	// in the background, and picked once that dial succeeded.
	dial.set(first, false, true)
	now = now.Add(minPenalty)
	if got := dial.use(r); got != second {
		t.Fatalf("after the penalty, before a dial succeeded, picked %s, want %s", got, second)
	}
	r.probes.Wait()
	if n := dial.count(first); n != 1 {
		t.Fatalf("after the penalty the node was dialed %d times, want 1", n)
	}
	// That dial failed: the penalty doubled.
	now = now.Add(minPenalty)
	if got := dial.use(r); got != second {
		t.Fatalf("second penalty too short: picked %s", got)
	}
	r.probes.Wait()
	if n := dial.count(first); n != 1 {
		t.Fatalf("dialed within the doubled penalty: %d dials", n)
	}
	dial.set(first, false, false)
	now = now.Add(minPenalty)
	dial.use(r)
	r.probes.Wait()
	if got := dial.use(r); got != first {
		t.Fatalf("after a successful dial picked %s, want %s back", got, first)
	}
	r.failed(first)
	r.succeeded(first)
	if r.down[first] != nil {
		t.Error("success kept the down mark")
	}

	// Every candidate down: the one free soonest.
	for i, a := range r.order {
		r.down[a] = &downMark{failures: 1, until: now.Add(time.Duration(10-i) * time.Second)}
	}
	if got := r.pick().Addr(); got != r.order[len(r.order)-1] {
		t.Errorf("all down: picked %s, want %s", got, r.order[len(r.order)-1])
	}
	// An empty list (an old aggregator) changes nothing.
	before := len(r.order)
	r.learn(nil)
	if len(r.order) != before {
		t.Error("an empty member list dropped the candidates")
	}
}

// A node that failed stays skipped while the cluster still lists it alive
// (its gossip has not noticed yet); it is used again once the cluster lists
// it with a new incarnation, or alive after listing it suspect or dead and
// a dial succeeded.
func TestRouterSkipsFailedNodeUntilClusterSaysAlive(t *testing.T) {
	now := time.Unix(1000, 0)
	r := testRouter("agent-y", "a:1")
	r.now = func() time.Time { return now }
	dial := fakeDialer(r)
	list := func(state string, inc int64) []protocol.Member {
		return []protocol.Member{{Name: "a", QUICAddr: "a:1", State: state, Incarnation: inc},
			{Name: "b", QUICAddr: "b:1", State: protocol.MemberAlive, Incarnation: 1}}
	}
	r.learn(list(protocol.MemberAlive, 1))
	// The agent's preferred node of the two, and the other.
	pref, other := r.order[0], r.order[1]
	ms := list(protocol.MemberAlive, 1)
	if pref != "a:1" {
		ms[0].QUICAddr, ms[1].QUICAddr = "b:1", "a:1"
	}
	withState := func(state string, inc int64) []protocol.Member {
		out := slices.Clone(ms)
		out[0].State, out[0].Incarnation = state, inc
		return out
	}
	dial.set(pref, false, true) // killed: dials get no answer
	r.failed(pref)
	// A node that has not heard of the death yet lists it alive: skipped.
	r.learn(withState(protocol.MemberAlive, 1))
	if got := r.pick().Addr(); got != other {
		t.Fatalf("picked %s, the node that just failed", got)
	}
	r.probes.Wait()
	if n := dial.count(pref); n != 0 {
		t.Fatalf("the failed node was dialed %d times while listed alive as before", n)
	}
	// Suspect, then dead, then alive again but still unreachable: one dial
	// in the background, no delivery there.
	r.learn(withState(protocol.MemberSuspect, 1))
	r.learn(withState(protocol.MemberDead, 1))
	if slices.Contains(r.order, pref) {
		t.Fatalf("dead node still a candidate: %v", r.order)
	}
	r.learn(withState(protocol.MemberAlive, 1))
	r.probes.Wait()
	if n := dial.count(pref); n != 1 {
		t.Fatalf("listed alive again: %d dials, want 1", n)
	}
	if got := r.pick().Addr(); got != other {
		t.Fatalf("picked %s whose dial failed", got)
	}
	// Restarted: a new incarnation is used at once.
	dial.set(pref, false, false)
	r.learn(withState(protocol.MemberAlive, 2))
	if got := r.pick().Addr(); got != pref {
		t.Fatalf("after a restart picked %s, want %s", got, pref)
	}
}

// A preferred node without a connection yet is dialed in the background
// while deliveries use the connection already up to another node.
func TestRouterPrefersEstablishedConnectionWhileDialing(t *testing.T) {
	r := testRouter("agent-z")
	dial := fakeDialer(r)
	r.learn(members("a:1", "b:1", "c:1"))
	pref, other := r.order[0], r.order[2]
	dial.set(other, true, false)
	if got := r.pick().Addr(); got != other {
		t.Fatalf("picked %s, want the connected %s while %s is dialed", got, other, pref)
	}
	r.probes.Wait()
	if got := r.pick().Addr(); got != pref {
		t.Fatalf("after the dial picked %s, want %s", got, pref)
	}
	// With no connection anywhere the preferred node is picked, to be
	// dialed by the delivery itself.
	r2 := testRouter("agent-z")
	fakeDialer(r2)
	r2.learn(members("a:1", "b:1", "c:1"))
	if got := r2.pick().Addr(); got != pref {
		t.Fatalf("nothing connected: picked %s, want %s", got, pref)
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
