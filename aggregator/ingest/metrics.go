package ingest

import (
	"fmt"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/avila-analytics/avila/protocol"
	"github.com/avila-analytics/avila/protocol/rules"
)

// Outcomes of analytics_events_processed_total.
const (
	outcomeStored     = "stored"      // committed to PostgreSQL
	outcomeDuplicate  = "duplicate"   // in a batch committed before; acked, not written again
	outcomeDeadLetter = "dead_letter" // invalid, kept in dead_letters with the reason
)

// Metrics are a handler's Prometheus metrics; labels come from fixed sets.
// Create them once per aggregator with NewMetrics and pass them in Options.
type Metrics struct {
	processed *prometheus.CounterVec // outcome
	batches   *prometheus.CounterVec // status: the ack answered
	writes    prometheus.Counter
	dead      *prometheus.CounterVec // rule: protocol/rules codes and unknown_site
}

// NewMetrics creates the ingest metrics and registers them on reg; a nil reg
// leaves them unregistered.
func NewMetrics(reg prometheus.Registerer) (*Metrics, error) {
	m := &Metrics{
		processed: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "analytics_events_processed_total",
			Help: "Events of acknowledged batches, by outcome: stored, duplicate (a resent batch, not written again), dead_letter.",
		}, []string{"outcome"}),
		batches: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "analytics_ingest_batches_total",
			Help: "Batches answered, by ack status (ok, retry, reject).",
		}, []string{"status"}),
		writes: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "analytics_storage_writes_total",
			Help: "Batch transactions committed to PostgreSQL (one per batch that was not a duplicate).",
		}),
		dead: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "analytics_dead_letters_total",
			Help: "Events written to dead_letters, by the rule they broke (protocol/rules codes, unknown_site). Agents apply the same rules before they answer, so any increase is a bug: see `avila dead-letters list`.",
		}, []string{"rule"}),
	}
	for _, r := range rules.All {
		m.dead.WithLabelValues(r.Code)
	}
	m.dead.WithLabelValues(ruleUnknownSite)
	for _, o := range []string{outcomeStored, outcomeDuplicate, outcomeDeadLetter} {
		m.processed.WithLabelValues(o)
	}
	for _, s := range []protocol.AckStatus{protocol.AckOK, protocol.AckRetry, protocol.AckReject} {
		m.batches.WithLabelValues(statusLabel(s))
	}
	if reg == nil {
		return m, nil
	}
	for _, c := range []prometheus.Collector{m.processed, m.batches, m.writes, m.dead} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("ingest: register metrics: %w", err)
		}
	}
	return m, nil
}

func statusLabel(s protocol.AckStatus) string {
	switch s {
	case protocol.AckOK:
		return "ok"
	case protocol.AckRetry:
		return "retry"
	case protocol.AckReject:
		return "reject"
	}
	return "unknown"
}

// ack counts one answered batch of n events.
func (m *Metrics) ack(a protocol.Ack, events int) {
	m.batches.WithLabelValues(statusLabel(a.Status)).Inc()
	if a.Status != protocol.AckOK {
		return
	}
	if a.Duplicate {
		m.processed.WithLabelValues(outcomeDuplicate).Add(float64(events))
		return
	}
	m.writes.Inc()
	m.processed.WithLabelValues(outcomeStored).Add(float64(a.Stored))
	m.processed.WithLabelValues(outcomeDeadLetter).Add(float64(a.DeadLetters))
}

// deadLetter counts one event written to dead_letters for rule.
func (m *Metrics) deadLetter(rule string) {
	m.dead.WithLabelValues(rule).Inc()
}
