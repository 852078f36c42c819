// Package telemetry turns on OpenTelemetry tracing for the binaries from
// the standard OTEL_* environment variables. Only cmd/ mains call it; the
// libraries take the resulting trace.TracerProvider in their Config.
package telemetry

import (
	"context"
	"fmt"

	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	semconv "go.opentelemetry.io/otel/semconv/v1.26.0"
)

// Enabled says whether the OTEL_* variables (read through getenv) ask for
// traces: OTEL_TRACES_EXPORTER=otlp, or an OTLP endpoint
// (OTEL_EXPORTER_OTLP_ENDPOINT, OTEL_EXPORTER_OTLP_TRACES_ENDPOINT) with
// OTEL_TRACES_EXPORTER unset. OTEL_TRACES_EXPORTER=none turns tracing off;
// any other exporter name is an error.
func Enabled(getenv func(string) string) (bool, error) {
	switch exp := getenv("OTEL_TRACES_EXPORTER"); exp {
	case "otlp":
		return true, nil
	case "none":
		return false, nil
	case "":
		return getenv("OTEL_EXPORTER_OTLP_ENDPOINT") != "" || getenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") != "", nil
	default:
		return false, fmt.Errorf("telemetry: OTEL_TRACES_EXPORTER=%q: this build exports traces with otlp only (or none)", exp)
	}
}

// TracerProvider returns a provider exporting spans in batches over
// OTLP/HTTP when Enabled, else nil (no tracing). The exporter takes its
// endpoint, headers, timeout and TLS from the OTEL_EXPORTER_OTLP_* variables,
// the sampler from OTEL_TRACES_SAMPLER, and the resource from
// OTEL_SERVICE_NAME and OTEL_RESOURCE_ATTRIBUTES; service is the service
// name when OTEL_SERVICE_NAME is unset. Shut the provider down at exit to
// flush the last spans.
func TracerProvider(ctx context.Context, service string, getenv func(string) string) (*sdktrace.TracerProvider, error) {
	on, err := Enabled(getenv)
	if err != nil || !on {
		return nil, err
	}
	for _, v := range []string{"OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "OTEL_EXPORTER_OTLP_PROTOCOL"} {
		if p := getenv(v); p != "" && p != "http/protobuf" {
			return nil, fmt.Errorf("telemetry: %s=%q: this build speaks http/protobuf only", v, p)
		}
	}
	exp, err := otlptracehttp.New(ctx)
	if err != nil {
		return nil, fmt.Errorf("telemetry: otlp exporter: %w", err)
	}
	res, err := resource.Merge(resource.Default(), resource.NewSchemaless(semconv.ServiceName(service)))
	if err != nil {
		return nil, fmt.Errorf("telemetry: resource: %w", err)
	}
	if getenv("OTEL_SERVICE_NAME") != "" || getenv("OTEL_RESOURCE_ATTRIBUTES") != "" {
		// The environment wins over the default name.
		if res, err = resource.Merge(res, resource.Environment()); err != nil {
			return nil, fmt.Errorf("telemetry: resource from OTEL_RESOURCE_ATTRIBUTES: %w", err)
		}
	}
	return sdktrace.NewTracerProvider(sdktrace.WithBatcher(exp), sdktrace.WithResource(res)), nil
}
