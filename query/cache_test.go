package query

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/prometheus/client_golang/prometheus"
	goredis "github.com/redis/go-redis/v9"

	"github.com/avila-analytics/avila/internal/testenv"
	"github.com/avila-analytics/avila/protocol"
	"github.com/avila-analytics/avila/query/plan"
	"github.com/avila-analytics/avila/storage/redis"
)

// cacheRig is a handler with a result cache over the fixture, a clock the
// test moves, and the cache metrics.
type cacheRig struct {
	f     *fixture
	h     http.Handler
	cache interface {
		ResultCache
		Committed(ctx context.Context, events []protocol.Event)
	}
	reg   *prometheus.Registry
	now   atomic.Pointer[time.Time]
	agent string // batch key of the rig's writes, with seq
	seq   uint64
}

func newCacheRig(t *testing.T, f *fixture, rdb goredis.UniversalClient) *cacheRig {
	t.Helper()
	r := &cacheRig{f: f, reg: prometheus.NewRegistry(), agent: "cache-test " + t.Name()}
	now := fixtureNow
	r.now.Store(&now)
	m, err := NewMetrics(r.reg)
	if err != nil {
		t.Fatal(err)
	}
	cm, err := redis.NewCacheMetrics(r.reg)
	if err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.NewTextHandler(t.Output(), nil))
	// A node without Redis caches in memory, as aggregator/node chooses.
	o := redis.CacheOptions{Prefix: testenv.Prefix(t), Logger: log, Metrics: cm}
	if rdb != nil {
		r.cache = redis.NewCache(rdb, o)
	} else {
		r.cache = redis.NewMemoryCache(o)
	}
	r.h = newHandler(Options{Logger: log, Now: func() time.Time { return *r.now.Load() }, Metrics: m, Cache: r.cache},
		f.pool, stubKeys{testKey: {1, 2, 3}})
	return r
}

// report posts req for site 3 and returns the report, which must be 200.
func (r *cacheRig) report(t *testing.T, req any) *plan.RunReportResponse {
	t.Helper()
	code, body := post(t, r.h, "3", testKey, req)
	if code != http.StatusOK {
		t.Fatalf("status %d: %s", code, body)
	}
	var got plan.RunReportResponse
	if err := json.Unmarshal(body, &got); err != nil {
		t.Fatal(err)
	}
	return &got
}

// store writes n page views on site 3 at the rig's "now" straight to the
// database, as a batch commit would, without telling the cache.
func (r *cacheRig) store(t *testing.T, n int) []protocol.Event {
	t.Helper()
	var evs []protocol.Event
	for i := range n {
		evs = append(evs, protocol.Event{Site: 3, TimeMicros: r.now.Load().Add(-time.Duration(i) * time.Minute).UnixMicro(),
			Name: "page_view", Visitor: uint64(1000 + i), Path: "/new"})
	}
	r.seq++
	if _, err := r.f.writeBatch(context.Background(), r.agent, r.seq, evs, nil); err != nil {
		t.Fatal(err)
	}
	r.f.events = append(r.f.events, evs...)
	return evs
}

// counter reads a counter of the rig's registry, by name and labels.
func (r *cacheRig) counter(t *testing.T, name string, labels ...string) float64 {
	t.Helper()
	fams, err := r.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range fams {
		if f.GetName() != name {
			continue
		}
	next:
		for _, m := range f.GetMetric() {
			for i := 0; i+1 < len(labels); i += 2 {
				found := false
				for _, l := range m.GetLabel() {
					found = found || (l.GetName() == labels[i] && l.GetValue() == labels[i+1])
				}
				if !found {
					continue next
				}
			}
			return m.GetCounter().GetValue()
		}
	}
	t.Fatalf("no counter %s %v", name, labels)
	return 0
}

func (r *cacheRig) wantCounts(t *testing.T, hits, misses float64) {
	t.Helper()
	if h, m := r.counter(t, "analytics_cache_hits_total"), r.counter(t, "analytics_cache_misses_total"); h != hits || m != misses {
		t.Fatalf("cache hits %v misses %v, want %v and %v", h, m, hits, misses)
	}
}

