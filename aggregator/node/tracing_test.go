package node

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/avila-analytics/avila/internal/testenv"
	"github.com/avila-analytics/avila/protocol"
	"github.com/avila-analytics/avila/storage/postgres"
)

// TestTraces: the start-up jobs, one batch and one runReport through a real
// node each make a span with the database spans of their work as children.
func TestTraces(t *testing.T) {
	ctx := context.Background()
	exp := tracetest.NewInMemoryExporter()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(exp))
	t.Cleanup(func() { _ = tp.Shutdown(context.Background()) })
	n, err := Start(ctx, Config{DatabaseURL: testenv.PostgresURL(t), ListenQUIC: "127.0.0.1:0", ListenAPI: "127.0.0.1:0", ListenOperator: "127.0.0.1:0",
		DataDir: t.TempDir(), TracerProvider: tp}, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = n.Shutdown(context.Background()) })
	site, err := n.store.CreateSite(ctx, postgres.SiteSpec{Name: "traced"})
	if err != nil {
		t.Fatal(err)
	}
	key, err := n.store.CreateAPIKey(ctx, "traced", []uint32{site.ID})
	if err != nil {
		t.Fatal(err)
	}

	// childrenOf returns the spans below the one named name, failing when
	// there is not exactly one such span.
	childrenOf := func(name string) (tracetest.SpanStub, []tracetest.SpanStub) {
		t.Helper()
		var root []tracetest.SpanStub
		spans := exp.GetSpans()
		for _, s := range spans {
			if s.Name == name {
				root = append(root, s)
			}
		}
		if len(root) != 1 {
			var names []string
			for _, s := range spans {
				names = append(names, s.Name)
			}
			t.Fatalf("%d spans named %q, want 1 (spans: %v)", len(root), name, names)
		}
		var kids []tracetest.SpanStub
		for _, s := range spans {
			if s.Parent.SpanID() == root[0].SpanContext.SpanID() && s.SpanContext.TraceID() == root[0].SpanContext.TraceID() {
				kids = append(kids, s)
			}
		}
		return root[0], kids
	}

	// Start ran the upkeep jobs once.
	if _, kids := childrenOf("jobs.salts"); len(kids) == 0 {
		t.Error("salts job span has no database spans below it")
	}

	exp.Reset()
	tlsConf, err := protocol.ClientTLS(n.CAFile, "", "")
	if err != nil {
		t.Fatal(err)
	}
	c := protocol.NewClient(n.QUICAddr, tlsConf)
	defer c.Close()
	wire, _ := protocol.EncodeBatch(&protocol.Batch{Version: protocol.Version, AgentID: "trace-test", Seq: 9,
		Events: []protocol.Event{{Site: site.ID, TimeMicros: time.Now().UnixMicro(), Name: "page_view"}}})
	if ack, err := c.SendBatch(ctx, wire); err != nil || ack.Status != protocol.AckOK {
		t.Fatalf("batch: %+v, %v", ack, err)
	}
	batch, kids := childrenOf("ingest.batch")
	attrs := map[string]string{}
	for _, a := range batch.Attributes {
		attrs[string(a.Key)] = a.Value.String()
	}
	if attrs["avila.agent"] != "trace-test" || attrs["avila.seq"] != "9" || attrs["avila.stored"] != "1" || attrs["avila.ack"] != "ok" {
		t.Errorf("batch span attributes %v", attrs)
	}
	if len(kids) == 0 {
		t.Error("batch span has no database spans below it")
	}

	exp.Reset()
	req, _ := http.NewRequest(http.MethodPost, n.APIURL+"/v1beta/properties/"+itoa(site.ID)+":runReport",
		strings.NewReader(`{"dateRanges":[{"startDate":"7daysAgo","endDate":"today"}],"metrics":[{"name":"eventCount"}]}`))
	req.Header.Set("Authorization", "Bearer "+key)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("runReport %d %s", resp.StatusCode, body)
	}
	report, kids := childrenOf("POST /v1beta/properties/{id}:runReport")
	if report.SpanKind.String() != "server" {
		t.Errorf("report span kind %v", report.SpanKind)
	}
	if len(kids) == 0 {
		t.Error("report span has no database spans below it")
	}
	for _, k := range kids {
		for _, a := range k.Attributes {
			if strings.Contains(a.Value.String(), key) {
				t.Errorf("span %q holds the API key in %s", k.Name, a.Key)
			}
		}
	}
}

func itoa(id uint32) string { return strconv.FormatUint(uint64(id), 10) }

func TestRouteNameBounded(t *testing.T) {
	f := func(path, want string) {
		t.Helper()
		if got := routeName(path); got != want {
			t.Errorf("routeName(%q) = %q, want %q", path, got, want)
		}
	}
	f("/v1beta/properties/12:runRealtimeReport", "/v1beta/properties/{id}:runRealtimeReport")
	f("/v1beta/properties/12:runReport", "/v1beta/properties/{id}:runReport")
	f("/v1/realtime/ws", "/v1/realtime/ws")
	f("/v1/realtime/ws/x", "other")
	f("/v1beta/properties/12:nope", "/v1beta/properties/other")
}
