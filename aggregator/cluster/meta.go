package cluster

import (
	"fmt"

	"github.com/hashicorp/memberlist"
	"github.com/vmihailenco/msgpack/v5"
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

func (delegate) NotifyMsg([]byte)                           {}
func (delegate) GetBroadcasts(overhead, limit int) [][]byte { return nil }
func (delegate) LocalState(join bool) []byte                { return nil }
func (delegate) MergeRemoteState(buf []byte, join bool)     {}

// events logs membership changes.
type events struct{ c *Cluster }

func (e events) NotifyJoin(n *memberlist.Node) {
	e.c.log.Info("cluster member joined", "member", n.Name, "gossip", n.Address())
}

func (e events) NotifyLeave(n *memberlist.Node) {
	// memberlist reports a node that failed and one that left alike; the
	// node's state tells them apart.
	e.c.log.Info("cluster member gone", "member", n.Name, "gossip", n.Address(), "state", stateName(n.State))
}

func (e events) NotifyUpdate(n *memberlist.Node) {
	m, err := decodeMeta(n.Meta)
	if err != nil {
		e.c.log.Warn("cluster member sent unreadable metadata", "member", n.Name, "err", err)
		return
	}
	e.c.log.Debug("cluster member updated", "member", n.Name, "draining", m.Draining, "load", m.Load)
}

func stateName(s memberlist.NodeStateType) string {
	switch s {
	case memberlist.StateAlive:
		return "alive"
	case memberlist.StateSuspect:
		return "suspect"
	case memberlist.StateDead:
		return "dead"
	case memberlist.StateLeft:
		return "left"
	}
	return fmt.Sprintf("state(%d)", int(s))
}
