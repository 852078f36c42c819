package cluster

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/avila-analytics/avila/protocol"
)

// fast makes suspicion and rejoining quick enough for tests.
func fast(name string, seeds []string, key []byte) Config {
	return Config{
		NodeName: name, Listen: "127.0.0.1:0", Seeds: seeds, Key: key,
		Meta: Meta{QUICAddr: "0.0.0.0:44" + name[len(name)-1:], APIAddr: "127.0.0.1:80", Version: "test", Protocol: 7,
			Started: int64(name[len(name)-1] - '0')},
		ProbeInterval: 100 * time.Millisecond, SuspicionMult: 2, RejoinInterval: 200 * time.Millisecond,
		Logger: slog.New(slog.DiscardHandler),
	}
}

func start(t *testing.T, cfg Config) *Cluster {
	t.Helper()
	c, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { c.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done; _ = c.Shutdown() })
	return c
}

// names lists the names of members, with a "*" after draining ones and
// the state after those not alive.
func names(ms []protocol.Member) string {
	var out []string
	for _, m := range ms {
		s := m.Name
		switch {
		case m.State != protocol.MemberAlive:
			s += "(" + m.State + ")"
		case m.Draining:
			s += "*"
		}
		out = append(out, s)
	}
	return strings.Join(out, " ")
}

func waitMembers(t *testing.T, c *Cluster, want string) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		got := names(c.Members())
		if got == want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s sees members %q, want %q", c.Name(), got, want)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestThreeNodesShareMembershipAndMeta(t *testing.T) {
	key := []byte("0123456789abcdef0123456789abcdef")
	a := start(t, fast("n1", nil, key))
	b := start(t, fast("n2", []string{a.GossipAddr()}, key))
	c := start(t, fast("n3", []string{b.GossipAddr()}, key))
	for _, n := range []*Cluster{a, b, c} {
		waitMembers(t, n, "n1 n2 n3")
	}
	// Metadata travels, with the unspecified QUIC host replaced by the
	// gossip IP agents can dial.
	ms := c.Members()
	if ms[0].QUICAddr != "127.0.0.1:441" || ms[0].APIAddr != "127.0.0.1:80" || ms[0].Version != "test" {
		t.Errorf("n3's view of n1: %+v", ms[0])
	}

	// The batch versions a node reads travel too: a newer one is read by
	// a peer that tells it (n1 reads 7 itself, which does not count).
	if err := b.Update(func(m *Meta) { m.Protocol = 9 }); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(20 * time.Second); !a.Reads(9); time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("n1 does not see n2 read version 9: %+v", a.Status())
		}
	}
	if a.Reads(10) || b.Reads(9) {
		t.Errorf("version 10 read by a peer of n1: %v; version 9 by a peer of n2: %v; want neither", a.Reads(10), b.Reads(9))
	}

	// A change of metadata reaches the others.
	if err := b.Update(func(m *Meta) { m.Draining, m.Load, m.Agents = true, 12.5, 3 }); err != nil {
		t.Fatal(err)
	}
	waitMembers(t, a, "n1 n2* n3")
	if a.Reads(9) {
		t.Error("a draining node counted as a reader of version 9")
	}
	waitMembers(t, c, "n1 n2* n3")
	st := a.Status()
	if st[1].Load != 12.5 || st[1].Agents != 3 || st[1].State != "alive" || st[0].Self != true || st[1].Self {
		t.Errorf("n1's status: %+v", st)
	}

	// Leaving is seen at once, without a suspicion period.
	if err := b.Leave(); err != nil {
		t.Fatal(err)
	}
	if err := b.Update(func(m *Meta) {}); err != ErrClosed {
		t.Errorf("Update after Leave: %v, want ErrClosed", err)
	}
	waitMembers(t, a, "n1 n3")
	waitMembers(t, c, "n1 n3")

	// A crashed node (no goodbye) is declared dead after suspicion, and
	// listed as dead (draining too, for agents that know no states).
	if err := c.Shutdown(); err != nil {
		t.Fatal(err)
	}
	waitMembers(t, a, "n1 n3(dead)")
	if m := a.Members()[1]; !m.Draining || m.Incarnation != 3 {
		t.Errorf("dead member %+v: want draining and incarnation 3", m)
	}
}

