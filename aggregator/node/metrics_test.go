package node

import (
	"context"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/avila-analytics/avila/internal/testenv"
	"github.com/avila-analytics/avila/protocol"
	"github.com/avila-analytics/avila/storage/postgres"
)

// scrape reads url's /metrics and returns the value of metric name with the
// given label pairs ("k", "v", …); it fails when the series is absent.
func scrape(t *testing.T, url, name string, labels ...string) float64 {
	t.Helper()
	resp, err := http.Get(url + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Fatalf("parse /metrics: %v", err)
	}
	fam, ok := fams[name]
	if !ok {
		t.Fatalf("/metrics has no %s", name)
	}
next:
	for _, m := range fam.GetMetric() {
		have := map[string]string{}
		for _, l := range m.GetLabel() {
			have[l.GetName()] = l.GetValue()
		}
		for i := 0; i+1 < len(labels); i += 2 {
			if have[labels[i]] != labels[i+1] {
				continue next
			}
		}
		switch {
		case m.Counter != nil:
			return m.Counter.GetValue()
		case m.Gauge != nil:
			return m.Gauge.GetValue()
		case m.Histogram != nil:
			return float64(m.Histogram.GetSampleCount())
		}
	}
	t.Fatalf("/metrics has no %s%v", name, labels)
	return 0
}

func TestMetricsCountBatchesAndQueries(t *testing.T) {
	ctx := context.Background()
	n, err := Start(ctx, Config{DatabaseURL: testenv.PostgresURL(t), ListenQUIC: "127.0.0.1:0", ListenAPI: "127.0.0.1:0", ListenOperator: "127.0.0.1:0",
		DataDir: t.TempDir()}, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = n.Shutdown(context.Background()) })
	site, err := n.store.CreateSite(ctx, postgres.SiteSpec{Name: "m"})
	if err != nil {
		t.Fatal(err)
	}
	tlsConf, err := protocol.ClientTLS(n.CAFile, "", "")
	if err != nil {
		t.Fatal(err)
	}
	c := protocol.NewClient(n.QUICAddr, tlsConf)
	defer c.Close()
	now := time.Now().UnixMicro()
	// Three good events and one with an empty name (a dead letter), then
	// the same batch again (a duplicate).
	wire, _ := protocol.EncodeBatch(&protocol.Batch{Version: protocol.Version, AgentID: "metrics-test", Seq: 1,
		Events: []protocol.Event{
			{Site: site.ID, TimeMicros: now, Name: "page_view"},
			{Site: site.ID, TimeMicros: now, Name: "page_view"},
			{Site: site.ID, TimeMicros: now, Name: "scroll"},
			{Site: site.ID, TimeMicros: now, Name: ""},
		}})
	for i, wantDup := range []bool{false, true} {
		ack, err := c.SendBatch(ctx, wire)
		if err != nil || ack.Status != protocol.AckOK || ack.Duplicate != wantDup {
			t.Fatalf("send %d: %+v, %v", i, ack, err)
		}
	}
	if ack, err := c.SendBatch(ctx, []byte("not a batch")); err != nil || ack.Status != protocol.AckReject {
		t.Fatalf("garbage: %+v, %v", ack, err)
	}
	f := func(want float64, name string, labels ...string) {
		t.Helper()
		if got := scrape(t, n.OperatorURL, name, labels...); got != want {
			t.Errorf("%s%v = %v, want %v", name, labels, got, want)
		}
	}
	f(3, "analytics_events_processed_total", "outcome", "stored")
	f(1, "analytics_events_processed_total", "outcome", "dead_letter")
	f(1, "analytics_dead_letters_total", "rule", "event_name_required") // once, though the batch came twice
	f(0, "analytics_dead_letters_total", "rule", "page_title_length")
	f(4, "analytics_events_processed_total", "outcome", "duplicate")
	f(1, "analytics_storage_writes_total")
	// The three stored events, derived once (by Flush here, or by the
	// node's own derivation before it).
	if err := n.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	f(3, "analytics_write_derived_events_total")
	f(1, "analytics_write_derivations_total")
	f(2, "analytics_ingest_batches_total", "status", "ok")
	f(1, "analytics_ingest_batches_total", "status", "reject")
	f(0, "analytics_ingest_batches_total", "status", "retry")
	f(0, "analytics_cache_hits_total")
	f(1, "analytics_cluster_members")
	f(0, "analytics_node_draining")
	if v := scrape(t, n.OperatorURL, "go_goroutines"); v <= 0 {
		t.Errorf("go_goroutines = %v", v)
	}
	scrape(t, n.OperatorURL, "process_resident_memory_bytes")

	// Two metadata requests, one report and one funnel (refused: no key) are timed by endpoint.
	for range 2 {
		get(t, n.APIURL+"/v1beta/properties/0/metadata")
	}
	resp, err := http.Post(n.APIURL+"/v1beta/properties/1:runReport", "application/json", strings.NewReader("{}"))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	// The funnel method is mounted under /v1alpha/ (401 without a key, not 404).
	resp, err = http.Post(n.APIURL+"/v1alpha/properties/1:runFunnelReport", "application/json", strings.NewReader("{}"))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("runFunnelReport without a key: %d, want 401", resp.StatusCode)
	}
	get(t, n.APIURL+"/v1beta/properties/1/no-such-thing")
	if resp, err := http.Get(n.APIURL + "/healthz"); err != nil || resp.Header.Get("X-Request-Id") == "" {
		t.Errorf("API answer without X-Request-Id: %v", err)
	} else {
		resp.Body.Close()
	}
	f(2, "analytics_query_duration_seconds", "endpoint", "metadata")
	f(1, "analytics_query_duration_seconds", "endpoint", "runReport")
	f(1, "analytics_query_duration_seconds", "endpoint", "runFunnelReport")
	f(1, "analytics_query_duration_seconds", "endpoint", "other")
}

