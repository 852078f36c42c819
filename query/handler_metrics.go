package query

import (
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Metrics are the query API's Prometheus metrics. Create them once per
// server with NewMetrics and pass them in Options.
type Metrics struct {
	duration *prometheus.HistogramVec // endpoint
	// cacheHits and cacheMisses count reports (each report of a batch)
	// answered from the result cache, and computed without it.
	cacheHits   prometheus.Counter
	cacheMisses prometheus.Counter
}

// Endpoint label values: the Data API methods, and "other" for any path
// that names none, so a client cannot create label values.
var endpoints = map[string]string{
	":runReport":            "runReport",
	":batchRunReports":      "batchRunReports",
	":runRealtimeReport":    "runRealtimeReport",
	"/metadata":             "metadata",
	":runFunnelReport":      "runFunnelReport",
	":runPivotReport":       "runPivotReport",
	":batchRunPivotReports": "batchRunPivotReports",
	":checkCompatibility":   "checkCompatibility",
}

// grpcEndpoint is the endpoint label of a gRPC method (RunReport,
// GetMetadata, …): the same as its REST binding's.
func grpcEndpoint(name string) string {
	if name == "GetMetadata" {
		return "metadata"
	}
	if name != "" {
		label := strings.ToLower(name[:1]) + name[1:]
		for _, e := range endpoints {
			if e == label {
				return e
			}
		}
	}
	return "other"
}

// NewMetrics creates the query metrics and registers them on reg.
func NewMetrics(reg prometheus.Registerer) (*Metrics, error) {
	m := &Metrics{
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "analytics_query_duration_seconds",
			Help:    "Time to answer a Data API request, by endpoint (runReport, batchRunReports, runPivotReport, batchRunPivotReports, runRealtimeReport, metadata, checkCompatibility, runFunnelReport, other), REST and gRPC, errors included.",
			Buckets: []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30},
		}, []string{"endpoint"}),
		cacheHits: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "analytics_cache_hits_total",
			Help: "Reports (each report of a batch) answered from the query result cache.",
		}),
		cacheMisses: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "analytics_cache_misses_total",
			Help: "Reports (each report of a batch) computed from the database: not cached, cached under an older data version, or the cache unavailable.",
		}),
	}
	for _, c := range []prometheus.Collector{m.duration, m.cacheHits, m.cacheMisses} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("query: register metrics: %w", err)
		}
	}
	return m, nil
}

// endpointOf is the endpoint label of a request path.
func endpointOf(path string) string {
	rest, ok := strings.CutPrefix(path, propertiesPrefix)
	if !ok {
		rest, _ = strings.CutPrefix(path, alphaPrefix)
	}
	if i := strings.IndexAny(rest, ":/"); i >= 0 {
		if e, ok := endpoints[rest[i:]]; ok {
			return e
		}
	}
	return "other"
}

// instrument wraps h to observe each request's duration.
func (m *Metrics) instrument(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		h.ServeHTTP(w, r)
		m.duration.WithLabelValues(endpointOf(r.URL.Path)).Observe(time.Since(start).Seconds())
	})
}

// cacheResult counts n reports answered from the cache (hit) or not.
func (m *Metrics) cacheResult(hit bool, n int) {
	switch {
	case m == nil:
	case hit:
		m.cacheHits.Add(float64(n))
	default:
		m.cacheMisses.Add(float64(n))
	}
}
