// Command avila-aggregator receives batches from avila-agent over QUIC,
// stores them in PostgreSQL exactly once and serves the query API.
//
// Every flag has an AVILA_<FLAG> environment fallback (--data-dir ↔
// AVILA_DATA_DIR); --database-url also falls back to DATABASE_URL and
// --redis-url to REDIS_URL. When ready it prints one JSON line on stdout:
// {"quic":…,"api":…,"operator":…,"ca":…,"node":…,"gossip":…} ("operator"
// unless --listen-operator is empty, "gossip" only with --gossip-listen). SIGTERM drains the node: it takes no new batches,
// finishes those in flight, leaves the cluster and exits.
//
// Prometheus metrics are at /metrics on the operator address
// (--listen-operator), never on the API address. Traces (API
// requests, batches, database queries) go to an OTLP/HTTP collector when the
// standard OTEL_* variables name one (OTEL_EXPORTER_OTLP_ENDPOINT, or
// OTEL_TRACES_EXPORTER=otlp); without them tracing is off.
//
// The flags and the run loop live in package command.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/avila-analytics/avila/cmd/avila-aggregator/command"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	err := command.Run(ctx, os.Args[1:], os.LookupEnv, os.Stdout, os.Stderr)
	stop()
	if errors.Is(err, flag.ErrHelp) {
		os.Exit(0) // -h: the usage was asked for and printed
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "avila-aggregator:", err)
		os.Exit(1)
	}
}
