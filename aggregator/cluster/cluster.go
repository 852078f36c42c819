package cluster

import (
	"errors"
	"fmt"
	"log"
	"log/slog"
	"net"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/memberlist"

	"github.com/avila-analytics/avila/protocol"
)

// Config configures a node's membership. Zero timing fields take memberlist's
// LAN defaults.
type Config struct {
	NodeName string   // unique in the cluster; required
	Listen   string   // gossip address host:port, TCP and UDP; port 0 picks one
	Seeds    []string // gossip addresses (host:port) of other nodes; the node's own may be among them
	// Key encrypts gossip (AES-GCM); 16, 24 or 32 bytes, the same on every
	// node. Nil gossips in clear text.
	Key []byte
	// Meta is what this node advertises at start. Addresses whose host is
	// unspecified (0.0.0.0, [::]) are advertised with the gossip address's
	// IP, since agents cannot dial an unspecified host.
	Meta   Meta
	Logger *slog.Logger

	// ProbeInterval is how often gossip probes a random peer, and this
	// node probes every peer for its own view: a peer that does not answer
	// within half of it is listed as suspect at once, and gossip declares
	// it dead after about SuspicionMult probe intervals (more in large
	// clusters). Defaults DefaultProbeInterval and DefaultSuspicionMult:
	// on a LAN a killed node is suspect within about 1 s and dead within
	// about 3 s.
	ProbeInterval time.Duration
	SuspicionMult int
	// RejoinInterval is how often the node tries seeds that are not live
	// members; default 10s. This is what merges a cluster split by a
	// network fault, or whose nodes started before their seeds.
	RejoinInterval time.Duration
}

// Failure detection defaults; see Config.ProbeInterval.
const (
	DefaultProbeInterval = 500 * time.Millisecond
	DefaultSuspicionMult = 4
)

const (
	defaultRejoinInterval = 10 * time.Second
	// deadTTL is how long a dead member stays listed as dead.
	deadTTL = time.Minute
	// broadcastTimeout bounds waiting for a metadata change or a leave to
	// reach at least one peer.
	broadcastTimeout = 3 * time.Second
)

// Cluster is this node's membership. Safe for concurrent use.
type Cluster struct {
	cfg   Config
	log   *slog.Logger
	ml    *memberlist.Memberlist
	self  string // advertised gossip address ip:port
	seeds []string

	mu       sync.Mutex // guards meta and metaWire
	meta     Meta
	metaWire []byte

	pmu   sync.Mutex      // guards peers and gone
	peers map[string]peer // live members by name, this node included
	gone  map[string]gone // members declared dead in the last deadTTL, by name
	// leaving names the peers that said they leave (leavingMsg).
	leaving map[string]bool

	upd sync.Mutex // serializes Update
	// stopping is set once gossip is being stopped; see logWriter.
	stopping atomic.Bool
	life     sync.RWMutex // Update, Leave and Shutdown write-lock it; probes and rejoins read-lock it
	closed   bool
}

// Member is one node as `avila cluster status` shows it.
type Member struct {
	Name   string `json:"name"`
	Gossip string `json:"gossip"`
	State  string `json:"state"` // alive, suspect or dead (dead for a minute; members that left are not listed)
	Self   bool   `json:"self,omitempty"`
	Meta
}

// ErrClosed is returned by Update after Leave or Shutdown.
var ErrClosed = errors.New("cluster: node has left")

