package query

import (
	"encoding/json"
	"log/slog"
	"net/http"
	"testing"
	"time"

	"github.com/avila-analytics/avila/internal/testenv"
	"github.com/avila-analytics/avila/query/plan"
	"github.com/avila-analytics/avila/storage/redis"
)

// BenchmarkReportCache is one runReport through the handler: computed by
// PostgreSQL (no cache), and answered from the cache in Redis and in memory.
func BenchmarkReportCache(b *testing.B) {
	f := newFixture(b, 3000)
	rdb, err := redis.New(redis.Options{URL: testenv.RedisURL(b)})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = rdb.Close() })
	req, err := json.Marshal(plan.RunReportRequest{Dimensions: dims("date", "pagePath"), Metrics: mets("eventCount", "activeUsers", "screenPageViews"),
		DateRanges: []plan.DateRange{{StartDate: "7daysAgo", EndDate: "today"}}, MetricAggregations: []plan.MetricAggregation{"TOTAL"}})
	if err != nil {
		b.Fatal(err)
	}
	for _, bc := range []struct {
		name  string
		cache ResultCache
	}{
		{"computed", nil},
		{"redis_hit", redis.NewCache(rdb, redis.CacheOptions{Prefix: testenv.Prefix(b)})},
		{"memory_hit", redis.NewMemoryCache(redis.CacheOptions{})},
	} {
		b.Run(bc.name, func(b *testing.B) {
			h := newHandler(Options{Logger: slog.New(slog.DiscardHandler), Now: func() time.Time { return fixtureNow }, Cache: bc.cache},
				f.pool, stubKeys{testKey: {1}})
			if code, body := post(b, h, "1", testKey, req); code != http.StatusOK { // fills the cache
				b.Fatalf("status %d: %s", code, body)
			}
			b.ReportAllocs()
			for b.Loop() {
				if code, _ := post(b, h, "1", testKey, req); code != http.StatusOK {
					b.Fatalf("status %d", code)
				}
			}
		})
	}
}
