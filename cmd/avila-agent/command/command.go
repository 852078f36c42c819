// Package command is avila-agent's command line: its flags, their
// environment fallbacks, and the run loop the binary's main calls. Tests and
// documentation generators build the flag set with Flags without running
// the agent.
package command

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/avila-analytics/avila/agent"
	"github.com/avila-analytics/avila/agent/collect"
	"github.com/avila-analytics/avila/agent/ship"
	"github.com/avila-analytics/avila/internal/cli"
)

// shutdownTimeout bounds how long requests in progress may take to finish
// at shutdown.
const shutdownTimeout = 30 * time.Second

// Options is what the command line and environment say.
type Options struct {
	Agent     agent.Config
	LogFormat string
	LogLevel  string
}

// Flags declares every flag of avila-agent and returns the function that,
// once the set is parsed, turns them into Options (or an error naming the
// flag). The set's own defaults are the documented ones: environment
// variables apply at Parse.
func Flags() (*cli.FlagSet, func() (Options, error)) {
	var o Options
	fs := cli.NewFlagSet("avila-agent")
	var aggregators string
	fs.StringVar(&o.Agent.Listen, "listen", "127.0.0.1:8090",
		"TCP address for hits: /g/collect, /mp/collect, /debug/mp/collect, /api/event, /t.js, /healthz, /readyz and /metrics; port 0 picks a free one")
	fs.StringVar(&o.Agent.DataDir, "data-dir", "./data/agent",
		"directory of the durable event queue (queue.db, and its write-ahead log queue.wal) and the cached site config; it must survive restarts, "+
			"or acknowledged events not yet shipped are lost")
	fs.StringVar(&aggregators, "aggregator", "127.0.0.1:4433",
		"comma-separated QUIC addresses (host:port) of avila-aggregator nodes to start from; the agent learns the "+
			"live cluster members from them, picks one by hash of its id and fails over to the next on errors, "+
			"silence or drain")
	fs.StringVar(&o.Agent.CAFile, "ca", "",
		"PEM file of the CA that signed the aggregators' certificates; a development aggregator prints its path "+
			"as \"ca\" when ready; required")
	fs.StringVar(&o.Agent.CertFile, "cert", "",
		"PEM certificate of this agent, for aggregators started with --tls-client-ca; its name is the agent's identity. "+
			"Issue it with 'avila certs issue --agent NAME'; goes with --key")
	fs.StringVar(&o.Agent.KeyFile, "key", "",
		"PEM private key of --cert; must not be readable by group or others")
	fs.Int64Var(&o.Agent.QueueMaxBytes, "queue-max-bytes", 0,
		"disk budget of the queue in bytes; when it is used up (aggregators unreachable for long) hits get 503; "+
			"0 means 1 GiB")
	fs.StringVar(&o.Agent.QueueKeyFile, "queue-key-file", "",
		"file holding the AES-256 key the queue is encrypted with; created (0600) on first start when missing. "+
			"Keep it with --data-dir: the queue cannot be read without it, and a different key stops the agent at start "+
			"(empty: queue.key in --data-dir)")
	fs.StringVar(&o.Agent.GeoIPDB, "geoip-db", "",
		"MaxMind-format .mmdb database (GeoIP2/GeoLite2 City or Country, or compatible) for country, region and city "+
			"of each hit, looked up from the full client IP in memory; empty: countries only, from a table built into "+
			"the agent")
	fs.IntVar(&o.Agent.GCPercent, "gogc", agent.DefaultGCPercent,
		"Go garbage collector target percent (as GOGC) for this process: higher spends less CPU on collection per hit "+
			"and lets the heap grow further between collections, up to --memory-limit; -1 collects only at --memory-limit; "+
			"0 leaves the Go runtime's own setting")
	fs.Int64Var(&o.Agent.MemoryLimit, "memory-limit", agent.DefaultMemoryLimit,
		"soft limit in bytes on the Go heap and runtime memory (as GOMEMLIMIT): the collector runs more often near it, "+
			"whatever --gogc says, which bounds RSS; the queue's memory-mapped file comes on top. 0 leaves the Go "+
			"runtime's own setting")
	fs.IntVar(&o.Agent.MinProcs, "min-procs", agent.DefaultMinProcs,
		"keep the Go runtime's GOMAXPROCS at no less than this while the process may run on fewer CPUs (its CPU "+
			"affinity; a cgroup CPU limit already gets at least 2 from the runtime): the queue's fsync holds a processor, "+
			"and with only one the agent reads no request meanwhile. Checked every second; once the process may use this "+
			"many CPUs again, GOMAXPROCS is the runtime's again, following CPU changes. 0 leaves it to the runtime")
	fs.DurationVar(&o.Agent.PeerTimeout, "peer-timeout", ship.DefaultPeerTimeout,
		"how long an aggregator may stay silent (keep-alives go out every third of it) before the agent counts it dead "+
			"(a connection unused for as long is closed, and its keep-alives stop) "+
			"and ships to the next node; a dial unanswered for as long fails too. Bounds the delivery stall when a node "+
			"is killed; raise it for aggregators across a lossy WAN")
	fs.IntVar(&o.Agent.MaxConns, "max-conns", 0,
		"cap on HTTP connections open at once; past it a new connection is answered 503 with Retry-After and closed, "+
			"and analytics_http_connections_refused_total counts it. 0 derives it from the open-file limit, which the agent "+
			"raises to its hard limit at start: the limit less an eighth (at least 128) kept for the agent's own files, "+
			"at most 16384 (an idle connection holds about 12 KiB of memory). See --max-conns-per-ip")
	fs.IntVar(&o.Agent.MaxConnsPerIP, "max-conns-per-ip", 0,
		"cap on HTTP connections open at once from one client address (an IPv6 client by its /64), so one client "+
			"cannot hold all of --max-conns; peers in --trusted-proxies count only against --max-conns. 0: a quarter "+
			"of --max-conns, at most 1024")
	fs.StringVar(&o.LogFormat, "log-format", "text", "log format on stderr: text or json")
	fs.StringVar(&o.LogLevel, "log-level", "info", "log level: debug, info, warn or error")
	var trusted, rateIP, rateSite, dnt string
	fs.StringVar(&trusted, "trusted-proxies", "",
		"comma-separated CIDR prefixes or addresses of reverse proxies (nginx, caddy, a load balancer) in front of the agent; "+
			"only from these peers are Forwarded / X-Forwarded-For read for the client address that rate limits, visitor "+
			"ids and geo use. Empty: every peer is the client itself, forwarded headers are ignored")
	fs.StringVar(&rateIP, "rate-ip", "0",
		"requests per second per client address, as N or N:BURST (e.g. 20:100); over it the agent answers 429 with "+
			"Retry-After. The client address honours --trusted-proxies. 0: no limit")
	fs.StringVar(&rateSite, "rate-site", "0",
		"requests per second per site over all clients (a batched request counts once), as N or N:BURST; over it 429 with Retry-After. 0: no limit")
	fs.StringVar(&dnt, "dnt", "drop",
		"what browser hits with DNT: 1 or Sec-GPC: 1 become: drop (not recorded, answered 204 as GA4 does, counted in "+
			"metrics), cookieless (recorded without client and user id) or ignore")
	fs.BoolVar(&o.Agent.MPStrict, "mp-strict", false,
		"answer /mp/collect requests that break a Measurement Protocol rule with 400 (403 for the api_secret) listing every "+
			"rule, storing none of the request; off, the agent answers 204 as GA4 does, stores the valid events and counts "+
			"the rest in analytics_mp_rejected_total")
	return fs, func() (Options, error) {
		var err error
		if o.Agent.TrustedProxies, err = collect.ParseTrustedProxies(trusted); err != nil {
			return o, fmt.Errorf("--trusted-proxies: %w", err)
		}
		if o.Agent.RatePerIP, err = collect.ParseRate(rateIP); err != nil {
			return o, fmt.Errorf("--rate-ip: %w", err)
		}
		if o.Agent.RatePerSite, err = collect.ParseRate(rateSite); err != nil {
			return o, fmt.Errorf("--rate-site: %w", err)
		}
		if o.Agent.DoNotTrack, err = collect.ParseDNTPolicy(dnt); err != nil {
			return o, fmt.Errorf("--dnt: %w", err)
		}
		o.Agent.Aggregators = cli.List(aggregators)
		if o.Agent.PeerTimeout <= 0 {
			return o, errors.New("--peer-timeout must be > 0")
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
	return options()
}

// Run starts the agent with the configuration args and env give, prints
// the ready line on stdout and serves until ctx ends or serving fails, then
// shuts down. Logs go to stderr.
func Run(ctx context.Context, args []string, env cli.Env, stdout, stderr io.Writer) error {
	o, err := Parse(args, env, stderr)
	if err != nil {
		return err
	}
	log, err := cli.NewLogger(stderr, o.LogFormat, o.LogLevel)
	if err != nil {
		return err
	}
	a, err := agent.Start(ctx, o.Agent, log)
	if err != nil {
		return err
	}
	return cli.Serve(ctx, a, struct {
		Agent   string `json:"agent"`
		AgentID string `json:"agent_id"`
	}{a.URL, a.ID}, stdout, shutdownTimeout, log)
}
