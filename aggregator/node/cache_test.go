package node

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/avila-analytics/avila/internal/testenv"
	"github.com/avila-analytics/avila/protocol"
	"github.com/avila-analytics/avila/storage/postgres"
)

// cacheNode is a started node with one site, a key for it and a QUIC
// client to send it batches.
type cacheNode struct {
	n    *Node
	site uint32
	key  string
	c    *protocol.Client
	seq  uint64
}

func startCacheNode(t *testing.T, cfg Config) *cacheNode {
	t.Helper()
	ctx := context.Background()
	cfg.DatabaseURL = testenv.PostgresURL(t)
	cn := startNodeFor(t, cfg)
	site, err := cn.n.store.CreateSite(ctx, postgres.SiteSpec{Name: "cached"})
	if err != nil {
		t.Fatal(err)
	}
	if cn.key, err = cn.n.store.CreateAPIKey(ctx, "cached", []uint32{site.ID}); err != nil {
		t.Fatal(err)
	}
	cn.site = site.ID
	return cn
}

// startNodeFor starts a node on cfg's database with a client for it; the
// caller sets site and key.
func startNodeFor(t *testing.T, cfg Config) *cacheNode {
	t.Helper()
	cfg.ListenQUIC, cfg.ListenAPI, cfg.ListenOperator, cfg.DataDir = "127.0.0.1:0", "127.0.0.1:0", "127.0.0.1:0", t.TempDir()
	n, err := Start(context.Background(), cfg, slog.New(slog.NewTextHandler(t.Output(), nil)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = n.Shutdown(context.Background()) })
	tlsConf, err := protocol.ClientTLS(n.CAFile, "", "")
	if err != nil {
		t.Fatal(err)
	}
	c := protocol.NewClient(n.QUICAddr, tlsConf)
	t.Cleanup(func() { c.Close() })
	return &cacheNode{n: n, c: c}
}

// send ships a batch of k page views, stamped now, wants it acked OK and
// derives it.
func (cn *cacheNode) send(t *testing.T, k int) {
	t.Helper()
	cn.seq++
	b := &protocol.Batch{Version: protocol.Version, AgentID: "cache-node-test", Seq: cn.seq}
	for i := range k {
		b.Events = append(b.Events, protocol.Event{Site: cn.site, TimeMicros: time.Now().UnixMicro(), Name: "page_view", Visitor: uint64(i + 1)})
	}
	wire, err := protocol.EncodeBatch(b)
	if err != nil {
		t.Fatal(err)
	}
	if ack, err := cn.c.SendBatch(context.Background(), wire); err != nil || ack.Status != protocol.AckOK {
		t.Fatalf("batch %d: %+v, %v", cn.seq, ack, err)
	}
	// Reports see the batch once it is derived.
	if err := cn.n.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
}

// events runs a report of today's page views (the events sent) through the API.
func (cn *cacheNode) events(t *testing.T) string {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, cn.n.APIURL+"/v1beta/properties/"+itoa(cn.site)+":runReport",
		strings.NewReader(`{"dateRanges":[{"startDate":"yesterday","endDate":"today"}],"metrics":[{"name":"screenPageViews"}]}`))
	req.Header.Set("Authorization", "Bearer "+cn.key)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("runReport %d %s", resp.StatusCode, body)
	}
	var r struct {
		Rows []struct {
			MetricValues []struct{ Value string } `json:"metricValues"`
		} `json:"rows"`
	}
	if err := json.Unmarshal(body, &r); err != nil {
		t.Fatal(err)
	}
	if len(r.Rows) == 0 {
		return "0"
	}
	return r.Rows[0].MetricValues[0].Value
}

// TestNodeCache: through a real node, a repeated report is a cache hit, and
// a batch committed through ingest makes the next report fresh (the
// Committed hook bumps the site's data version), with Redis and with the
// in-memory fallback.
func TestNodeCache(t *testing.T) {
	for _, tc := range []struct {
		name string
		cfg  Config
	}{
		{"redis", Config{RedisURL: testenv.RedisURL(t), RedisPrefix: testenv.Prefix(t)}},
		{"memory", Config{}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cn := startCacheNode(t, tc.cfg)
			cn.send(t, 1)
			if got := cn.events(t); got != "1" {
				t.Fatalf("events after one batch: %s", got)
			}
			if got := cn.events(t); got != "1" {
				t.Fatalf("events, asked again: %s", got)
			}
			if h := scrape(t, cn.n.OperatorURL, "analytics_cache_hits_total"); h != 1 {
				t.Fatalf("cache hits %v, want 1", h)
			}
			cn.send(t, 2)
			if got := cn.events(t); got != "3" {
				t.Fatalf("events after a second batch: %s (a stale cached report?)", got)
			}
			if h, m := scrape(t, cn.n.OperatorURL, "analytics_cache_hits_total"), scrape(t, cn.n.OperatorURL, "analytics_cache_misses_total"); h != 1 || m != 2 {
				t.Fatalf("cache hits %v misses %v, want 1 and 2", h, m)
			}
		})
	}
}

// TestNodeCacheShared: two nodes on one database and one Redis share the
// cache: a report cached by one is a hit on the other, and a batch
// committed on either makes both answer fresh.
func TestNodeCacheShared(t *testing.T) {
	cfg := Config{RedisURL: testenv.RedisURL(t), RedisPrefix: testenv.Prefix(t)}
	a := startCacheNode(t, cfg)
	cfg.DatabaseURL = a.n.reports.Config().ConnString()
	b := startNodeFor(t, cfg)
	b.site, b.key = a.site, a.key
	b.seq = 1000 // same agent id as a's batches, other sequence numbers
	a.send(t, 1)
	if got := a.events(t); got != "1" {
		t.Fatalf("node a: %s", got)
	}
	if got := b.events(t); got != "1" {
		t.Fatalf("node b: %s", got)
	}
	if h := scrape(t, b.n.OperatorURL, "analytics_cache_hits_total"); h != 1 {
		t.Fatalf("node b cache hits %v, want 1 (the report node a cached)", h)
	}
	b.send(t, 2)
	if got := a.events(t); got != "3" {
		t.Fatalf("node a after a batch on node b: %s (stale?)", got)
	}
	if got := b.events(t); got != "3" {
		t.Fatalf("node b after its batch: %s", got)
	}
}