func TestReadyzReportsUnmigratedDatabase(t *testing.T) {
	ctx := context.Background()
	db := testenv.PostgresURL(t)
	store, err := postgres.Open(ctx, db, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	n := &Node{store: store, log: slog.New(slog.DiscardHandler)}
	srv := httptest.NewServer(n.operatorRoutes()) // the API address says less: TestReadyzReportsDatabaseDown
	defer srv.Close()
	api := httptest.NewServer(n.routes())
	defer api.Close()
	if code, body := get(t, api.URL+"/readyz"); code != http.StatusServiceUnavailable || body != "not ready: database schema not migrated (run avila migrate)\n" {
		t.Errorf("API /readyz on an empty database: %d %q", code, body)
	}
	code, body := get(t, srv.URL+"/readyz")
	if code != http.StatusServiceUnavailable || !strings.Contains(body, "run avila migrate") {
		t.Errorf("/readyz on an empty database: %d %q, want 503 naming the fix", code, body)
	}
	if err := store.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	if code, body := get(t, srv.URL+"/readyz"); code != http.StatusOK {
		t.Errorf("/readyz after migrating: %d %q", code, body)
	}
	// A schema one version behind this build is not ready either.
	if _, err := testenv.Pool(t, db).Exec(ctx, "UPDATE public.schema_version SET version = version - 1"); err != nil {
		t.Fatal(err)
	}
	if code, body := get(t, srv.URL+"/readyz"); code != http.StatusServiceUnavailable || !strings.Contains(body, "schema at version") {
		t.Errorf("/readyz one migration behind: %d %q", code, body)
	}
}

func TestReadyzReportsDraining(t *testing.T) {
	ctx := context.Background()
	store, err := postgres.Open(ctx, testenv.PostgresURL(t), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	if err := store.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	n := &Node{store: store, log: slog.New(slog.DiscardHandler), gate: newGate(nil, nil)}
	srv := httptest.NewServer(n.routes())
	defer srv.Close()
	if code, body := get(t, srv.URL+"/readyz"); code != http.StatusOK {
		t.Fatalf("/readyz before draining: %d %q", code, body)
	}
	n.gate.drain()
	if code, body := get(t, srv.URL+"/readyz"); code != http.StatusServiceUnavailable || !strings.Contains(body, "draining") {
		t.Errorf("/readyz while draining: %d %q", code, body)
	}
}
