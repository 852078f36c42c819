// Command avila-agent runs beside a web server: it accepts GA4 hits over
// HTTP, stores them durably on local disk and ships them to avila-aggregator
// over QUIC.
//
// Every flag has an AVILA_<FLAG> environment fallback (--data-dir ↔
// AVILA_DATA_DIR). When ready it prints one JSON line on stdout:
// {"agent":"http://host:port","agent_id":"…"}. Logs go to stderr. SIGINT or
// SIGTERM shut it down cleanly; unshipped events stay in --data-dir.
//
// Prometheus metrics are on --listen at /metrics; --log-level debug logs one
// record per request with its id (the X-Request-Id answer header), never a
// client address, user agent or page URL. The agent is not traced with
// OpenTelemetry: that would add megabytes to a binary meant to be small.
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

	"github.com/avila-analytics/avila/cmd/avila-agent/command"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	err := command.Run(ctx, os.Args[1:], os.LookupEnv, os.Stdout, os.Stderr)
	stop()
	if errors.Is(err, flag.ErrHelp) {
		os.Exit(0) // -h: the usage was asked for and printed
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "avila-agent:", err)
		os.Exit(1)
	}
}
