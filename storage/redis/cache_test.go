package redis

import (
	"bytes"
	"context"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	goredis "github.com/redis/go-redis/v9"

	"github.com/avila-analytics/avila/internal/testenv"
	"github.com/avila-analytics/avila/protocol"
)

func newTestClient(t *testing.T, url string) goredis.UniversalClient {
	t.Helper()
	c, err := New(Options{URL: url})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

func newMetrics(t *testing.T) (*CacheMetrics, *prometheus.Registry) {
	t.Helper()
	reg := prometheus.NewRegistry()
	m, err := NewCacheMetrics(reg)
	if err != nil {
		t.Fatal(err)
	}
	return m, reg
}

// TestCacheRedisVersions: a version is stable until a bump, a bump is seen
// by every node sharing the Redis, and a Committed batch bumps each of its
// sites (and only those).
func TestCacheRedisVersions(t *testing.T) {
	ctx := context.Background()
	rdb := newTestClient(t, testenv.RedisURL(t))
	prefix := testenv.Prefix(t)
	a := NewCache(rdb, CacheOptions{Prefix: prefix})
	b := NewCache(rdb, CacheOptions{Prefix: prefix}) // another node
	version := func(c *Cache, site uint32) string {
		t.Helper()
		v, ok := c.Version(ctx, site)
		if !ok || v == "" {
			t.Fatalf("version of site %d: %q, %v", site, v, ok)
		}
		return v
	}
	v1 := version(a, 1)
	if v := version(b, 1); v != v1 {
		t.Fatalf("nodes disagree on the version: %s, %s", v1, v)
	}
	if v := version(a, 1); v != v1 {
		t.Fatalf("version moved without a bump: %s then %s", v1, v)
	}
	w1 := version(a, 2)
	b.Committed(ctx, []protocol.Event{{Site: 1}, {Site: 1}, {Site: 3}})
	v2 := version(a, 1)
	if v2 == v1 {
		t.Fatal("a committed batch did not change its site's version on the other node")
	}
	if w := version(a, 2); w != w1 {
		t.Fatalf("a batch for sites 1 and 3 changed site 2's version: %s then %s", w1, w)
	}
	// Every key has a TTL.
	a.Set(ctx, "k", []byte("v"), time.Minute)
	for _, key := range []string{prefix + "dv:1", prefix + "dv:2", prefix + "dv:3", prefix + "cache:q:k"} {
		ttl, err := rdb.TTL(ctx, key).Result()
		if err != nil || ttl <= 0 {
			t.Errorf("key %s: TTL %v, %v", key, ttl, err)
		}
	}
	// A version key that is lost (eviction, restart) never comes back as a
	// version entries were stored under.
	if err := rdb.Del(ctx, prefix+"dv:1").Err(); err != nil {
		t.Fatal(err)
	}
	if v := version(a, 1); v == v1 || v == v2 {
		t.Fatalf("version after loss %s repeats an earlier one", v)
	}
}

func TestCacheRedisEntries(t *testing.T) {
	ctx := context.Background()
	rdb := newTestClient(t, testenv.RedisURL(t))
	c := NewCache(rdb, CacheOptions{Prefix: testenv.Prefix(t), MaxEntryBytes: 10})
	if _, ok := c.Get(ctx, "k"); ok {
		t.Fatal("hit on an empty cache")
	}
	c.Set(ctx, "k", []byte("value"), time.Minute)
	if v, ok := c.Get(ctx, "k"); !ok || string(v) != "value" {
		t.Fatalf("get after set: %q, %v", v, ok)
	}
	c.Set(ctx, "big", []byte("more than ten bytes"), time.Minute)
	if _, ok := c.Get(ctx, "big"); ok {
		t.Fatal("a value over MaxEntryBytes was cached")
	}
}

// TestCacheRedisDown: with its Redis gone, the cache misses, skips writes,
// counts the failures and keeps the bumps it could not make.
func TestCacheRedisDown(t *testing.T) {
	ctx := context.Background()
	url, stop := testenv.OwnRedis(t)
	var logs bytes.Buffer
	m, reg := newMetrics(t)
	c := NewCache(newTestClient(t, url), CacheOptions{Metrics: m, Logger: slogTo(&logs)})
	if _, ok := c.Version(ctx, 1); !ok {
		t.Fatal("no version while Redis is up")
	}
	c.Set(ctx, "k", []byte("v"), time.Minute)
	stop()
	if _, ok := c.Get(ctx, "k"); ok {
		t.Fatal("hit with Redis down")
	}
	if _, ok := c.Version(ctx, 1); ok {
		t.Fatal("version with Redis down")
	}
	c.Set(ctx, "k2", []byte("v"), time.Minute)
	c.Committed(ctx, []protocol.Event{{Site: 1}})
	if got := errorCount(t, reg, opGet); got != 1 {
		t.Errorf("get errors %v, want 1", got)
	}
	if !strings.Contains(logs.String(), "redis failed") {
		t.Errorf("no warning logged: %s", logs.String())
	}
	c.mu.Lock()
	_, pending := c.pending[1]
	c.mu.Unlock()
	if !pending {
		t.Fatal("a bump that missed Redis is not kept for a retry")
	}
}

// TestCacheBumpRetried: a bump that Redis did not take in time is made by
// Run once Redis answers again, and until then this node does not use the
// cache for the site.
func TestCacheBumpRetried(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	url, _ := testenv.OwnRedis(t)
	rdb := newTestClient(t, url)
	m, reg := newMetrics(t)
	c := NewCache(rdb, CacheOptions{Metrics: m})
	other := NewCache(newTestClient(t, url), CacheOptions{})
	v1, ok := other.Version(ctx, 7)
	if !ok {
		t.Fatal("no version")
	}
	// Writes stall for 1.5s: longer than the bump may take.
	if err := newTestClient(t, url).Do(ctx, "CLIENT", "PAUSE", "1500", "WRITE").Err(); err != nil {
		t.Fatal(err)
	}
	c.Committed(ctx, []protocol.Event{{Site: 7}})
	if got := errorCount(t, reg, opBump); got != 1 {
		t.Fatalf("bump errors %v, want 1", got)
	}
	if _, ok := c.Version(ctx, 7); ok {
		t.Fatal("this node uses the cache for a site whose bump is pending")
	}
	go c.Run(ctx)
	deadline := time.Now().Add(10 * time.Second)
	for {
		v, ok := other.Version(ctx, 7)
		if ok && v != v1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the pending bump never reached Redis")
		}
		time.Sleep(50 * time.Millisecond)
	}
	if _, ok := c.Version(ctx, 7); !ok {
		t.Fatal("cache still unused after the bump went through")
	}
}