// A node that stops answering is listed as suspect by its peers' own
// probes long before gossip declares it dead; a restarted node is listed
// alive with its new incarnation.
func TestCrashedNodeSuspectThenDead(t *testing.T) {
	cfg := fast("n1", nil, nil)
	cfg.SuspicionMult = 30 // three seconds of suspicion: plenty to see it
	a := start(t, cfg)
	cb := fast("n2", []string{a.GossipAddr()}, nil)
	b := start(t, cb)
	waitMembers(t, a, "n1 n2")
	if err := b.Shutdown(); err != nil {
		t.Fatal(err)
	}
	waitMembers(t, a, "n1 n2(suspect)")
	if st := a.Status(); st[1].State != "suspect" {
		t.Errorf("status %+v, want n2 suspect", st)
	}
	waitMembers(t, a, "n1 n2(dead)")

	// Back on the same address, started anew.
	cb.Listen, cb.Meta.Started = b.GossipAddr(), 4
	var err error
	deadline := time.Now().Add(10 * time.Second)
	for {
		if b, err = New(cb); err == nil {
			break
		}
		if time.Now().After(deadline) { // the port may linger briefly
			t.Fatal(err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Cleanup(func() { _ = b.Shutdown() })
	waitMembers(t, a, "n1 n2")
	if m := a.Members()[1]; m.Incarnation != 4 || m.State != protocol.MemberAlive {
		t.Errorf("restarted member %+v: want alive, incarnation 4", m)
	}
}

// closedConnLog is a log handler that keeps the messages naming a closed
// socket.
type closedConnLog struct {
	mu   *sync.Mutex
	seen *[]string
}

func newClosedConnLog() closedConnLog { return closedConnLog{mu: &sync.Mutex{}, seen: new([]string)} }

func (closedConnLog) Enabled(context.Context, slog.Level) bool { return true }
func (h closedConnLog) WithAttrs([]slog.Attr) slog.Handler     { return h }
func (h closedConnLog) WithGroup(string) slog.Handler          { return h }

func (h closedConnLog) Handle(_ context.Context, r slog.Record) error {
	if strings.Contains(r.Message, "use of closed network connection") {
		h.mu.Lock()
		*h.seen = append(*h.seen, r.Message)
		h.mu.Unlock()
	}
	return nil
}

func (h closedConnLog) lines() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return slices.Clone(*h.seen)
}

// A node that leaves while its probes and rejoins run (as a draining
// aggregator does) logs no socket error, and neither do its peers, which
// do not list it as dead.
func TestCleanLeaveLogsNoSocketErrors(t *testing.T) {
	var logs [3]closedConnLog
	var nodes [3]*Cluster
	for i := range nodes {
		cfg := fast(fmt.Sprintf("n%d", i+1), nil, nil)
		if i > 0 {
			// Every node seeds with all: rejoins run all the time.
			cfg.Seeds = []string{nodes[0].GossipAddr(), nodes[i-1].GossipAddr()}
		}
		cfg.RejoinInterval = 10 * time.Millisecond
		logs[i] = newClosedConnLog()
		cfg.Logger = slog.New(logs[i])
		nodes[i] = start(t, cfg)
	}
	for _, n := range nodes {
		waitMembers(t, n, "n1 n2 n3")
	}
	// It leaves without draining first: its peers know from its goodbye
	// that it did not die, and do not list it as dead.
	if err := nodes[1].Leave(); err != nil {
		t.Fatal(err)
	}
	waitMembers(t, nodes[0], "n1 n3")
	waitMembers(t, nodes[2], "n1 n3")
	// Two more rounds of probes and rejoins on every node.
	for _, n := range []*Cluster{nodes[0], nodes[2]} {
		n.probe()
		n.rejoin()
		n.probe()
	}
	nodes[1].probe()
	nodes[1].rejoin()
	for i := range logs {
		if got := logs[i].lines(); len(got) > 0 {
			t.Errorf("n%d logged closed-connection errors: %q", i+1, got)
		}
	}
}

func TestSeedsJoinedWhenTheyComeUp(t *testing.T) {
	// n1's seed does not exist yet: it runs alone, then joins once the
	// seed is up, because Run keeps trying it.
	probe := start(t, fast("n9", nil, nil))
	seed := probe.GossipAddr()
	if err := probe.Shutdown(); err != nil {
		t.Fatal(err)
	}
	a := start(t, fast("n1", []string{seed}, nil))
	waitMembers(t, a, "n1")
	var b *Cluster
	deadline := time.Now().Add(10 * time.Second)
	for {
		cfg := fast("n2", nil, nil)
		cfg.Listen = seed
		var err error
		if b, err = New(cfg); err == nil {
			t.Cleanup(func() { _ = b.Shutdown() })
			break
		}
		if time.Now().After(deadline) { // the port may linger briefly
			t.Fatal(err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	waitMembers(t, a, "n1 n2")
	waitMembers(t, b, "n1 n2")
}

func TestWrongKeyCannotJoin(t *testing.T) {
	a := start(t, fast("n1", nil, []byte("0123456789abcdef")))
	b := start(t, fast("n2", []string{a.GossipAddr()}, []byte("fedcba9876543210")))
	c := start(t, fast("n3", []string{a.GossipAddr()}, nil))
	time.Sleep(time.Second) // several rejoin attempts; nothing to poll for
	for _, n := range []*Cluster{a, b, c} {
		if got := names(n.Members()); got != n.Name() {
			t.Errorf("%s sees %q; nodes with different keys must not merge", n.Name(), got)
		}
	}
}

func TestConfigErrors(t *testing.T) {
	f := func(cfg Config, want string) {
		t.Helper()
		_, err := New(cfg)
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("New(%+v) error %v, want %q", cfg, err, want)
		}
	}
	f(Config{Listen: "127.0.0.1:0"}, "--node-name is required")
	f(Config{NodeName: "a", Listen: "127.0.0.1:0", Key: []byte("short")}, "--gossip-key must decode to 16, 24 or 32 bytes, got 5")
	f(Config{NodeName: "a", Listen: "127.0.0.1"}, `--gossip-listen "127.0.0.1": want host:port`)
	f(Config{NodeName: "a", Listen: "127.0.0.1:0", Seeds: []string{"seed"}}, `--join "seed": want host:port`)
	f(Config{NodeName: "a", Listen: "127.0.0.1:0", Meta: Meta{Version: strings.Repeat("v", 600)}}, "gossip allows 512")
}

func TestSelfSeedIgnored(t *testing.T) {
	a := start(t, fast("n1", nil, nil))
	// One seed list for every node, this node's own address included.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	own := l.Addr().String()
	l.Close()
	cfg := fast("n2", []string{own, a.GossipAddr()}, nil)
	cfg.Listen = own
	b := start(t, cfg)
	if !slices.Equal(b.seeds, []string{a.GossipAddr()}) {
		t.Errorf("seeds %v, want only the peer's", b.seeds)
	}
	waitMembers(t, a, "n1 n2")
}