// TestNodeCacheRedisDown: with its Redis killed, a node still acks batches
// and answers reports, fresh, from PostgreSQL, and counts the failures.
func TestNodeCacheRedisDown(t *testing.T) {
	url, stop := testenv.OwnRedis(t)
	cn := startCacheNode(t, Config{RedisURL: url})
	cn.send(t, 1)
	if got := cn.events(t); got != "1" {
		t.Fatalf("events: %s", got)
	}
	stop()
	cn.send(t, 2)
	if got := cn.events(t); got != "3" {
		t.Fatalf("events with Redis down: %s", got)
	}
	cn.send(t, 1)
	if got := cn.events(t); got != "4" {
		t.Fatalf("events with Redis down, after another batch: %s", got)
	}
	if e := scrape(t, cn.n.OperatorURL, "analytics_cache_errors_total", "op", "bump") + scrape(t, cn.n.OperatorURL, "analytics_cache_errors_total", "op", "version"); e < 1 {
		t.Fatalf("no cache errors counted with Redis down")
	}
}

// TestNodeCacheClusterWithoutRedis: a clustered node without Redis caches
// nothing, since its memory would not see other nodes' batches.
func TestNodeCacheClusterWithoutRedis(t *testing.T) {
	cn := startCacheNode(t, Config{NodeName: "alone-in-a-cluster", GossipListen: "127.0.0.1:0"})
	if cn.n.cache != nil {
		t.Fatal("a clustered node without Redis has a query cache")
	}
	cn.send(t, 1)
	cn.events(t)
	if got := cn.events(t); got != "1" {
		t.Fatalf("events: %s", got)
	}
	if h := scrape(t, cn.n.OperatorURL, "analytics_cache_hits_total"); h != 0 {
		t.Fatalf("cache hits %v, want 0", h)
	}
}

// TestTracesRedis: a report served with Redis configured makes Redis
// command spans (redisotel) as children of its HTTP request span, in the
// same trace.
func TestTracesRedis(t *testing.T) {
	exp := tracetest.NewInMemoryExporter()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(exp))
	t.Cleanup(func() { _ = tp.Shutdown(context.Background()) })
	cn := startCacheNode(t, Config{RedisURL: testenv.RedisURL(t), RedisPrefix: testenv.Prefix(t), TracerProvider: tp})
	// redisBelow returns the names of the Redis spans whose parent is a
	// span named name.
	redisBelow := func(name string) []string {
		t.Helper()
		spans := exp.GetSpans()
		parents := map[[2]string]bool{}
		for _, s := range spans {
			if s.Name == name {
				parents[[2]string{s.SpanContext.TraceID().String(), s.SpanContext.SpanID().String()}] = true
			}
		}
		if len(parents) == 0 {
			t.Fatalf("no span %q among %d", name, len(spans))
		}
		var cmds []string
		for _, s := range spans {
			isRedis := false
			for _, a := range s.Attributes {
				isRedis = isRedis || (a.Key == "db.system" && a.Value.AsString() == "redis")
			}
			if isRedis && parents[[2]string{s.SpanContext.TraceID().String(), s.Parent.SpanID().String()}] {
				cmds = append(cmds, s.Name)
			}
		}
		return cmds
	}
	exp.Reset()
	cn.send(t, 1)
	// The batch's realtime counters among the batch's spans; the data
	// version bump among those of the derivation that made it visible.
	if cmds := redisBelow("ingest.batch"); !slices.ContainsFunc(cmds, func(c string) bool { return strings.HasPrefix(c, "redis.pipeline hincrby") }) {
		t.Errorf("redis spans under the batch span: %v, want the realtime counters (redis.pipeline hincrby …)", cmds)
	}
	if cmds := redisBelow("write.derive"); !slices.Contains(cmds, "redis.pipeline set") {
		t.Errorf("redis spans under the derivation span: %v, want the version bump (redis.pipeline set)", cmds)
	}
	// cacheAttr is the avila.cache attribute of the one report span.
	cacheAttr := func() string {
		t.Helper()
		for _, s := range exp.GetSpans() {
			if s.Name == "POST /v1beta/properties/{id}:runReport" {
				for _, a := range s.Attributes {
					if a.Key == "avila.cache" {
						return a.Value.AsString()
					}
				}
			}
		}
		return ""
	}
	exp.Reset()
	cn.events(t)
	if got := cacheAttr(); got != "miss" {
		t.Errorf("first report's span avila.cache = %q, want miss", got)
	}
	cmds := redisBelow("POST /v1beta/properties/{id}:runReport")
	t.Logf("redis spans under the report span: %v", cmds)
	// The version read, the cache read (a miss) and the cache write.
	if !slices.Contains(cmds, "getex") || !slices.Contains(cmds, "get") || !slices.Contains(cmds, "set") {
		t.Fatalf("redis spans under the report span: %v, want version, get and set", cmds)
	}
	exp.Reset()
	cn.events(t)
	if got := cacheAttr(); got != "hit" {
		t.Errorf("repeated report's span avila.cache = %q, want hit", got)
	}
}