// reportCache is what the node uses of either query cache.
type reportCache interface {
	Version(ctx context.Context, site uint32) (string, bool)
	Get(ctx context.Context, key string) ([]byte, bool)
	Set(ctx context.Context, key string, value []byte, ttl time.Duration)
	Bump(ctx context.Context, sites []uint32)
	Committed(ctx context.Context, events []protocol.Event)
	Run(ctx context.Context)
}

var (
	_ reportCache = (*Cache)(nil)
	_ reportCache = (*MemoryCache)(nil)
)

// TestCacheContract holds both query caches, Redis (a real server) and
// memory, to one contract: a site's version is known and stable until a
// bump or a committed batch of that site changes it, and only that site's;
// an entry reads back until its TTL, within the entry bound.
func TestCacheContract(t *testing.T) {
	impls := map[string]func(t *testing.T, o CacheOptions) reportCache{
		"redis": func(t *testing.T, o CacheOptions) reportCache {
			o.Prefix = testenv.Prefix(t)
			return NewCache(newTestClient(t, testenv.RedisURL(t)), o)
		},
		"memory": func(t *testing.T, o CacheOptions) reportCache { return NewMemoryCache(o) },
	}
	for name, open := range impls {
		t.Run(name, func(t *testing.T) {
			ctx := context.Background()
			c := open(t, CacheOptions{MaxEntryBytes: 16})
			version := func(site uint32) string {
				t.Helper()
				v, ok := c.Version(ctx, site)
				if !ok {
					t.Fatalf("version of site %d unknown", site)
				}
				return v
			}
			a1, b1 := version(1), version(2)
			if again := version(1); again != a1 {
				t.Fatalf("version moved without a change: %q, then %q", a1, again)
			}
			c.Committed(ctx, []protocol.Event{{Site: 1}, {Site: 1}})
			a2 := version(1)
			if a2 == a1 {
				t.Fatal("a committed batch did not change its site's version")
			}
			if b := version(2); b != b1 {
				t.Fatalf("a batch of site 1 moved site 2's version: %q, then %q", b1, b)
			}
			c.Bump(ctx, []uint32{2})
			if b := version(2); b == b1 {
				t.Fatal("a bump did not change the version")
			}
			c.Set(ctx, "small", []byte("report"), time.Minute)
			c.Set(ctx, "large", []byte(strings.Repeat("x", 17)), time.Minute)
			c.Set(ctx, "no ttl", []byte("report"), 0)
			if v, ok := c.Get(ctx, "small"); !ok || string(v) != "report" {
				t.Fatalf("entry read back: %q, %v", v, ok)
			}
			for _, key := range []string{"large", "no ttl", "never set"} {
				if _, ok := c.Get(ctx, key); ok {
					t.Errorf("entry %q kept", key)
				}
			}
			rctx, cancel := context.WithCancel(ctx)
			done := make(chan struct{})
			go func() { defer close(done); c.Run(rctx) }()
			cancel()
			select {
			case <-done:
			case <-time.After(5 * time.Second):
				t.Fatal("Run did not return after its context ended")
			}
		})
	}
}

