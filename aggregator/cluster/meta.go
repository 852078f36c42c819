package cluster

import (
	"bytes"
	"fmt"
	"net"
	"time"

	"github.com/hashicorp/memberlist"
	"github.com/vmihailenco/msgpack/v5"

	"github.com/avila-analytics/avila/protocol"
)

// Meta is what a node tells its peers about itself. It travels in every
// gossip alive message, so it stays far below memberlist.MetaMaxSize.
type Meta struct {
	QUICAddr string  `msgpack:"q" json:"quic"`               // where agents ship batches, host:port
	APIAddr  string  `msgpack:"a,omitempty" json:"api"`      // HTTP API, host:port
	Load     float64 `msgpack:"l,omitempty" json:"load"`     // batches handled per second, recent average
	Agents   int     `msgpack:"g,omitempty" json:"agents"`   // distinct agents that sent batches in the last minute
	Draining bool    `msgpack:"d,omitempty" json:"draining"` // stopping: takes no new batches
	Version  string  `msgpack:"v,omitempty" json:"version"`  // build version
	// Protocol is the newest batch version (protocol.Version) the node
	// reads; 0 from a node of a build that did not tell it.
	Protocol uint8 `msgpack:"p,omitempty" json:"protocol,omitempty"`
	// Started is when the node's process started, Unix milliseconds: the
	// incarnation agents tell a restarted node by.
	Started int64 `msgpack:"t,omitempty" json:"started,omitempty"`
}

func encodeMeta(m Meta) ([]byte, error) {
	b, err := msgpack.Marshal(&m)
	if err != nil {
		return nil, fmt.Errorf("cluster: encode meta: %w", err)
	}
	if len(b) > memberlist.MetaMaxSize {
		return nil, fmt.Errorf("cluster: node meta is %d bytes, gossip allows %d (shorten addresses or version)", len(b), memberlist.MetaMaxSize)
	}
	return b, nil
}

func decodeMeta(b []byte) (Meta, error) {
	var m Meta
	if err := msgpack.Unmarshal(b, &m); err != nil {
		return Meta{}, fmt.Errorf("cluster: decode meta: %w", err)
	}
	return m, nil
}

// delegate hands memberlist this node's Meta. The cluster carries no other
// user data: GetBroadcasts and state exchange are empty.
type delegate struct{ c *Cluster }

func (d delegate) NodeMeta(limit int) []byte {
	// encodeMeta keeps metaWire within memberlist.MetaMaxSize, the limit
	// memberlist passes.
	d.c.mu.Lock()
	defer d.c.mu.Unlock()
	return d.c.metaWire
}

// NotifyMsg takes the one user message nodes send: leavingMsg. memberlist
// may hand it over after the leave it preceded (user messages queue behind
// membership ones), so a node already listed as dead is then dropped.
func (d delegate) NotifyMsg(b []byte) {
	if name, ok := bytes.CutPrefix(b, leavingMsg); ok {
		d.c.pmu.Lock()
		if _, dead := d.c.gone[string(name)]; dead {
			delete(d.c.gone, string(name))
		} else {
			d.c.leaving[string(name)] = true
		}
		d.c.pmu.Unlock()
	}
}

// leavingMsg, followed by the node's name, tells the peers that the node
// leaves on purpose, just before its leave is gossiped: then they do not
// list it as dead.
var leavingMsg = []byte("avila-leaving:")

func (delegate) GetBroadcasts(overhead, limit int) [][]byte { return nil }
func (delegate) LocalState(join bool) []byte                { return nil }
func (delegate) MergeRemoteState(buf []byte, join bool)     {}

// events keeps the cluster's own copy of the members. memberlist calls it
// under its node lock with the node's current state; the copies are what
// Status reads, since the nodes memberlist.Members returns are changed in
// place by its goroutines afterwards.
type events struct{ c *Cluster }

func (e events) NotifyJoin(n *memberlist.Node) {
	e.c.setPeer(n)
	e.c.log.Info("cluster member joined", "member", n.Name, "gossip", n.Address())
}

func (e events) NotifyLeave(n *memberlist.Node) {
	// memberlist reports a node that failed and one that left alike, and
	// the state in n is not kept up to date. A node that leaves says so
	// first (leavingMsg), and a stopping aggregator gossips that it drains
	// before; a node that did neither died.
	e.c.pmu.Lock()
	p, ok := e.c.peers[n.Name]
	delete(e.c.peers, n.Name)
	state := "left"
	if ok && !p.meta.Draining && !e.c.leaving[n.Name] {
		state = protocol.MemberDead
		e.c.gone[n.Name] = gone{peer: p, at: time.Now()}
	}
	delete(e.c.leaving, n.Name)
	e.c.pmu.Unlock()
	e.c.log.Info("cluster member gone", "member", n.Name, "gossip", n.Address(), "state", state)
}

func (e events) NotifyUpdate(n *memberlist.Node) {
	e.c.setPeer(n)
}

// peer is a copy of a live member.
type peer struct {
	gossip string
	addr   net.Addr // gossip address, for probes
	meta   Meta
	// suspect: the last probe of this node got no answer in time. It is
	// cleared by the next answer, or the node is declared dead.
	suspect bool
}

// gone is a member gossip declared dead, listed as dead for deadTTL so
// agents and `avila cluster status` hear of it.
type gone struct {
	peer
	at time.Time
}

func (c *Cluster) setPeer(n *memberlist.Node) {
	p := peer{gossip: n.Address(), addr: &net.UDPAddr{IP: n.Addr, Port: int(n.Port)}}
	if n.Name != c.cfg.NodeName {
		m, err := decodeMeta(n.Meta)
		if err != nil {
			c.log.Warn("ignoring cluster member with unreadable metadata", "member", n.Name, "err", err)
			c.pmu.Lock()
			delete(c.peers, n.Name)
			c.pmu.Unlock()
			return
		}
		p.meta = m
	}
	c.pmu.Lock()
	if old, ok := c.peers[n.Name]; ok && old.meta.Started == p.meta.Started {
		p.suspect = old.suspect
	}
	c.peers[n.Name] = p
	delete(c.gone, n.Name)
	delete(c.leaving, n.Name)
	c.pmu.Unlock()
}
