package redis

import (
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
)

// CacheMetrics count the cache's Redis failures. Create them once per
// process with NewCacheMetrics and pass them in CacheOptions.
type CacheMetrics struct {
	errors *prometheus.CounterVec // op
}

// Operation label values of analytics_cache_errors_total: a fixed set.
const (
	opGet     = "get"
	opSet     = "set"
	opVersion = "version"
	opBump    = "bump"
)

// NewCacheMetrics creates the cache metrics and registers them on reg.
func NewCacheMetrics(reg prometheus.Registerer) (*CacheMetrics, error) {
	m := &CacheMetrics{errors: prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "analytics_cache_errors_total",
		Help: "Redis commands of the query cache that failed, by operation (get, set, version, bump); the request or batch went on without the cache.",
	}, []string{"op"})}
	for _, op := range []string{opGet, opSet, opVersion, opBump} {
		m.errors.WithLabelValues(op) // exported at 0 from the start
	}
	if err := reg.Register(m.errors); err != nil {
		return nil, fmt.Errorf("redis: register cache metrics: %w", err)
	}
	return m, nil
}
