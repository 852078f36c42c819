// Package command is avila-aggregator's command line: its flags, their
// environment fallbacks, and the run loop the binary's main calls. Tests and
// documentation generators build the flag set with Flags without running a
// node.
package command

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"os"
	"runtime/debug"
	"time"

	"github.com/avila-analytics/avila/aggregator/cluster"
	"github.com/avila-analytics/avila/aggregator/node"
	"github.com/avila-analytics/avila/aggregator/write"
	"github.com/avila-analytics/avila/internal/cli"
	"github.com/avila-analytics/avila/internal/telemetry"
	"github.com/avila-analytics/avila/storage/postgres"
	"github.com/avila-analytics/avila/storage/redis"
)

// shutdownTimeout bounds how long API requests in progress may take to finish
// at shutdown; in-flight batches always finish (they commit or roll back).
const shutdownTimeout = 30 * time.Second

// DefaultMemoryLimit is --memory-limit's default: the soft limit on the
// Go runtime's memory. The live heap of a busy aggregator is what one
// derivation holds (at most write's event bound) plus the batches being
// staged and the reports being answered; with the runtime's default GOGC
// the heap grows to twice that between collections, and under sustained
// load those peaks made most of the RSS. The limit makes the collector run
// earlier when a peak would pass it, so RSS stays near the limit plus the
// binary's mapped pages, while a live heap well under it is collected as
// before.
const DefaultMemoryLimit = 192 << 20 // bytes

// Options is what the command line and environment say.
type Options struct {
	Node      node.Config
	LogFormat string
	LogLevel  string
	// MemoryLimit is the soft limit on the Go runtime's memory in bytes
	// (debug.SetMemoryLimit); 0 leaves the runtime's own (GOMEMLIMIT).
	MemoryLimit int64
}

