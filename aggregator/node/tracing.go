package node

import (
	"net/http"
	"strings"

	"github.com/exaring/otelpgx"
	"github.com/jackc/pgx/v5"
	"go.opentelemetry.io/contrib/instrumentation/net/http/otelhttp"
	metricnoop "go.opentelemetry.io/otel/metric/noop"
	"go.opentelemetry.io/otel/trace"
)

// Tracer names of the node's parts in spans.
const (
	tracerIngest = "github.com/avila-analytics/avila/aggregator/ingest"
	tracerJobs   = "github.com/avila-analytics/avila/aggregator/jobs"
	tracerWrite  = "github.com/avila-analytics/avila/aggregator/write"
)

// pgxTracer traces every database query, batch and COPY as a span, child
// of the span in its context (an API request, a batch). Query parameters
// are never recorded.
func pgxTracer(tp trace.TracerProvider) pgx.QueryTracer {
	return otelpgx.NewTracer(otelpgx.WithTracerProvider(tp), otelpgx.WithMeterProvider(metricnoop.NewMeterProvider()))
}

// traceHTTP wraps the API handler in one server span per request, named by
// route so that span names stay few (never the raw path).
func traceHTTP(tp trace.TracerProvider, h http.Handler) http.Handler {
	return otelhttp.NewHandler(h, "api", otelhttp.WithTracerProvider(tp),
		otelhttp.WithMeterProvider(metricnoop.NewMeterProvider()),
		otelhttp.WithSpanNameFormatter(func(_ string, r *http.Request) string { return r.Method + " " + routeName(r.URL.Path) }))
}

// routeName is the route a path falls under, from a fixed set.
func routeName(path string) string {
	switch path {
	case "/healthz", "/readyz", "/metrics", "/v1/cluster/status", "/v1/realtime/ws":
		return path
	}
	rest, ok := strings.CutPrefix(path, "/v1beta/properties/")
	if !ok {
		return "other"
	}
	for _, m := range []string{":runReport", ":batchRunReports", ":runRealtimeReport", "/metadata"} {
		if strings.HasSuffix(rest, m) {
			return "/v1beta/properties/{id}" + m
		}
	}
	return "/v1beta/properties/other"
}
