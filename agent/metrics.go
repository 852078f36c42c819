package agent

import (
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/avila-analytics/avila/agent/collect"
	"github.com/avila-analytics/avila/agent/listen"
	"github.com/avila-analytics/avila/agent/queue"
	"github.com/avila-analytics/avila/agent/ship"
	"github.com/avila-analytics/avila/protocol/rules"
)

// metrics are one agent's Prometheus metrics. Labels are bounded: site is
// a configured site id (or "unknown"), outcome and reason come from fixed
// sets. No URL, IP, user agent or visitor id is ever a label value.
type metrics struct {
	collected *prometheus.CounterVec // site, outcome
	// collectedBy caches collected's children by (site, outcome), so a hit
	// neither formats the site id nor hashes label values. Bounded like
	// the labels: configured sites times the fixed outcomes.
	collectedBy sync.Map               // collectedKey → prometheus.Counter
	dropped     *prometheus.CounterVec // reason
	mpRejected  *prometheus.CounterVec // reason
	repaired    *prometheus.CounterVec // rule: a protocol/rules repair code
	rateLimited prometheus.Counter
}

// droppedReason is the reason label of analytics_events_dropped_total for
// an outcome that drops events on purpose; "" for the others.
func droppedReason(outcome string) string {
	switch outcome {
	case collect.OutcomeInvalid, collect.OutcomeUnknownSite, collect.OutcomeBot, collect.OutcomeDoNotTrack:
		return outcome
	}
	return ""
}

// newMetrics creates the agent's metrics on reg, with collectors reading
// the queue's and the shipper's figures at each scrape.
func newMetrics(reg prometheus.Registerer, q *queue.Queue, s *ship.Shipper, ln *listen.Listener) (*metrics, error) {
	m := &metrics{
		collected: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "analytics_events_collected_total",
			Help: "Events received at the collection endpoints, by site id and outcome (stored, no_salt: stored with a process-local visitor id as today's salt has not arrived, invalid, unknown_site, not_ready, bot, do_not_track, rate_limited, queue_full, failed).",
		}, []string{"site", "outcome"}),
		dropped: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "analytics_events_dropped_total",
			Help: "Events not stored on purpose, by reason (invalid, unknown_site, bot, do_not_track: DNT or Sec-GPC under the drop policy).",
		}, []string{"reason"}),
		mpRejected: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "analytics_mp_rejected_total",
			Help: "Measurement Protocol events answered 204 but not stored, as GA4 does, by the rule broken (a lower-cased GA4 validation code, api_secret or unknown_site).",
		}, []string{"reason"}),
		repaired: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "analytics_events_repaired_total",
			Help: "Stored events whose values the agent repaired as GA4 does, by rule (protocol/rules codes: page_title_length, invalid_utf8, nul_byte, …; see README's limits table). An event repaired by two rules counts under both.",
		}, []string{"rule"}),
		rateLimited: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "analytics_rate_limited_total",
			Help: "Requests refused with 429 by the per-client or per-site rate limit.",
		}),
	}
	for _, reason := range []string{collect.OutcomeInvalid, collect.OutcomeUnknownSite, collect.OutcomeBot, collect.OutcomeDoNotTrack} {
		m.dropped.WithLabelValues(reason) // every reason is exported from the start, at 0
	}
	for _, reason := range collect.MPRejectReasons {
		m.mpRejected.WithLabelValues(reason)
	}
	for _, r := range rules.All {
		if r.Action == rules.ActRepair {
			m.repaired.WithLabelValues(r.Code)
		}
	}
	for _, c := range []prometheus.Collector{m.collected, m.dropped, m.mpRejected, m.repaired, m.rateLimited, newStatsCollector(q, s, ln)} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return m, nil
}

type collectedKey struct {
	site    uint32
	outcome string
}

// count is collect.Options.Count.
func (m *metrics) count(site uint32, outcome string, events int) {
	m.collectedCounter(site, outcome).Add(float64(events))
	if outcome == collect.OutcomeRateLimited {
		m.rateLimited.Add(float64(events))
	}
	if reason := droppedReason(outcome); reason != "" {
		m.dropped.WithLabelValues(reason).Add(float64(events))
	}
}

// collectedCounter is the analytics_events_collected_total child for site
// (0: "unknown") and outcome.
func (m *metrics) collectedCounter(site uint32, outcome string) prometheus.Counter {
	k := collectedKey{site, outcome}
	if c, ok := m.collectedBy.Load(k); ok {
		return c.(prometheus.Counter)
	}
	label := "unknown"
	if site != 0 {
		label = strconv.FormatUint(uint64(site), 10)
	}
	c, _ := m.collectedBy.LoadOrStore(k, m.collected.WithLabelValues(label, outcome))
	return c.(prometheus.Counter)
}

// mpRejectedCount is collect.Options.CountMPRejected.
func (m *metrics) mpRejectedCount(reason string, events int) {
	m.mpRejected.WithLabelValues(reason).Add(float64(events))
}

// repairedCount is collect.Options.CountRepaired.
func (m *metrics) repairedCount(rule string) {
	m.repaired.WithLabelValues(rule).Inc()
}

// newRegistry is the default registry of an agent: its own metrics plus the
// Go runtime and process collectors.
func newRegistry() *prometheus.Registry {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return reg
}

func metricsHandler(g prometheus.Gatherer) http.Handler {
	return promhttp.HandlerFor(g, promhttp.HandlerOpts{})
}

