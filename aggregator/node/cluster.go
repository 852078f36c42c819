package node

import (
	"context"
	"encoding/json"
	"math"
	"net/http"
	"strings"
	"time"

	"github.com/avila-analytics/avila/aggregator/cluster"
	"github.com/avila-analytics/avila/protocol"
)

// publishEvery is how often the node's load and agent count are gossiped
// when they changed.
const publishEvery = 5 * time.Second

// GossipAddr is the address peers gossip with this node on; "" when it runs
// alone.
func (n *Node) GossipAddr() string {
	if n.cluster == nil {
		return ""
	}
	return n.cluster.GossipAddr()
}

// members is the list every ack and config carries: the live cluster, or
// this node alone.
func (n *Node) members() []protocol.Member {
	if n.cluster != nil {
		return n.cluster.Members()
	}
	load, _ := n.act.snapshot()
	return []protocol.Member{{Name: n.name, QUICAddr: n.QUICAddr, APIAddr: strings.TrimPrefix(n.APIURL, "http://"),
		Load: load, Draining: n.gate.isDraining(), Version: n.version, State: protocol.MemberAlive,
		Incarnation: n.started.UnixMilli()}}
}

// readsVersion reports whether another live node of the cluster reads
// staged rows of protocol version v (write.Config.Readers); a node
// running alone has none.
func (n *Node) readsVersion(v uint8) bool {
	return n.cluster != nil && n.cluster.Reads(v)
}

// publishLoad gossips load and agent count until ctx ends.
func (n *Node) publishLoad(ctx context.Context) {
	t := time.NewTicker(publishEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		load, agents := n.act.snapshot()
		load = math.Round(load*10) / 10
		if m := n.cluster.Meta(); m.Load == load && m.Agents == agents {
			continue
		}
		err := n.cluster.Update(func(m *cluster.Meta) { m.Load, m.Agents = load, agents })
		if err != nil && ctx.Err() == nil {
			n.log.Debug("gossiping load", "err", err)
		}
	}
}

// ClusterStatus is the answer of GET /v1/cluster/status.
type ClusterStatus struct {
	Node      string  `json:"node"`
	State     string  `json:"state"` // serving or draining
	Clustered bool    `json:"clustered"`
	Load      float64 `json:"load"`   // this node's batches per second
	Agents    int     `json:"agents"` // agents this node heard from in the last minute
	// AgentsSeen names those agents with the time of their last batch
	// here, which tells which node an agent uses now.
	AgentsSeen []AgentSeen      `json:"agents_seen"`
	Members    []cluster.Member `json:"members"`
	// Staged is what this node's write stage last found staged and not
	// derived yet: how far reports lag ingest (the same for every node of
	// a cluster, as each looks at the one database).
	Staged StagedStatus `json:"staged"`
}

// StagedStatus is the write stage's backlog (write.Backlog).
type StagedStatus struct {
	Events int64 `json:"events"`
	Sites  int   `json:"sites"`
	// OldestSeconds is the age of the oldest staged row (0: none).
	OldestSeconds float64 `json:"oldest_seconds"`
	// LookedAt is when the node looked (absent: not yet).
	LookedAt time.Time `json:"looked_at,omitzero"`
	// QuarantinedRows are the staged rows no derivation could take, moved
	// aside (`avila staged list`), every site's, read for this answer;
	// QuarantinedEvents their events, in no report.
	QuarantinedRows   int64 `json:"quarantined_rows"`
	QuarantinedEvents int64 `json:"quarantined_events"`
}

func (n *Node) status(ctx context.Context) ClusterStatus {
	load, agents := n.act.snapshot()
	b := n.writer.Backlog()
	st := ClusterStatus{Node: n.name, State: "serving", Clustered: n.cluster != nil, Load: load, Agents: agents,
		AgentsSeen: n.act.seen(),
		Staged:     StagedStatus{Events: b.Events, Sites: b.Sites, OldestSeconds: b.Oldest.Seconds(), LookedAt: b.At.UTC()}}
	if n.gate.isDraining() {
		st.State = "draining"
	}
	// The status answers without the counts when PostgreSQL does not
	// (its other figures are the node's own).
	qctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	if rows, events, err := n.store.QuarantineTotals(qctx); err == nil {
		st.Staged.QuarantinedRows, st.Staged.QuarantinedEvents = rows, events
	} else {
		n.log.Warn("cluster status: quarantined staged rows not counted", "err", err)
	}
	if n.cluster == nil {
		st.Members = []cluster.Member{{Name: n.name, State: "alive", Self: true, Meta: cluster.Meta{
			QUICAddr: n.QUICAddr, APIAddr: strings.TrimPrefix(n.APIURL, "http://"), Version: n.version,
			Started: n.started.UnixMilli()}}}
	} else {
		st.Members = n.cluster.Status()
	}
	for i := range st.Members {
		if st.Members[i].Self {
			// Fresher than the last gossiped figures.
			st.Members[i].Load, st.Members[i].Agents = load, agents
			st.Members[i].Draining = st.State == "draining"
		}
	}
	return st
}

func (n *Node) clusterStatus(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(n.status(r.Context()))
}
