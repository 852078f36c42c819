package cluster

import (
	"context"
	"log/slog"
	"net"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/avila-analytics/avila/protocol"
)

// fast makes suspicion and rejoining quick enough for tests.
func fast(name string, seeds []string, key []byte) Config {
	return Config{
		NodeName: name, Listen: "127.0.0.1:0", Seeds: seeds, Key: key,
		Meta:          Meta{QUICAddr: "0.0.0.0:44" + name[len(name)-1:], APIAddr: "127.0.0.1:80", Version: "test"},
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

// names lists the names of members, with a "*" after draining ones.
func names(ms []protocol.Member) string {
	var out []string
	for _, m := range ms {
		s := m.Name
		if m.Draining {
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

	// A change of metadata reaches the others.
	if err := b.Update(func(m *Meta) { m.Draining, m.Load, m.Agents = true, 12.5, 3 }); err != nil {
		t.Fatal(err)
	}
	waitMembers(t, a, "n1 n2* n3")
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

	// A crashed node (no goodbye) is declared dead after suspicion.
	if err := c.Shutdown(); err != nil {
		t.Fatal(err)
	}
	waitMembers(t, a, "n1")
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
