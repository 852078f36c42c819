// Command avila-aggregator receives batches from avila-agent over QUIC,
// stores them in PostgreSQL exactly once and serves the query API.
//
// Every flag has an AVILA_<FLAG> environment fallback (--data-dir ↔
// AVILA_DATA_DIR); --database-url also falls back to DATABASE_URL. When ready
// it prints one JSON line on stdout: {"quic":…,"api":…,"ca":…}.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/avila-analytics/avila/aggregator/node"
	"github.com/avila-analytics/avila/internal/cli"
)

// shutdownTimeout bounds how long API requests in progress may take to finish
// at shutdown; in-flight batches always finish (they commit or roll back).
const shutdownTimeout = 30 * time.Second

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "avila-aggregator:", err)
		os.Exit(1)
	}
}

func run() error {
	fs := flag.NewFlagSet("avila-aggregator", flag.ExitOnError)
	env := cli.Env(os.LookupEnv).String
	var cfg node.Config
	var logFormat, logLevel string
	fs.StringVar(&cfg.DatabaseURL, "database-url", env("DATABASE_URL", os.Getenv("DATABASE_URL")),
		"PostgreSQL URL, e.g. postgres://user@host:5432/avila (env AVILA_DATABASE_URL, then DATABASE_URL); required")
	fs.StringVar(&cfg.ListenQUIC, "listen-quic", env("LISTEN_QUIC", "127.0.0.1:4433"),
		"UDP address for agents' QUIC connections (env AVILA_LISTEN_QUIC); port 0 picks a free one")
	fs.StringVar(&cfg.ListenAPI, "listen-api", env("LISTEN_API", "127.0.0.1:8080"),
		"TCP address of the HTTP API: /healthz, /readyz and the GA4 Data API under /v1beta/ (env AVILA_LISTEN_API)")
	fs.StringVar(&cfg.DataDir, "data-dir", env("DATA_DIR", "./data/aggregator"),
		"directory for local state; without --tls-cert a development CA and certificate are made in <data-dir>/tls (env AVILA_DATA_DIR)")
	fs.StringVar(&cfg.TLSCert, "tls-cert", env("TLS_CERT", ""), "PEM certificate for QUIC; with --tls-key, replaces the development CA (env AVILA_TLS_CERT)")
	fs.StringVar(&cfg.TLSKey, "tls-key", env("TLS_KEY", ""), "PEM private key of --tls-cert (env AVILA_TLS_KEY)")
	fs.StringVar(&logFormat, "log-format", env("LOG_FORMAT", "text"), "log format on stderr: text or json (env AVILA_LOG_FORMAT)")
	fs.StringVar(&logLevel, "log-level", env("LOG_LEVEL", "info"), "log level: debug, info, warn or error (env AVILA_LOG_LEVEL)")
	_ = fs.Parse(os.Args[1:]) // ExitOnError: Parse exits on a bad flag
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	log, err := cli.NewLogger(os.Stderr, logFormat, logLevel)
	if err != nil {
		return err
	}

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	n, err := node.Start(ctx, cfg, log)
	if err != nil {
		return err
	}
	ready, _ := json.Marshal(struct {
		QUIC string `json:"quic"`
		API  string `json:"api"`
		CA   string `json:"ca"`
	}{n.QUICAddr, n.APIURL, n.CAFile})
	fmt.Println(string(ready))

	var serveErr error
	select {
	case <-ctx.Done():
	case serveErr = <-n.Err():
		log.Error("serving failed", "err", serveErr)
	}
	sctx, cancel := context.WithTimeout(context.Background(), shutdownTimeout)
	defer cancel()
	if err := n.Shutdown(sctx); err != nil {
		log.Warn("unclean shutdown", "err", err)
	}
	return serveErr
}
