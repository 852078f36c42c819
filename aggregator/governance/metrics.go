package governance

import (
	"fmt"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/avila-analytics/avila/storage/postgres"
)

// Metrics count what governance removed and did. Create them once per
// aggregator with NewMetrics.
type Metrics struct {
	requests          *prometheus.CounterVec
	retainedEvents    prometheus.Counter
	retainedSessions  prometheus.Counter
	retainedRollups   prometheus.Counter
	droppedPartitions prometheus.Counter
}

// NewMetrics creates the metrics and registers them on reg; nil leaves
// them unregistered.
func NewMetrics(reg prometheus.Registerer) (*Metrics, error) {
	m := &Metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "analytics_gdpr_requests_total",
			Help: "Data subject requests the worker finished, by kind (export, erasure) and state (done, failed).",
		}, []string{"kind", "state"}),
		retainedEvents: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "analytics_retention_deleted_events_total",
			Help: "Raw events (rows and packed) deleted by retention runs of this node.",
		}),
		retainedSessions: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "analytics_retention_deleted_sessions_total",
			Help: "Sessions rows deleted by retention runs of this node.",
		}),
		retainedRollups: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "analytics_retention_deleted_rollup_rows_total",
			Help: "Rollup rows (daily, packed and session rollups) deleted by retention runs of this node.",
		}),
		droppedPartitions: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "analytics_retention_dropped_partitions_total",
			Help: "Day partitions of events and sessions dropped whole by retention runs of this node (no site keeps their day).",
		}),
	}
	for _, k := range []string{"export", "erasure"} {
		for _, s := range []string{"done", "failed"} {
			m.requests.WithLabelValues(k, s)
		}
	}
	if reg == nil {
		return m, nil
	}
	for _, c := range []prometheus.Collector{m.requests, m.retainedEvents, m.retainedSessions, m.retainedRollups, m.droppedPartitions} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("governance: register metrics: %w", err)
		}
	}
	return m, nil
}

// Retained counts what a retention run removed (dry runs count nothing).
func (m *Metrics) Retained(run postgres.RetentionRun) {
	if m == nil || run.DryRun {
		return
	}
	for _, s := range run.Sites {
		m.retainedEvents.Add(float64(s.Events))
		m.retainedSessions.Add(float64(s.Sessions))
		m.retainedRollups.Add(float64(s.RollupRows + s.SessionRollups))
	}
	m.droppedPartitions.Add(float64(len(run.Partitions)))
}
