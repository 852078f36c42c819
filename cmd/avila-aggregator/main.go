// Command avila-aggregator receives batches from avila-agent over QUIC,
// stores them in PostgreSQL exactly once and serves the query API.
//
// Every flag has an AVILA_<FLAG> environment fallback (--data-dir ↔
// AVILA_DATA_DIR); --database-url also falls back to DATABASE_URL. When ready
// it prints one JSON line on stdout: {"quic":…,"api":…,"ca":…,"node":…,"gossip":…}
// ("gossip" only with --gossip-listen). SIGTERM drains the node: it takes no
// new batches, finishes those in flight, leaves the cluster and exits.
//
// Prometheus metrics are on the API address at /metrics. Traces (API
// requests, batches, database queries) go to an OTLP/HTTP collector when the
// standard OTEL_* variables name one (OTEL_EXPORTER_OTLP_ENDPOINT, or
// OTEL_TRACES_EXPORTER=otlp); without them tracing is off.
package main

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"runtime/debug"
	"strings"
	"syscall"
	"time"

	"github.com/avila-analytics/avila/aggregator/cluster"
	"github.com/avila-analytics/avila/aggregator/node"
	"github.com/avila-analytics/avila/internal/cli"
	"github.com/avila-analytics/avila/internal/telemetry"
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
	envs := cli.Env(os.LookupEnv)
	env := envs.String
	probeInterval, err := envs.Duration("GOSSIP_PROBE_INTERVAL", cluster.DefaultProbeInterval)
	if err != nil {
		return err
	}
	suspicionMult, err := envs.Int64("GOSSIP_SUSPICION_MULT", cluster.DefaultSuspicionMult)
	if err != nil {
		return err
	}
	var cfg node.Config
	var logFormat, logLevel string
	fs.StringVar(&cfg.DatabaseURL, "database-url", env("DATABASE_URL", os.Getenv("DATABASE_URL")),
		"PostgreSQL URL, e.g. postgres://user@host:5432/avila (env AVILA_DATABASE_URL, then DATABASE_URL); required")
	fs.StringVar(&cfg.RedisURL, "redis-url", env("REDIS_URL", os.Getenv("REDIS_URL")),
		"Redis URL for realtime counters, the query cache and session state, e.g. redis://127.0.0.1:6379/0 (env AVILA_REDIS_URL, then REDIS_URL); "+
			"empty keeps them in this node's memory")
	fs.StringVar(&cfg.RedisPrefix, "redis-prefix", env("REDIS_PREFIX", ""),
		"prefix of every Redis key this node writes, for deployments that share a Redis server (env AVILA_REDIS_PREFIX)")
	fs.StringVar(&cfg.ListenQUIC, "listen-quic", env("LISTEN_QUIC", "127.0.0.1:4433"),
		"UDP address for agents' QUIC connections (env AVILA_LISTEN_QUIC); port 0 picks a free one")
	fs.StringVar(&cfg.ListenAPI, "listen-api", env("LISTEN_API", "127.0.0.1:8080"),
		"TCP address of the HTTP API: /healthz, /readyz and the GA4 Data API under /v1beta/ (env AVILA_LISTEN_API)")
	fs.StringVar(&cfg.DataDir, "data-dir", env("DATA_DIR", "./data/aggregator"),
		"directory for local state; without --tls-cert a development CA and certificate are made in <data-dir>/tls (env AVILA_DATA_DIR)")
	fs.StringVar(&cfg.TLSCert, "tls-cert", env("TLS_CERT", ""), "PEM certificate for QUIC; with --tls-key, replaces the development CA (env AVILA_TLS_CERT)")
	fs.StringVar(&cfg.TLSKey, "tls-key", env("TLS_KEY", ""), "PEM private key of --tls-cert (env AVILA_TLS_KEY)")
	fs.StringVar(&cfg.TLSClientCA, "tls-client-ca", env("TLS_CLIENT_CA", ""),
		"CA certificate (PEM) agents' certificates must be signed by: agents without a valid one are refused and logged, "+
			"and an agent's identity is its certificate's name. Make it with `avila certs init`, agents' certificates with "+
			"`avila certs issue --agent NAME` (env AVILA_TLS_CLIENT_CA)")
	host, _ := os.Hostname()
	fs.StringVar(&cfg.NodeName, "node-name", env("NODE_NAME", host), "this node's name in the cluster, unique per node (env AVILA_NODE_NAME)")
	fs.StringVar(&cfg.GossipListen, "gossip-listen", env("GOSSIP_LISTEN", ""),
		"host:port (TCP and UDP) for cluster gossip; empty runs the node alone. See --join and --gossip-key (env AVILA_GOSSIP_LISTEN)")
	var join, gossipKey string
	fs.StringVar(&join, "join", env("JOIN", ""),
		"comma-separated gossip addresses (host:port) of other nodes; one list may serve every node, its own address included (env AVILA_JOIN)")
	fs.StringVar(&gossipKey, "gossip-key", env("GOSSIP_KEY", ""),
		"base64 key (16, 24 or 32 bytes) encrypting gossip, the same on every node, e.g. from `openssl rand -base64 32`; "+
			"empty gossips in clear text (env AVILA_GOSSIP_KEY)")
	fs.DurationVar(&cfg.GossipProbeInterval, "gossip-probe-interval", probeInterval,
		"how often each node probes its peers: a peer that does not answer within half of it is listed as suspect, "+
			"and is declared dead after about --gossip-suspicion-mult intervals. Shorter finds a killed node sooner "+
			"for more gossip traffic (env AVILA_GOSSIP_PROBE_INTERVAL)")
	fs.IntVar(&cfg.GossipSuspicionMult, "gossip-suspicion-mult", int(suspicionMult),
		"probe intervals a suspect node has to answer before it is declared dead (more in large clusters); "+
			"see --gossip-probe-interval (env AVILA_GOSSIP_SUSPICION_MULT)")
	fs.StringVar(&logFormat, "log-format", env("LOG_FORMAT", "text"), "log format on stderr: text or json (env AVILA_LOG_FORMAT)")
	fs.StringVar(&logLevel, "log-level", env("LOG_LEVEL", "info"), "log level: debug, info, warn or error (env AVILA_LOG_LEVEL)")
	_ = fs.Parse(os.Args[1:]) // ExitOnError: Parse exits on a bad flag
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	if cfg.GossipProbeInterval <= 0 || cfg.GossipSuspicionMult <= 0 {
		return errors.New("--gossip-probe-interval and --gossip-suspicion-mult must be > 0")
	}
	log, err := cli.NewLogger(os.Stderr, logFormat, logLevel)
	if err != nil {
		return err
	}
	for _, j := range strings.Split(join, ",") {
		if j = strings.TrimSpace(j); j != "" {
			cfg.Join = append(cfg.Join, j)
		}
	}
	if gossipKey != "" {
		if cfg.GossipKey, err = base64.StdEncoding.DecodeString(gossipKey); err != nil {
			return fmt.Errorf("--gossip-key: not base64: %w", err)
		}
	}
	if cfg.GossipListen == "" && (len(cfg.Join) > 0 || gossipKey != "") {
		return errors.New("--join and --gossip-key need --gossip-listen")
	}
	cfg.Version = version()

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	// Tracing follows the standard OTEL_* variables; off when they are unset.
	tp, err := telemetry.TracerProvider(ctx, "avila-aggregator", os.Getenv)
	if err != nil {
		return err
	}
	if tp != nil {
		cfg.TracerProvider = tp
		defer func() {
			sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			if err := tp.Shutdown(sctx); err != nil {
				log.Warn("flushing traces", "err", err)
			}
		}()
	}
	n, err := node.Start(ctx, cfg, log)
	if err != nil {
		return err
	}
	ready, _ := json.Marshal(struct {
		QUIC   string `json:"quic"`
		API    string `json:"api"`
		CA     string `json:"ca"`
		Node   string `json:"node"`
		Gossip string `json:"gossip,omitempty"`
	}{n.QUICAddr, n.APIURL, n.CAFile, cfg.NodeName, n.GossipAddr()})
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

// version is the module version the binary was built from, "(devel)" for a
// build from a work tree.
func version() string {
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" {
		return bi.Main.Version
	}
	return "(devel)"
}
