package node

import (
	"fmt"
	"net/http"
	"strconv"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/avila-analytics/avila/aggregator/governance"
	"github.com/avila-analytics/avila/aggregator/ingest"
	"github.com/avila-analytics/avila/aggregator/write"
	"github.com/avila-analytics/avila/protocol"
	"github.com/avila-analytics/avila/query"
	"github.com/avila-analytics/avila/storage/postgres"
	"github.com/avila-analytics/avila/storage/redis"
)

// nodeMetrics are what a node hands to its parts: each registers its own
// metrics once on the node's registry.
type nodeMetrics struct {
	reg    *prometheus.Registry
	ingest *ingest.Metrics
	write  *write.Metrics
	query  *query.Metrics
	quota  *query.QuotaMetrics
	cache  *redis.CacheMetrics
	// governance counts retention and data subject requests.
	governance *governance.Metrics
}

// newNodeMetrics registers the node's metrics on reg, or on a new registry
// with the Go runtime and process collectors when reg is nil.
func (n *Node) newNodeMetrics(reg *prometheus.Registry) (*nodeMetrics, error) {
	if reg == nil {
		reg = prometheus.NewRegistry()
		reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	}
	m := &nodeMetrics{reg: reg}
	var err error
	if m.ingest, err = ingest.NewMetrics(reg); err != nil {
		return nil, fmt.Errorf("aggregator: %w", err)
	}
	if m.write, err = write.NewMetrics(reg); err != nil {
		return nil, fmt.Errorf("aggregator: %w", err)
	}
	if m.query, err = query.NewMetrics(reg); err != nil {
		return nil, fmt.Errorf("aggregator: %w", err)
	}
	if m.quota, err = query.NewQuotaMetrics(reg); err != nil {
		return nil, fmt.Errorf("aggregator: %w", err)
	}
	if m.cache, err = redis.NewCacheMetrics(reg); err != nil {
		return nil, fmt.Errorf("aggregator: %w", err)
	}
	if m.governance, err = governance.NewMetrics(reg); err != nil {
		return nil, fmt.Errorf("aggregator: %w", err)
	}
	members := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "analytics_cluster_members",
		Help: "Live aggregator nodes this node sees (alive or suspect, not dead), itself included (1 when it runs alone).",
	}, func() float64 {
		live := 0
		for _, m := range n.members() {
			if m.State != protocol.MemberDead {
				live++
			}
		}
		return float64(live)
	})
	draining := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "analytics_node_draining",
		Help: "1 while this node drains (takes no new batches) before it stops, else 0.",
	}, func() float64 {
		if n.gate != nil && n.gate.isDraining() {
			return 1
		}
		return 0
	})
	sockets := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "analytics_realtime_sockets",
		Help: "Realtime WebSockets (/v1/realtime/ws) open on this node.",
	}, func() float64 {
		if n.socket == nil {
			return 0
		}
		return float64(n.socket.Sockets())
	})
	realtimeRedisErrors := prometheus.NewCounterFunc(prometheus.CounterOpts{
		Name: "analytics_realtime_redis_errors_total",
		Help: "Realtime counter writes and reads that failed on Redis; this node's memory answered instead (see --redis-url).",
	}, func() float64 {
		if n.realtime == nil {
			return 0
		}
		return float64(n.realtime.RedisErrors())
	})
	droppedCells := prometheus.NewCounterFunc(prometheus.CounterOpts{
		Name: "analytics_realtime_memory_dropped_cells_total",
		Help: "Realtime counters this node's memory did not keep because a site's minute held the most it keeps; Redis still counts them.",
	}, func() float64 {
		if n.realtime == nil {
			return 0
		}
		return float64(n.realtime.DroppedCells())
	})
	cs := []prometheus.Collector{members, draining, sockets, realtimeRedisErrors, droppedCells}
	if n.replicas != nil {
		cs = append(cs, replicaMetrics(n.replicas)...)
	}
	for _, c := range cs {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("aggregator: register metrics: %w", err)
		}
	}
	return m, nil
}

func (m *nodeMetrics) handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{})
}

// replicaMetrics describe where reports read and how far each read replica
// is behind. The replica label is its position in --database-read-url.
func replicaMetrics(r *postgres.Replicas) []prometheus.Collector {
	var cs []prometheus.Collector
	for target, name := range postgres.ReadTargetNames {
		cs = append(cs, prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name:        "analytics_query_reads_total",
			Help:        "Reports computed, by the database they read: primary, replica (holding everything the site's data version covers) or replica_behind (within --database-read-max-lag, not cached).",
			ConstLabels: prometheus.Labels{"database": name},
		}, func() float64 { return float64(r.Reads()[target]) }))
	}
	for i := range r.States() {
		label := prometheus.Labels{"replica": strconv.Itoa(i)}
		cs = append(cs,
			prometheus.NewGaugeFunc(prometheus.GaugeOpts{
				Name: "analytics_replica_up", ConstLabels: label,
				Help: "1 while the read replica answers as a standby, else 0.",
			}, func() float64 {
				if r.States()[i].Up {
					return 1
				}
				return 0
			}),
			prometheus.NewGaugeFunc(prometheus.GaugeOpts{
				Name: "analytics_replica_lag_seconds", ConstLabels: label,
				Help: "Age of the last commit the read replica replayed (grows while the primary is idle, too).",
			}, func() float64 { return r.States()[i].Lag.Seconds() }))
	}
	return cs
}