// New starts gossip on cfg.Listen and tries the seeds once. A node whose
// seeds do not answer yet runs alone; Run keeps trying them.
func New(cfg Config) (*Cluster, error) {
	if cfg.NodeName == "" {
		return nil, errors.New("cluster: --node-name is required")
	}
	switch len(cfg.Key) {
	case 0, 16, 24, 32:
	default:
		return nil, fmt.Errorf("cluster: --gossip-key must decode to 16, 24 or 32 bytes, got %d", len(cfg.Key))
	}
	host, portStr, err := net.SplitHostPort(cfg.Listen)
	if err != nil {
		return nil, fmt.Errorf("cluster: --gossip-listen %q: want host:port", cfg.Listen)
	}
	port, err := strconv.Atoi(portStr)
	if err != nil || port < 0 || port > 65535 {
		return nil, fmt.Errorf("cluster: --gossip-listen %q: bad port", cfg.Listen)
	}
	for _, s := range cfg.Seeds {
		if _, _, err := net.SplitHostPort(s); err != nil {
			return nil, fmt.Errorf("cluster: --join %q: want host:port", s)
		}
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.RejoinInterval <= 0 {
		cfg.RejoinInterval = defaultRejoinInterval
	}
	if cfg.ProbeInterval <= 0 {
		cfg.ProbeInterval = DefaultProbeInterval
	}
	if cfg.SuspicionMult <= 0 {
		cfg.SuspicionMult = DefaultSuspicionMult
	}
	c := &Cluster{cfg: cfg, log: cfg.Logger, peers: map[string]peer{}, gone: map[string]gone{},
		leaving: map[string]bool{}}

	mc := memberlist.DefaultLANConfig()
	mc.Name = cfg.NodeName
	if host == "" {
		host = "0.0.0.0"
	}
	mc.BindAddr, mc.BindPort = host, port
	mc.AdvertisePort = port
	mc.SecretKey = cfg.Key
	mc.Delegate = delegate{c}
	mc.Events = events{c}
	mc.Logger = log.New(logWriter{log: c.log, stopping: &c.stopping}, "", 0)
	mc.ProbeInterval = cfg.ProbeInterval
	mc.ProbeTimeout = min(mc.ProbeTimeout, cfg.ProbeInterval/2)
	mc.GossipInterval = min(mc.GossipInterval, cfg.ProbeInterval/2)
	mc.SuspicionMult = cfg.SuspicionMult
	// Metadata must exist before memberlist asks for it in Create.
	if err := c.setMeta(cfg.Meta); err != nil {
		return nil, err
	}
	if c.ml, err = memberlist.Create(mc); err != nil {
		return nil, fmt.Errorf("cluster: start gossip on %s: %w", cfg.Listen, err)
	}
	local := c.ml.LocalNode()
	c.self = local.Address()
	// Now that the advertised IP is known, fill it into unspecified hosts.
	c.mu.Lock()
	m := c.meta
	c.mu.Unlock()
	m.QUICAddr, m.APIAddr = advertised(m.QUICAddr, local.Addr), advertised(m.APIAddr, local.Addr)
	if err := c.setMeta(m); err != nil {
		_ = c.ml.Shutdown()
		return nil, err
	}
	// No peer yet: this only puts the new metadata in the local state that
	// joining sends.
	if err := c.ml.UpdateNode(0); err != nil {
		_ = c.ml.Shutdown()
		return nil, fmt.Errorf("cluster: set metadata: %w", err)
	}
	for _, s := range cfg.Seeds {
		if !c.isSelf(s) {
			c.seeds = append(c.seeds, s)
		}
	}
	if len(c.seeds) > 0 {
		if n, err := c.ml.Join(c.seeds); err != nil {
			c.log.Warn("no cluster seed answered yet; running alone and retrying", "seeds", c.seeds, "err", err)
		} else {
			c.log.Info("joined cluster", "contacted", n, "members", c.ml.NumMembers())
		}
	}
	c.log.Info("gossip started", "node", cfg.NodeName, "gossip", c.self, "encrypted", len(cfg.Key) > 0)
	return c, nil
}

// advertised replaces an unspecified host in addr with ip.
func advertised(addr string, ip net.IP) string {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return addr
	}
	if h := net.ParseIP(host); host == "" || (h != nil && h.IsUnspecified()) {
		return net.JoinHostPort(ip.String(), port)
	}
	return addr
}

// isSelf reports whether the seed address resolves to this node's gossip
// address.
func (c *Cluster) isSelf(seed string) bool {
	a, err := net.ResolveUDPAddr("udp", seed)
	return err == nil && a.String() == c.self
}

func (c *Cluster) setMeta(m Meta) error {
	b, err := encodeMeta(m)
	if err != nil {
		return err
	}
	c.mu.Lock()
	c.meta, c.metaWire = m, b
	c.mu.Unlock()
	return nil
}

// Name is this node's name.
func (c *Cluster) Name() string { return c.cfg.NodeName }

// GossipAddr is the gossip address peers reach this node on.
func (c *Cluster) GossipAddr() string { return c.self }

// Meta returns this node's current metadata.
func (c *Cluster) Meta() Meta {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.meta
}