func (r *cacheRig) wantOracle(t *testing.T, req plan.RunReportRequest, got *plan.RunReportResponse) {
	t.Helper()
	want := oracle(req, r.f.zones[3], *r.now.Load(), r.f.events, 3)
	if diff := cmp.Diff(want, got); diff != "" {
		t.Fatalf("report differs from oracle (-want +got):\n%s", diff)
	}
}

// cacheRequest reaches today, so that new data lands in it.
var cacheRequest = plan.RunReportRequest{Dimensions: dims("date"), Metrics: mets("eventCount", "activeUsers"),
	DateRanges: []plan.DateRange{{StartDate: "3daysAgo", EndDate: "today"}}, OrderBys: []plan.OrderBy{byDim("date", "", false)},
	MetricAggregations: []plan.MetricAggregation{"TOTAL"}}

// TestReportCache: a repeated report is answered from the cache, not the
// database (data written under it without a bump is not seen), the same
// for a request spelled differently; a committed batch's bump makes the
// next answer fresh; "today" means a new key on a new day; batches are
// cached too. In Redis and, without Redis, in memory.
func TestReportCache(t *testing.T) {
	f := newFixture(t, 300)
	rdb, err := redis.New(redis.Options{URL: testenv.RedisURL(t)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = rdb.Close() })
	for _, tc := range []struct {
		name string
		rdb  goredis.UniversalClient
	}{{"redis", rdb}, {"memory", nil}} {
		t.Run(tc.name, func(t *testing.T) {
			r := newCacheRig(t, f, tc.rdb)
			first := r.report(t, cacheRequest)
			r.wantOracle(t, cacheRequest, first)
			r.wantCounts(t, 0, 1)

			// Stored behind the cache's back: a cached answer ignores it.
			r.store(t, 5)
			if got := r.report(t, cacheRequest); !cmp.Equal(first, got) {
				t.Fatalf("second identical report was not the cached one:\n%s", cmp.Diff(first, got))
			}
			r.wantCounts(t, 1, 1)
			// The same request, spelled otherwise: other field order,
			// explicit property and limit, string integers, quota asked.
			same := `{"returnPropertyQuota":true,"limit":"10000","property":"properties/3","metricAggregations":["TOTAL"],` +
				`"orderBys":[{"dimension":{"dimensionName":"date"}}],"dateRanges":[{"endDate":"today","startDate":"3daysAgo"}],` +
				`"metrics":[{"name":"eventCount"},{"name":"activeUsers"}],"dimensions":[{"name":"date"}]}`
			got := r.report(t, []byte(same))
			if got.PropertyQuota == nil {
				t.Fatalf("returnPropertyQuota on a cached answer: no propertyQuota")
			}
			// The quota is added per request, around the cached report.
			got.PropertyQuota = nil
			if !cmp.Equal(first, got) {
				t.Fatalf("equivalent request missed the cache:\n%s", cmp.Diff(first, got))
			}
			r.wantCounts(t, 2, 1)

			// A committed batch bumps the site's version: fresh answer.
			evs := r.store(t, 3)
			r.cache.Committed(context.Background(), evs)
			fresh := r.report(t, cacheRequest)
			r.wantOracle(t, cacheRequest, fresh)
			if cmp.Equal(first, fresh) {
				t.Fatal("new data did not change the report; the case proves nothing")
			}
			r.wantCounts(t, 2, 2)

			// A batch is cached as a whole.
			batch := BatchRunReportsRequest{Requests: []plan.RunReportRequest{cacheRequest, {Metrics: mets("eventCount"),
				DateRanges: []plan.DateRange{{StartDate: "2026-03-01", EndDate: "2026-03-05"}}}}}
			var batches [2]BatchRunReportsResponse
			for i := range batches {
				code, body := call(t, r.h, http.MethodPost, "/v1beta/properties/3:batchRunReports", testKey, batch)
				if code != http.StatusOK {
					t.Fatalf("batch: %d %s", code, body)
				}
				if err := json.Unmarshal(body, &batches[i]); err != nil {
					t.Fatal(err)
				}
			}
			if !cmp.Equal(batches[0], batches[1]) || !cmp.Equal(batches[0].Reports[0], fresh) {
				t.Fatalf("batch answers differ:\n%s", cmp.Diff(batches[0], batches[1]))
			}
			r.wantCounts(t, 4, 4)

			// Tomorrow "today" is another day: another key, computed.
			tomorrow := fixtureNow.Add(24 * time.Hour)
			r.now.Store(&tomorrow)
			r.wantOracle(t, cacheRequest, r.report(t, cacheRequest))
			r.wantCounts(t, 4, 5)
		})
	}
}

