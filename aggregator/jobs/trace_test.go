package jobs

import (
	"context"
	"maps"
	"testing"

	"go.opentelemetry.io/otel/codes"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
)

// TestRunOnceSpans: each job of a run is one span, marked failed when the
// job failed.
func TestRunOnceSpans(t *testing.T) {
	exp := tracetest.NewInMemoryExporter()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(exp))
	defer func() { _ = tp.Shutdown(context.Background()) }()
	f := failingStore{calls: make(chan string, 10)}
	j := New(Options{Tracer: tp.Tracer("jobs")}, f)
	if err := j.RunOnce(context.Background()); err == nil {
		t.Fatal("RunOnce on a failing store returned nil")
	}
	got := map[string]codes.Code{}
	for _, s := range exp.GetSpans() {
		got[s.Name] = s.Status.Code
	}
	want := map[string]codes.Code{"jobs.partitions": codes.Error, "jobs.salts": codes.Error, "jobs.pack_rollups": codes.Error, "jobs.pack_events": codes.Error,
		"jobs.pack_items": codes.Error, "jobs.analyze": codes.Error}
	if !maps.Equal(got, want) {
		t.Errorf("spans %v, want %v", got, want)
	}
}