// Update changes this node's metadata and gossips it, waiting a little for
// it to reach a peer. The change is in place (Meta, Members) even when the
// wait times out.
func (c *Cluster) Update(f func(*Meta)) error {
	if !c.running() {
		return ErrClosed
	}
	defer c.done()
	c.upd.Lock()
	defer c.upd.Unlock()
	m := c.Meta()
	f(&m)
	if err := c.setMeta(m); err != nil {
		return err
	}
	if err := c.ml.UpdateNode(broadcastTimeout); err != nil {
		return fmt.Errorf("cluster: announce metadata: %w", err)
	}
	return nil
}

// Members returns the nodes, this one included, sorted by name, as agents
// learn them from acks: alive and suspect ones, and those that died in the
// last minute as dead (and draining, so agents that know no states pass
// them over too).
func (c *Cluster) Members() []protocol.Member {
	st := c.Status()
	out := make([]protocol.Member, len(st))
	for i, m := range st {
		out[i] = protocol.Member{Name: m.Name, QUICAddr: m.QUICAddr, APIAddr: m.APIAddr,
			Load: m.Load, Draining: m.Draining || m.State == protocol.MemberDead, Version: m.Version,
			State: m.State, Incarnation: m.Started}
	}
	return out
}

// Reads reports whether a node of the cluster other than this one that
// is alive and not draining reads batches of protocol version v (its
// Meta.Protocol is v or newer): a staged row of that version can be left
// to it.
func (c *Cluster) Reads(v uint8) bool {
	return slices.ContainsFunc(c.Status(), func(m Member) bool {
		return !m.Self && m.State == protocol.MemberAlive && !m.Draining && m.Protocol >= v
	})
}

// Status returns the nodes sorted by name. A node is alive from the gossip
// saying it joined; suspect while it does not answer this node's probes;
// dead for a minute after gossip declares it dead. A node that left
// cleanly is not listed.
func (c *Cluster) Status() []Member {
	self := c.Meta()
	now := time.Now()
	c.pmu.Lock()
	out := make([]Member, 0, len(c.peers)+len(c.gone))
	for name, p := range c.peers {
		m := Member{Name: name, Gossip: p.gossip, State: protocol.MemberAlive, Meta: p.meta}
		if p.suspect {
			m.State = protocol.MemberSuspect
		}
		if name == c.cfg.NodeName {
			m.Self, m.Meta, m.State = true, self, protocol.MemberAlive
		}
		out = append(out, m)
	}
	for name, g := range c.gone {
		if now.Sub(g.at) > deadTTL {
			delete(c.gone, name)
			continue
		}
		out = append(out, Member{Name: name, Gossip: g.gossip, State: protocol.MemberDead, Meta: g.meta})
	}
	c.pmu.Unlock()
	slices.SortFunc(out, func(a, b Member) int { return strings.Compare(a.Name, b.Name) })
	return out
}

// Leave tells the peers this node is going (they drop it at once instead of
// suspecting it first, and do not list it as dead) and stops gossip. Safe
// to call more than once.
func (c *Cluster) Leave() error {
	c.life.Lock()
	defer c.life.Unlock()
	if c.closed {
		return nil
	}
	c.closed = true
	var errs []error
	// Best effort: a peer that misses it lists the node as dead for a
	// while, unless it heard that the node drains.
	bye := append(slices.Clone(leavingMsg), c.cfg.NodeName...)
	for _, n := range c.ml.Members() {
		if n.Name != c.cfg.NodeName {
			_ = c.ml.SendBestEffort(n, bye)
		}
	}
	if err := c.ml.Leave(broadcastTimeout); err != nil {
		errs = append(errs, fmt.Errorf("cluster: leave: %w", err))
	}
	c.stopping.Store(true)
	if err := c.ml.Shutdown(); err != nil {
		errs = append(errs, fmt.Errorf("cluster: stop gossip: %w", err))
	}
	c.log.Info("left cluster", "node", c.cfg.NodeName)
	return errors.Join(errs...)
}

// Shutdown stops gossip without a goodbye: peers find the node dead after
// their suspicion timeout, as after a crash. Safe to call more than once.
func (c *Cluster) Shutdown() error {
	c.life.Lock()
	defer c.life.Unlock()
	if c.closed {
		return nil
	}
	c.closed = true
	c.stopping.Store(true)
	if err := c.ml.Shutdown(); err != nil {
		return fmt.Errorf("cluster: stop gossip: %w", err)
	}
	return nil
}