// Flags declares every flag of avila-aggregator and returns the function
// that, once the set is parsed, turns them into Options (or an error naming
// the flag). The set's own defaults are the documented ones: environment
// variables apply at Parse.
func Flags() (*cli.FlagSet, func() (Options, error)) {
	var o Options
	cfg := &o.Node
	fs := cli.NewFlagSet("avila-aggregator")
	fs.StringVar(&cfg.DatabaseURL, "database-url", "",
		"PostgreSQL URL, e.g. postgres://user@host:5432/avila; migrations are applied at start; required")
	fs.SetEnv("database-url", "AVILA_DATABASE_URL", "DATABASE_URL")
	var readURLs string
	fs.StringVar(&readURLs, "database-read-url", "",
		"comma-separated PostgreSQL URLs of streaming replicas of --database-url that reports read from once they hold a site's latest data; "+
			"a replica further behind than --database-read-max-lag serves none")
	fs.DurationVar(&cfg.DatabaseReadMaxLag, "database-read-max-lag", postgres.DefaultReplicaMaxLag,
		"how far behind the primary a read replica may be (age of its last replayed commit) and still serve a report, uncached; "+
			"further behind, reports read the primary")
	fs.StringVar(&cfg.RedisURL, "redis-url", "",
		"Redis for realtime counters, the query cache and quota counts, shared by the cluster: redis://[user:password@]host:port/db "+
			"(rediss:// for TLS); Sentinel: the sentinels with master_name, redis://s1:26379/0?master_name=NAME&addr=s2:26379 "+
			"(the master's password as password=); Redis Cluster: several nodes, redis://n1:6379?addr=n2:6379&addr=n3:6379, "+
			"or one with cluster=true. Other go-redis URL options (pool_size, client_name, …) apply. "+
			"Empty keeps them in this node's memory")
	fs.SetEnv("redis-url", "AVILA_REDIS_URL", "REDIS_URL")
	fs.StringVar(&cfg.RedisPrefix, "redis-prefix", "",
		"prefix of every Redis key this node writes, for deployments that share a Redis server")
	fs.StringVar(&cfg.ListenQUIC, "listen-quic", "127.0.0.1:4433",
		"UDP address for agents' QUIC connections; port 0 picks a free one")
	fs.StringVar(&cfg.ListenAPI, "listen-api", "127.0.0.1:8080",
		"TCP address of the HTTP API: the GA4 Data API under /v1beta/ and /v1alpha/, the realtime WebSocket, the dashboard, /healthz and /readyz "+
			"(its reason without detail); port 0 picks a free one. /metrics and /v1/cluster/status are on --listen-operator")
	fs.StringVar(&cfg.ListenOperator, "listen-operator", "127.0.0.1:8081",
		"TCP address for operators only: /metrics (Prometheus), /v1/cluster/status ('avila cluster status'), /healthz and /readyz "+
			"with the full reason; keep it on a private network. Port 0 picks a free one; empty serves none of them")
	fs.DurationVar(&cfg.APIReadTimeout, "api-read-timeout", node.DefaultAPIReadTimeout,
		"time a client has to send a whole request, head and body, to --listen-api; a slower client is cut (408 or closed)")
	fs.DurationVar(&cfg.APIWriteTimeout, "api-write-timeout", node.DefaultAPIWriteTimeout,
		"time from a request's head to the end of its answer on --listen-api (WebSockets excepted); must exceed --report-timeout")
	fs.DurationVar(&cfg.APIIdleTimeout, "api-idle-timeout", node.DefaultAPIIdleTimeout,
		"how long an idle keep-alive connection to --listen-api stays open")
	fs.DurationVar(&cfg.ReportTimeout, "report-timeout", node.DefaultReportTimeout,
		"bound on one report (or funnel): past it the report answers 504 DEADLINE_EXCEEDED, and PostgreSQL's statement_timeout "+
			"on the report connections cancels its statement even if the cancel request is lost")
	fs.IntVar(&cfg.ReportConns, "report-conns", node.DefaultReportConns,
		"PostgreSQL connections for reports, apart from the write stage's (the pool of --database-url): reports never take a "+
			"connection a batch needs. Each read replica gets a pool of this size too")
	fs.IntVar(&cfg.PropertyConns, "report-conns-per-property", node.DefaultPropertyConns,
		"how many report connections one property's statements hold at once; its other admitted requests queue "+
			"(at most its concurrentRequests quota, 10 by default; one more is answered 429 RESOURCE_EXHAUSTED), "+
			"so one property's long reports leave the rest of --report-conns to the others")
	fs.StringVar(&cfg.APITLSCert, "api-tls-cert", "",
		"PEM certificate for --listen-api: with --api-tls-key the API serves HTTPS, and HTTP/2 by ALPN for gRPC clients of the Data API; "+
			"empty: clear text, HTTP/1.1 and h2c")
	fs.StringVar(&cfg.APITLSKey, "api-tls-key", "", "PEM private key of --api-tls-cert (not readable by group or others)")
	fs.StringVar(&cfg.DataDir, "data-dir", "./data/aggregator",
		"directory for local state; without --tls-cert a development CA and certificate are made in <data-dir>/tls")
	fs.StringVar(&cfg.TLSCert, "tls-cert", "", "PEM certificate for QUIC; with --tls-key, replaces the development CA")
	fs.StringVar(&cfg.TLSKey, "tls-key", "", "PEM private key of --tls-cert")
	fs.StringVar(&cfg.TLSClientCA, "tls-client-ca", "",
		"CA certificate (PEM) agents' certificates must be signed by: agents without a valid one are refused and logged, "+
			"and an agent's identity is its certificate's name. Make it with 'avila certs init', agents' certificates with "+
			"'avila certs issue --agent NAME'; empty: agents are not asked for a certificate")
	fs.StringVar(&cfg.NodeName, "node-name", "", "this node's name in the cluster, unique per node; empty: this machine's host name")
	fs.StringVar(&cfg.GossipListen, "gossip-listen", "",
		"host:port (TCP and UDP) for cluster gossip; empty runs the node alone. See --join and --gossip-key")
	var join, gossipKey string
	fs.StringVar(&join, "join", "",
		"comma-separated gossip addresses (host:port) of other nodes; one list may serve every node, its own address included")
	fs.StringVar(&gossipKey, "gossip-key", "",
		"base64 key (16, 24 or 32 bytes) encrypting gossip, the same on every node, e.g. from 'openssl rand -base64 32'; "+
			"empty gossips in clear text")
	fs.DurationVar(&cfg.GossipProbeInterval, "gossip-probe-interval", cluster.DefaultProbeInterval,
		"how often each node probes its peers: a peer that does not answer within half of it is listed as suspect, "+
			"and is declared dead after about --gossip-suspicion-mult intervals. Shorter finds a killed node sooner "+
			"for more gossip traffic")
	fs.IntVar(&cfg.GossipSuspicionMult, "gossip-suspicion-mult", cluster.DefaultSuspicionMult,
		"probe intervals a suspect node has to answer before it is declared dead (more in large clusters); "+
			"see --gossip-probe-interval")
	fs.IntVar(&cfg.DeriveMaxEvents, "derive-max-events", write.DefaultMaxEvents,
		"staged events one chunk of a derivation (the transaction writing events, sessions and rollups) takes at most when a backlog waits "+
			"(fewer when the site's sessions are mostly new, as a chunk adds session_start and first_visit events); "+
			"a derivation takes up to 4 chunks within 2 s and writes their rollup rows once: "+
			"larger writes fewer rollup rows per event and catches up sooner, and holds more memory at once "+
			"(about 1 KB per event of a chunk at its peak); lower it with --memory-limit on small machines")
	fs.DurationVar(&cfg.DeriveInterval, "derive-interval", write.DefaultInterval,
		"least time between the starts of two derivation passes while staged events keep coming (none while a backlog waits): "+
			"a derivation rewrites each rollup cell, session and user it touches once however many events it takes, "+
			"so longer means less CPU per event here and in PostgreSQL; reports lag ingest by up to about this plus two derivations "+
			"(realtime does not)")
	fs.IntVar(&cfg.RealtimeMaxCells, "realtime-max-cells", redis.DefaultMaxCells,
		"realtime cells (event name, country, city, device and screen of one user) a site's minute holds at most in this node's memory; "+
			"events of further cells are not counted there (Redis, when set, still counts them). The last 30 minutes are held, "+
			"about 165 bytes a cell: a site whose every minute fills holds about 30 × this × 165 bytes (about 500 MB at the default); "+
			"lower it for busy sites on small machines")
	fs.StringVar(&o.LogFormat, "log-format", "text", "log format on stderr: text or json")
	fs.StringVar(&o.LogLevel, "log-level", "info", "log level: debug, info, warn or error")
	fs.Int64Var(&o.MemoryLimit, "memory-limit", DefaultMemoryLimit,
		"soft limit in bytes on the Go heap and runtime memory (as GOMEMLIMIT): the collector runs more often near it, "+
			"which bounds RSS under sustained load; a live heap above it is still served, collected more often. "+
			"0 leaves the Go runtime's own setting")
	return fs, func() (Options, error) {
		if o.MemoryLimit < 0 {
			return o, fmt.Errorf("--memory-limit %d: want bytes > 0, or 0 (leave the runtime's)", o.MemoryLimit)
		}
		cfg.Join = cli.List(join)
		cfg.DatabaseReadURLs = cli.List(readURLs)
		if cfg.DeriveMaxEvents <= 0 {
			return o, fmt.Errorf("--derive-max-events %d: want events > 0", cfg.DeriveMaxEvents)
		}
		if cfg.DeriveInterval <= 0 {
			return o, fmt.Errorf("--derive-interval %s: want a duration > 0", cfg.DeriveInterval)
		}
		if cfg.RealtimeMaxCells <= 0 {
			return o, fmt.Errorf("--realtime-max-cells %d: want cells > 0", cfg.RealtimeMaxCells)
		}
		if cfg.GossipProbeInterval <= 0 || cfg.GossipSuspicionMult <= 0 {
			return o, errors.New("--gossip-probe-interval and --gossip-suspicion-mult must be > 0")
		}
		if cfg.DatabaseReadMaxLag <= 0 {
			return o, errors.New("--database-read-max-lag must be > 0")
		}
		if cfg.APIReadTimeout <= 0 || cfg.APIWriteTimeout <= 0 || cfg.APIIdleTimeout <= 0 || cfg.ReportTimeout <= 0 {
			return o, errors.New("--api-read-timeout, --api-write-timeout, --api-idle-timeout and --report-timeout must be > 0")
		}
		if cfg.APIWriteTimeout <= cfg.ReportTimeout {
			return o, fmt.Errorf("--api-write-timeout (%s) must exceed --report-timeout (%s), or long reports are cut before they answer",
				cfg.APIWriteTimeout, cfg.ReportTimeout)
		}
		if cfg.ReportConns <= 0 || cfg.PropertyConns <= 0 {
			return o, errors.New("--report-conns and --report-conns-per-property must be > 0")
		}
		if cfg.PropertyConns > cfg.ReportConns {
			return o, fmt.Errorf("--report-conns-per-property (%d) must be at most --report-conns (%d)", cfg.PropertyConns, cfg.ReportConns)
		}
		cfg.GossipKey = nil
		if gossipKey != "" {
			key, err := base64.StdEncoding.DecodeString(gossipKey)
			if err != nil {
				return o, fmt.Errorf("--gossip-key: not base64: %w", err)
			}
			cfg.GossipKey = key
		}
		if cfg.RedisURL != "" {
			if err := redis.Check(cfg.RedisURL); err != nil {
				return o, fmt.Errorf("--redis-url: %w", err)
			}
		}
		if cfg.GossipListen == "" && (len(cfg.Join) > 0 || gossipKey != "") {
			return o, errors.New("--join and --gossip-key need --gossip-listen")
		}
		return o, nil
	}
}

