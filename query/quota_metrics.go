package query

import (
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
)

// QuotaMetrics show the property quotas and queues at work. Create them
// once per server with NewQuotaMetrics and pass them in
// Options.Quota.Metrics; nil methods do nothing.
type QuotaMetrics struct {
	inflight *prometheus.GaugeVec   // category
	refused  *prometheus.CounterVec // quota
	waiting  prometheus.Gauge
}

// Quota label values of analytics_query_quota_refused_total.
const (
	refusedConcurrent   = "concurrent_requests"
	refusedTokensDay    = "tokens_per_day"
	refusedTokensHour   = "tokens_per_hour"
	refusedProjectHour  = "tokens_per_project_per_hour"
	refusedServerErrors = "server_errors_per_project_per_hour"
)

// NewQuotaMetrics creates the quota metrics and registers them on reg.
func NewQuotaMetrics(reg prometheus.Registerer) (*QuotaMetrics, error) {
	m := &QuotaMetrics{
		inflight: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "analytics_query_requests_in_flight",
			Help: "Data API requests admitted and not yet answered on this node, by quota category (core, realtime, funnel); each property may have its concurrentRequests quota of them.",
		}, []string{"category"}),
		refused: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "analytics_query_quota_refused_total",
			Help: "Data API requests answered 429 RESOURCE_EXHAUSTED, by the quota that was spent (concurrent_requests, tokens_per_day, tokens_per_hour, tokens_per_project_per_hour, server_errors_per_project_per_hour).",
		}, []string{"quota"}),
		waiting: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "analytics_query_statements_waiting",
			Help: "Report statements waiting for one of their property's report connections (--report-conns-per-property).",
		}),
	}
	for _, cat := range []string{quotaCore, quotaRealtime, quotaFunnel} {
		m.inflight.WithLabelValues(cat)
	}
	for _, q := range []string{refusedConcurrent, refusedTokensDay, refusedTokensHour, refusedProjectHour, refusedServerErrors} {
		m.refused.WithLabelValues(q)
	}
	for _, c := range []prometheus.Collector{m.inflight, m.refused, m.waiting} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("query: register quota metrics: %w", err)
		}
	}
	return m, nil
}

func (m *QuotaMetrics) admitted(cat string, delta float64) {
	if m != nil {
		m.inflight.WithLabelValues(cat).Add(delta)
	}
}

func (m *QuotaMetrics) refusal(quota string) {
	if m != nil {
		m.refused.WithLabelValues(quota).Inc()
	}
}

func (m *QuotaMetrics) wait(delta float64) {
	if m != nil {
		m.waiting.Add(delta)
	}
}