// statsCollector exports queue, shipper and listener figures, read at
// scrape time from their Stats, so the hot paths carry no metric code.
type statsCollector struct {
	q    *queue.Queue
	ship *ship.Shipper
	ln   *listen.Listener

	httpConns, httpMaxConns, httpMaxConnsPerIP, httpRefused, httpAcceptErrors *prometheus.Desc

	queueEvents, queueSegments, queueRejected, queueBytes, queueMaxBytes, queueOldest *prometheus.Desc
	queueAppended, queueCommits, shipSent, shipAcks, shipErrors, shipRetries          *prometheus.Desc
}

func newStatsCollector(q *queue.Queue, s *ship.Shipper, ln *listen.Listener) *statsCollector {
	d := prometheus.NewDesc
	return &statsCollector{
		q: q, ship: s, ln: ln,
		httpConns:         d("analytics_http_connections", "HTTP connections open now, counted against analytics_http_max_connections.", nil, nil),
		httpMaxConns:      d("analytics_http_max_connections", "Cap on open HTTP connections (--max-conns); past it a connection is answered 503.", nil, nil),
		httpMaxConnsPerIP: d("analytics_http_max_connections_per_ip", "Cap on open HTTP connections from one client address (--max-conns-per-ip); trusted proxies are exempt.", nil, nil),
		httpRefused:       d("analytics_http_connections_refused_total", "HTTP connections answered 503 and closed at a cap, by reason (max_conns, max_conns_per_ip).", []string{"reason"}, nil),
		httpAcceptErrors:  d("analytics_http_accept_errors_total", "Failed accepts of HTTP connections (EMFILE, ENFILE: out of file descriptors; ECONNABORTED …), retried after a pause.", nil, nil),
		queueEvents:       d("analytics_queue_pending_events", "Events durably queued and not yet sealed into a segment.", nil, nil),
		queueSegments:     d("analytics_queue_segments", "Sealed segments waiting for an OK ack from an aggregator.", nil, nil),
		queueRejected:     d("analytics_queue_rejected_segments", "Segments an aggregator rejected, kept aside in the queue and not resent.", nil, nil),
		queueBytes:        d("analytics_queue_bytes", "Bytes the queue holds, counted against analytics_queue_max_bytes.", nil, nil),
		queueMaxBytes:     d("analytics_queue_max_bytes", "The queue's byte budget; when it is used up, collection answers 503.", nil, nil),
		queueOldest:       d("analytics_queue_oldest_segment_age_seconds", "Age of the oldest unacknowledged segment; 0 when none waits.", nil, nil),
		queueAppended:     d("analytics_queue_appended_events_total", "Events appended to the queue since start.", nil, nil),
		queueCommits:      d("analytics_queue_commits_total", "Fsynced append transactions since start (group commit: many requests share one).", nil, nil),
		shipSent:          d("analytics_ship_attempts_total", "Batch send attempts to aggregators, resends included.", nil, nil),
		shipAcks:          d("analytics_ship_acks_total", "Acks received from aggregators, by status (ok, retry, reject).", []string{"status"}, nil),
		shipErrors:        d("analytics_ship_errors_total", "Send attempts that got no answer (network error, timeout).", nil, nil),
		shipRetries:       d("analytics_ship_retries_total", "Send attempts followed by a resend of the same segment.", nil, nil),
	}
}

func (c *statsCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.queueEvents, c.queueSegments, c.queueRejected, c.queueBytes,
		c.queueMaxBytes, c.queueOldest, c.queueAppended, c.queueCommits,
		c.shipSent, c.shipAcks, c.shipErrors, c.shipRetries,
		c.httpConns, c.httpMaxConns, c.httpMaxConnsPerIP, c.httpRefused, c.httpAcceptErrors} {
		ch <- d
	}
}

func (c *statsCollector) Collect(ch chan<- prometheus.Metric) {
	q := c.q.Stats()
	gauge := func(d *prometheus.Desc, v float64) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v)
	}
	counter := func(d *prometheus.Desc, v uint64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v), labels...)
	}
	gauge(c.queueEvents, float64(q.Pending))
	gauge(c.queueSegments, float64(q.Segments))
	gauge(c.queueRejected, float64(q.Rejected))
	gauge(c.queueBytes, float64(q.UsedBytes))
	gauge(c.queueMaxBytes, float64(q.MaxBytes))
	age := 0.0
	if !q.OldestSegment.IsZero() {
		age = max(time.Since(q.OldestSegment).Seconds(), 0)
	}
	gauge(c.queueOldest, age)
	counter(c.queueAppended, q.Appended)
	counter(c.queueCommits, q.Commits)
	s := c.ship.Stats()
	counter(c.shipSent, s.Sent)
	counter(c.shipAcks, s.AckedOK, "ok")
	counter(c.shipAcks, s.AckedRetry, "retry")
	counter(c.shipAcks, s.AckedReject, "reject")
	counter(c.shipErrors, s.Errors)
	counter(c.shipRetries, s.Retries)
	l := c.ln.Stats()
	gauge(c.httpConns, float64(l.Open))
	gauge(c.httpMaxConns, float64(l.MaxConns))
	gauge(c.httpMaxConnsPerIP, float64(l.MaxConnsPerIP))
	counter(c.httpRefused, l.RefusedMaxConns, listen.ReasonMaxConns)
	counter(c.httpRefused, l.RefusedMaxConnsPerIP, listen.ReasonMaxConnsPerIP)
	counter(c.httpAcceptErrors, l.AcceptErrors)
}