// Parse reads the command line args, then the environment env for the
// flags args leave out.
func Parse(args []string, env cli.Env, stderr io.Writer) (Options, error) {
	fs, options := Flags()
	fs.SetOutput(stderr)
	if err := fs.Parse(args, env); err != nil {
		return Options{}, err
	}
	if fs.NArg() > 0 {
		return Options{}, fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	o, err := options()
	if err != nil {
		return o, err
	}
	if o.Node.NodeName == "" {
		if o.Node.NodeName, err = os.Hostname(); err != nil {
			return o, fmt.Errorf("--node-name is empty and the host name is unknown: %w", err)
		}
	}
	return o, nil
}

// Run starts a node with the configuration args and env give, prints the
// ready line on stdout and serves until ctx ends (the node then drains) or
// serving fails. Logs go to stderr; traces follow the standard OTEL_*
// variables in env.
func Run(ctx context.Context, args []string, env cli.Env, stdout, stderr io.Writer) error {
	o, err := Parse(args, env, stderr)
	if err != nil {
		return err
	}
	log, err := cli.NewLogger(stderr, o.LogFormat, o.LogLevel)
	if err != nil {
		return err
	}
	defer applyMemoryLimit(o)()
	cfg := o.Node
	cfg.Version = version()
	// Tracing follows the standard OTEL_* variables; off when they are unset.
	tp, err := telemetry.TracerProvider(ctx, "avila-aggregator", func(k string) string { v, _ := env(k); return v })
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
	return cli.Serve(ctx, n, struct {
		QUIC     string `json:"quic"`
		API      string `json:"api"`
		Operator string `json:"operator,omitempty"`
		CA       string `json:"ca"`
		Node     string `json:"node"`
		Gossip   string `json:"gossip,omitempty"`
	}{n.QUICAddr, n.APIURL, n.OperatorURL, n.CAFile, cfg.NodeName, n.GossipAddr()}, stdout, shutdownTimeout, log)
}

// applyMemoryLimit sets the process's soft memory limit from o, unless
// o leaves it to the runtime, and returns the function that restores the
// previous one.
func applyMemoryLimit(o Options) (restore func()) {
	if o.MemoryLimit <= 0 {
		return func() {}
	}
	old := debug.SetMemoryLimit(o.MemoryLimit)
	return func() { debug.SetMemoryLimit(old) }
}

// version is the module version the binary was built from, "(devel)" for a
// build from a work tree.
func version() string {
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" {
		return bi.Main.Version
	}
	return "(devel)"
}
