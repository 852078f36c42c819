package telemetry

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
)

func TestEnabled(t *testing.T) {
	f := func(env map[string]string, want bool, wantErr string) {
		t.Helper()
		got, err := Enabled(func(k string) string { return env[k] })
		if wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), wantErr) {
				t.Errorf("Enabled(%v) error %v, want %q", env, err, wantErr)
			}
			return
		}
		if err != nil || got != want {
			t.Errorf("Enabled(%v) = %v, %v; want %v", env, got, err, want)
		}
	}
	f(nil, false, "")
	f(map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318"}, true, "")
	f(map[string]string{"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://127.0.0.1:4318/v1/traces"}, true, "")
	f(map[string]string{"OTEL_TRACES_EXPORTER": "otlp"}, true, "")
	f(map[string]string{"OTEL_TRACES_EXPORTER": "none", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318"}, false, "")
	f(map[string]string{"OTEL_TRACES_EXPORTER": "zipkin"}, false, "otlp only")
}

func TestTracerProviderOffWithoutVariables(t *testing.T) {
	tp, err := TracerProvider(context.Background(), "test", func(string) string { return "" })
	if err != nil || tp != nil {
		t.Fatalf("TracerProvider with no OTEL_* = %v, %v; want nil, nil", tp, err)
	}
}

func TestTracerProviderRefusesGRPC(t *testing.T) {
	env := map[string]string{"OTEL_TRACES_EXPORTER": "otlp", "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc"}
	if _, err := TracerProvider(context.Background(), "test", func(k string) string { return env[k] }); err == nil ||
		!strings.Contains(err.Error(), "http/protobuf only") {
		t.Fatalf("error %v, want http/protobuf only", err)
	}
}

// TestTracerProviderExports: with OTEL_EXPORTER_OTLP_ENDPOINT set, spans
// are posted as OTLP/HTTP to <endpoint>/v1/traces.
func TestTracerProviderExports(t *testing.T) {
	var mu sync.Mutex
	var paths []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		paths = append(paths, r.Method+" "+r.URL.Path+" "+r.Header.Get("Content-Type"))
		mu.Unlock()
		w.Header().Set("Content-Type", "application/x-protobuf")
	}))
	defer srv.Close()
	t.Setenv("OTEL_EXPORTER_OTLP_ENDPOINT", srv.URL)
	t.Setenv("OTEL_SERVICE_NAME", "telemetry-test")
	ctx := context.Background()
	env := map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": srv.URL, "OTEL_SERVICE_NAME": "telemetry-test"}
	tp, err := TracerProvider(ctx, "avila-test", func(k string) string { return env[k] })
	if err != nil || tp == nil {
		t.Fatalf("TracerProvider: %v, %v", tp, err)
	}
	_, span := tp.Tracer("test").Start(ctx, "one")
	span.End()
	if err := tp.Shutdown(ctx); err != nil { // flushes
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(paths) != 1 || paths[0] != "POST /v1/traces application/x-protobuf" {
		t.Fatalf("collector got %q, want one POST /v1/traces", paths)
	}
}
