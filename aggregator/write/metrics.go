package write

import (
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
)

// Metrics are a write stage's Prometheus metrics. Create them once per
// aggregator with NewMetrics and pass them in Config.
type Metrics struct {
	derivations prometheus.Counter
	derived     prometheus.Counter
	seconds     prometheus.Histogram
	erased      prometheus.Counter
	kept        prometheus.Counter
	// staged and oldest: the backlog as this node's last look found it
	// (Backlog).
	staged prometheus.Gauge
	oldest prometheus.Gauge
	// quarantined counts the staged rows moved to quarantine
	// (quarantine.go), quarantinedEvents their events.
	quarantined       prometheus.Counter
	quarantinedEvents prometheus.Counter
}

// NewMetrics creates the write stage's metrics and registers them on reg;
// a nil reg leaves them unregistered.
func NewMetrics(reg prometheus.Registerer) (*Metrics, error) {
	m := &Metrics{
		derivations: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "analytics_write_derivations_total",
			Help: "Derivation transactions committed: each turned a site's staged events into events, sessions and rollups rows.",
		}),
		derived: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "analytics_write_derived_events_total",
			Help: "Staged events derived (made visible to reports) by this node.",
		}),
		seconds: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "analytics_write_derive_duration_seconds",
			Help:    "Duration of derivation transactions, from taking the site's lock to commit; reports lag staging by about this plus the derivation interval.",
			Buckets: prometheus.ExponentialBuckets(0.005, 2, 12),
		}),
		erased: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "analytics_write_erased_events_dropped_total",
			Help: "Staged events dropped by the derivation because their visitor or user was erased (a data subject's tombstone, 72 h).",
		}),
		kept: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "analytics_write_kept_events_total",
			Help: "Staged events a derivation took as this node's ingest decoded them, instead of decoding their staged row again; the rest of analytics_write_derived_events_total was decoded.",
		}),
		staged: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "analytics_write_staged_events",
			Help: "Events staged and not derived yet (not yet in reports), every site's, as this node's last look at the staged rows found them (every 250 ms to 4 s, and before each derivation pass).",
		}),
		oldest: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "analytics_write_staged_oldest_seconds",
			Help: "Age of the oldest staged row, any site's, at this node's last look (0: none staged): how far reports lag ingest now; realtime does not lag. Under a load the derivations keep up with it stays within the derivation interval and two derivations.",
		}),
		quarantined: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "analytics_write_quarantined_rows_total",
			Help: "Staged rows this node moved to quarantine because no derivation could take them (a payload that does not decode, events PostgreSQL refuses): their events are in no report until `avila staged requeue`; `avila staged list` says why.",
		}),
		quarantinedEvents: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "analytics_write_quarantined_events_total",
			Help: "Events of the staged rows this node moved to quarantine (analytics_write_quarantined_rows_total).",
		}),
	}
	if reg == nil {
		return m, nil
	}
	for _, c := range []prometheus.Collector{m.derivations, m.derived, m.seconds, m.erased, m.kept, m.staged, m.oldest, m.quarantined, m.quarantinedEvents} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("write: register metrics: %w", err)
		}
	}
	return m, nil
}
