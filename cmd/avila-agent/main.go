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
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/avila-analytics/avila/agent"
	"github.com/avila-analytics/avila/agent/collect"
	"github.com/avila-analytics/avila/agent/ship"
	"github.com/avila-analytics/avila/internal/cli"
)

// shutdownTimeout bounds how long requests in progress may take to finish
// at shutdown.
const shutdownTimeout = 30 * time.Second

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.LookupEnv, os.Stdout, os.Stderr)
	stop()
	if errors.Is(err, flag.ErrHelp) {
		os.Exit(2)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "avila-agent:", err)
		os.Exit(1)
	}
}

// options is what the command line and environment say.
type options struct {
	agent     agent.Config
	logFormat string
	logLevel  string
}

func parseFlags(args []string, env cli.Env, stderr io.Writer) (options, error) {
	var o options
	fs := flag.NewFlagSet("avila-agent", flag.ContinueOnError)
	fs.SetOutput(stderr)
	maxBytes, err := env.Int64("QUEUE_MAX_BYTES", 0)
	if err != nil {
		return o, err
	}
	memLimit, err := env.Int64("MEMORY_LIMIT", agent.DefaultMemoryLimit)
	if err != nil {
		return o, err
	}
	gogc, err := env.Int64("GOGC", agent.DefaultGCPercent)
	if err != nil {
		return o, err
	}
	minProcs, err := env.Int64("MIN_PROCS", agent.DefaultMinProcs)
	if err != nil {
		return o, err
	}
	mpStrict, err := env.Bool("MP_STRICT", false)
	if err != nil {
		return o, err
	}
	peerTimeout, err := env.Duration("PEER_TIMEOUT", ship.DefaultPeerTimeout)
	if err != nil {
		return o, err
	}
	var aggregators string
	fs.StringVar(&o.agent.Listen, "listen", env.String("LISTEN", "127.0.0.1:8090"),
		"TCP address for hits: /g/collect, /mp/collect, /debug/mp/collect, /api/event, /t.js, /healthz and /readyz; port 0 picks a free one (env AVILA_LISTEN)")
	fs.StringVar(&o.agent.DataDir, "data-dir", env.String("DATA_DIR", "./data/agent"),
		"directory of the durable event queue (queue.db) and the cached site config; it must survive restarts, "+
			"or acknowledged events not yet shipped are lost (env AVILA_DATA_DIR)")
	fs.StringVar(&aggregators, "aggregator", env.String("AGGREGATOR", "127.0.0.1:4433"),
		"comma-separated QUIC addresses (host:port) of avila-aggregator nodes to start from; the agent learns the "+
			"live cluster members from them, picks one by hash of its id and fails over to the next on errors, "+
			"silence or drain (env AVILA_AGGREGATOR)")
	fs.DurationVar(&o.agent.PeerTimeout, "peer-timeout", peerTimeout,
		"how long an aggregator may stay silent (keep-alives go out every third of it) before the agent counts it dead "+
			"and ships to the next node; a dial unanswered for as long fails too. Bounds the delivery stall when a node "+
			"is killed; raise it for aggregators across a lossy WAN (env AVILA_PEER_TIMEOUT)")
	fs.StringVar(&o.agent.CAFile, "ca", env.String("CA", ""),
		"PEM file of the CA that signed the aggregators' certificates; a development aggregator prints its path "+
			"as \"ca\" when ready (env AVILA_CA); required")
	fs.StringVar(&o.agent.CertFile, "cert", env.String("CERT", ""),
		"PEM certificate of this agent, for aggregators started with --tls-client-ca; its name is the agent's identity. "+
			"Issue it with `avila certs issue --agent NAME`; goes with --key (env AVILA_CERT)")
	fs.StringVar(&o.agent.KeyFile, "key", env.String("KEY", ""),
		"PEM private key of --cert; must not be readable by group or others (env AVILA_KEY)")
	fs.Int64Var(&o.agent.QueueMaxBytes, "queue-max-bytes", maxBytes,
		"disk budget of the queue in bytes; when it is used up (aggregators unreachable for long) hits get 503; "+
			"0 means 1 GiB (env AVILA_QUEUE_MAX_BYTES)")
	fs.StringVar(&o.agent.QueueKeyFile, "queue-key-file", env.String("QUEUE_KEY_FILE", ""),
		"file holding the AES-256 key the queue is encrypted with; created (0600) on first start when missing. "+
			"Keep it with --data-dir: the queue cannot be read without it, and a different key stops the agent at start "+
			"(empty: queue.key in --data-dir) (env AVILA_QUEUE_KEY_FILE)")
	fs.StringVar(&o.agent.GeoIPDB, "geoip-db", env.String("GEOIP_DB", ""),
		"MaxMind-format .mmdb database (GeoIP2/GeoLite2 City or Country, or compatible) for country, region and city "+
			"of each hit, looked up from the full client IP in memory; empty: countries only, from a table built into "+
			"the agent (env AVILA_GEOIP_DB)")
	fs.IntVar(&o.agent.GCPercent, "gogc", int(gogc),
		"Go garbage collector target percent (as GOGC) for this process: higher spends less CPU on collection per hit "+
			"and lets the heap grow further between collections, up to --memory-limit; -1 collects only at --memory-limit; "+
			"0 leaves the Go runtime's own setting (env AVILA_GOGC)")
	fs.Int64Var(&o.agent.MemoryLimit, "memory-limit", memLimit,
		"soft limit in bytes on the Go heap and runtime memory (as GOMEMLIMIT): the collector runs more often near it, "+
			"whatever --gogc says, which bounds RSS; the queue's memory-mapped file comes on top. 0 leaves the Go "+
			"runtime's own setting (env AVILA_MEMORY_LIMIT)")
	fs.IntVar(&o.agent.MinProcs, "min-procs", int(minProcs),
		"fix the Go runtime's GOMAXPROCS at no less than this, even on one CPU: the queue's fsync holds a processor, and "+
			"with only one the agent reads no request meanwhile; worth it where fsyncs take milliseconds (a busy or slow disk), "+
			"as with a few hundred microseconds a second processor on one CPU costs more in thread switches than it saves. "+
			"GOMAXPROCS is then fixed at start and no longer follows CPU limit changes. 0 (the default) leaves the Go "+
			"runtime's own setting, which follows them (env AVILA_MIN_PROCS)")
	fs.StringVar(&o.logFormat, "log-format", env.String("LOG_FORMAT", "text"), "log format on stderr: text or json (env AVILA_LOG_FORMAT)")
	fs.StringVar(&o.logLevel, "log-level", env.String("LOG_LEVEL", "info"), "log level: debug, info, warn or error (env AVILA_LOG_LEVEL)")
	var trusted, rateIP, rateSite, dnt string
	fs.StringVar(&trusted, "trusted-proxies", env.String("TRUSTED_PROXIES", ""),
		"comma-separated CIDR prefixes or addresses of reverse proxies (nginx, caddy, a load balancer) in front of the agent; "+
			"only from these peers are Forwarded / X-Forwarded-For read for the client address that rate limits, visitor "+
			"ids and geo use. Empty: every peer is the client itself, forwarded headers are ignored (env AVILA_TRUSTED_PROXIES)")
	fs.StringVar(&rateIP, "rate-ip", env.String("RATE_IP", "0"),
		"requests per second per client address, as N or N:BURST (e.g. 20:100); over it the agent answers 429 with "+
			"Retry-After. The client address honours --trusted-proxies. 0: no limit (env AVILA_RATE_IP)")
	fs.StringVar(&rateSite, "rate-site", env.String("RATE_SITE", "0"),
		"requests per second per site over all clients (a batched request counts once), as N or N:BURST; over it 429 with Retry-After. 0: no limit (env AVILA_RATE_SITE)")
	fs.StringVar(&dnt, "dnt", env.String("DNT", "drop"),
		"what browser hits with DNT: 1 or Sec-GPC: 1 become: drop (not recorded, answered 204 as GA4 does, counted in "+
			"metrics), cookieless (recorded without client and user id) or ignore (env AVILA_DNT)")
	fs.BoolVar(&o.agent.MPStrict, "mp-strict", mpStrict,
		"answer /mp/collect requests that break a Measurement Protocol rule with 400 (403 for the api_secret) listing every "+
			"rule, storing none of the request; off, the agent answers 204 as GA4 does, stores the valid events and counts "+
			"the rest in analytics_mp_rejected_total (env AVILA_MP_STRICT)")
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	if o.agent.TrustedProxies, err = collect.ParseTrustedProxies(trusted); err != nil {
		return o, fmt.Errorf("--trusted-proxies: %w", err)
	}
	if o.agent.RatePerIP, err = collect.ParseRate(rateIP); err != nil {
		return o, fmt.Errorf("--rate-ip: %w", err)
	}
	if o.agent.RatePerSite, err = collect.ParseRate(rateSite); err != nil {
		return o, fmt.Errorf("--rate-site: %w", err)
	}
	if o.agent.DoNotTrack, err = collect.ParseDNTPolicy(dnt); err != nil {
		return o, fmt.Errorf("--dnt: %w", err)
	}
	if fs.NArg() > 0 {
		return o, fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	if o.agent.PeerTimeout <= 0 {
		return o, errors.New("--peer-timeout must be > 0")
	}
	for _, a := range strings.Split(aggregators, ",") {
		if a = strings.TrimSpace(a); a != "" {
			o.agent.Aggregators = append(o.agent.Aggregators, a)
		}
	}
	return o, nil
}

// run starts the agent, prints the ready line and serves until ctx ends or
// serving fails, then shuts down.
func run(ctx context.Context, args []string, env cli.Env, stdout, stderr io.Writer) error {
	o, err := parseFlags(args, env, stderr)
	if err != nil {
		return err
	}
	log, err := cli.NewLogger(stderr, o.logFormat, o.logLevel)
	if err != nil {
		return err
	}
	a, err := agent.Start(ctx, o.agent, log)
	if err != nil {
		return err
	}
	ready, _ := json.Marshal(struct {
		Agent   string `json:"agent"`
		AgentID string `json:"agent_id"`
	}{a.URL, a.ID})
	if _, err := fmt.Fprintln(stdout, string(ready)); err != nil {
		log.Warn("printing the ready line failed", "err", err)
	}

	var serveErr error
	select {
	case <-ctx.Done():
	case serveErr = <-a.Err():
		log.Error("serving failed", "err", serveErr)
	}
	sctx, cancel := context.WithTimeout(context.Background(), shutdownTimeout)
	defer cancel()
	if err := a.Shutdown(sctx); err != nil {
		log.Warn("unclean shutdown", "err", err)
	}
	return serveErr
}