// TestReportCacheRedisDown: with the cache's Redis killed, reports are
// still answered, correctly and fresh, from PostgreSQL; the failures are
// counted, never returned.
func TestReportCacheRedisDown(t *testing.T) {
	f := newFixture(t, 300)
	url, stop := testenv.OwnRedis(t)
	rdb, err := redis.New(redis.Options{URL: url})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = rdb.Close() })
	r := newCacheRig(t, f, rdb)
	r.wantOracle(t, cacheRequest, r.report(t, cacheRequest))
	r.report(t, cacheRequest)
	r.wantCounts(t, 1, 1)

	stop()
	r.wantOracle(t, cacheRequest, r.report(t, cacheRequest))
	evs := r.store(t, 4)
	r.cache.Committed(context.Background(), evs) // cannot reach Redis
	r.wantOracle(t, cacheRequest, r.report(t, cacheRequest))
	r.wantCounts(t, 1, 3)
	if n := r.counter(t, "analytics_cache_errors_total", "op", "version"); n < 1 {
		t.Fatalf("version errors %v, want at least 1", n)
	}
}

// TestReportCacheNoCache: a request with Cache-Control: no-cache is computed
// from the database even when the cache holds its answer, and the fresh
// answer replaces the cached one for the requests after it.
func TestReportCacheNoCache(t *testing.T) {
	f := newFixture(t, 300)
	r := newCacheRig(t, f, nil)
	first := r.report(t, cacheRequest)
	r.wantCounts(t, 0, 1)
	r.store(t, 5) // behind the cache's back: only a fresh computation sees it

	body, err := json.Marshal(cacheRequest)
	if err != nil {
		t.Fatal(err)
	}
	req := httptest.NewRequest(http.MethodPost, "/v1beta/properties/3:runReport", bytes.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+testKey)
	req.Header.Set("Cache-Control", "no-cache")
	rec := httptest.NewRecorder()
	r.h.ServeHTTP(rec, req)
	if rec.Code != http.StatusOK {
		t.Fatalf("no-cache report: %d %s", rec.Code, rec.Body)
	}
	var fresh plan.RunReportResponse
	if err := json.Unmarshal(rec.Body.Bytes(), &fresh); err != nil {
		t.Fatal(err)
	}
	r.wantOracle(t, cacheRequest, &fresh)
	if cmp.Equal(first, &fresh) {
		t.Fatal("the data written behind the cache did not change the report; the case proves nothing")
	}
	r.wantCounts(t, 0, 2)

	if got := r.report(t, cacheRequest); !cmp.Equal(&fresh, got) {
		t.Fatalf("the next plain request did not get the refreshed entry:\n%s", cmp.Diff(&fresh, got))
	}
	r.wantCounts(t, 1, 2)
}

// TestReportCacheQuota: a cached report never carries another request's
// propertyQuota: the quota is charged and attached per request, after the
// cache, and only when asked.
func TestReportCacheQuota(t *testing.T) {
	f := newFixture(t, 100)
	r := newCacheRig(t, f, nil)
	withQuota := cacheRequest
	withQuota.ReturnPropertyQuota = true
	first := r.report(t, withQuota)
	if first.PropertyQuota == nil || first.PropertyQuota.TokensPerDay.Consumed < 1 {
		t.Fatalf("first report's propertyQuota: %+v", first.PropertyQuota)
	}
	if plain := r.report(t, cacheRequest); plain.PropertyQuota != nil {
		t.Fatalf("a cached report carries a propertyQuota it did not ask for: %+v", plain.PropertyQuota)
	}
	again := r.report(t, withQuota)
	if again.PropertyQuota == nil || again.PropertyQuota.TokensPerDay.Consumed <= first.PropertyQuota.TokensPerDay.Consumed {
		t.Fatalf("cached report's propertyQuota %+v, want more consumed than the first's %+v", again.PropertyQuota, first.PropertyQuota)
	}
	r.wantCounts(t, 2, 1)
}