// TestCacheMemory: the memory cache keeps its entries within a byte bound,
// least recently used out first, and not past their TTLs.
func TestCacheMemory(t *testing.T) {
	ctx := context.Background()
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	c := NewMemoryCache(CacheOptions{MemoryBytes: 3 * (entryOverhead + 10), Now: func() time.Time { return now }})
	c.Set(ctx, "k1", []byte("12345678"), time.Minute) // 2+8 bytes
	c.Set(ctx, "k2", []byte("12345678"), 2*time.Minute)
	c.Set(ctx, "k3", []byte("12345678"), time.Minute)
	if _, ok := c.Get(ctx, "k1"); !ok { // k1 now most recently used
		t.Fatal("k1 missing")
	}
	c.Set(ctx, "k4", []byte("12345678"), time.Minute)
	if _, ok := c.Get(ctx, "k2"); ok {
		t.Fatal("least recently used entry kept past the bound")
	}
	if c.mem.len() != 3 {
		t.Fatalf("%d entries, want 3", c.mem.len())
	}
	now = now.Add(time.Minute)
	if _, ok := c.Get(ctx, "k1"); ok {
		t.Fatal("entry served past its TTL")
	}
}

func slogTo(w *bytes.Buffer) *slog.Logger { return slog.New(slog.NewTextHandler(w, nil)) }

// errorCount reads analytics_cache_errors_total{op} from reg.
func errorCount(t *testing.T, reg *prometheus.Registry, op string) float64 {
	t.Helper()
	fams, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range fams {
		if f.GetName() != "analytics_cache_errors_total" {
			continue
		}
		for _, m := range f.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "op" && l.GetValue() == op {
					return m.GetCounter().GetValue()
				}
			}
		}
	}
	t.Fatalf("no analytics_cache_errors_total{op=%q}", op)
	return 0
}

// len is the number of entries held, expired ones included.
func (l *lru) len() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.items)
}
