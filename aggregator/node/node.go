package node

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
	goredis "github.com/redis/go-redis/v9"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"

	"github.com/avila-analytics/avila/aggregator/cluster"
	"github.com/avila-analytics/avila/aggregator/governance"
	"github.com/avila-analytics/avila/aggregator/ingest"
	"github.com/avila-analytics/avila/aggregator/jobs"
	"github.com/avila-analytics/avila/aggregator/write"
	"github.com/avila-analytics/avila/internal/httplog"
	"github.com/avila-analytics/avila/internal/logthrottle"
	"github.com/avila-analytics/avila/protocol"
	"github.com/avila-analytics/avila/query"
	"github.com/avila-analytics/avila/storage/postgres"
	"github.com/avila-analytics/avila/storage/redis"
)

// Config is one aggregator's settings; see cmd/avila-aggregator for each
// field's flag.
type Config struct {
	DatabaseURL string
	// DatabaseReadURLs name streaming replicas of DatabaseURL that reports
	// read from when they hold what the site's data version covers (see
	// postgres.Replicas); none: reports read the primary.
	DatabaseReadURLs []string
	// DatabaseReadMaxLag bounds how far behind a replica may be and still
	// serve (uncached) reports; 0: postgres.DefaultReplicaMaxLag.
	DatabaseReadMaxLag time.Duration
	// RedisURL, when set, holds the realtime counters, query cache and
	// quota counts in Redis (shared by the cluster); empty keeps them in
	// this node's memory (a clustered node without Redis caches no query
	// results). A Redis that is down is tolerated (see storage/redis).
	RedisURL string
	// RedisPrefix starts every Redis key this node writes, so deployments
	// (or tests) can share one server; default none.
	RedisPrefix string

	ListenQUIC string // host:port, UDP
	ListenAPI  string // host:port, TCP
	// ListenOperator (host:port, TCP) serves /metrics, /v1/cluster/status
	// and /readyz with its reasons in full, for operators only; empty: not
	// served at all. The API address serves none of them.
	ListenOperator string
	// APIReadTimeout bounds reading a request, head and body;
	// APIWriteTimeout reading it and writing its answer (so it should
	// exceed ReportTimeout); APIIdleTimeout a keep-alive connection
	// between requests. Zero: DefaultAPIReadTimeout and so on.
	APIReadTimeout, APIWriteTimeout, APIIdleTimeout time.Duration
	// ReportTimeout bounds one report: the request's deadline and
	// PostgreSQL's statement_timeout on the report connections. 0:
	// DefaultReportTimeout.
	ReportTimeout time.Duration
	// ReportConns sizes the report pool, apart from the write stage's
	// connections (DatabaseURL's pool); PropertyConns bounds how many of
	// them one property's statements hold at once. 0: DefaultReportConns,
	// DefaultPropertyConns.
	ReportConns   int
	PropertyConns int
	DataDir       string // development TLS material goes to DataDir/tls
	// TLSCert and TLSKey are the QUIC server's certificate; when both are
	// empty a local CA and certificate are made (once) under DataDir.
	TLSCert, TLSKey string
	// TLSClientCA, when set, requires agents to present a certificate
	// signed by this CA (mTLS); its CommonName becomes the agent's identity.
	TLSClientCA string
	// APITLSCert and APITLSKey, when set, make the API listener HTTPS
	// (HTTP/1.1, and h2 by ALPN for browsers and gRPC clients); empty:
	// clear text (HTTP/1.1 and h2c).
	APITLSCert, APITLSKey string

	// NodeName names the node in the cluster and in status; default: the
	// host name.
	NodeName string
	// GossipListen (host:port) makes the node join a cluster; empty runs
	// it alone. Join lists other nodes' gossip addresses; GossipKey (16,
	// 24 or 32 bytes, the same on every node) encrypts gossip.
	GossipListen string
	Join         []string
	GossipKey    []byte
	// GossipProbeInterval and GossipSuspicionMult tune failure detection
	// (see aggregator/cluster.Config); zero takes the defaults
	// (cluster.DefaultProbeInterval, cluster.DefaultSuspicionMult).
	GossipProbeInterval time.Duration
	GossipSuspicionMult int
	// DeriveMaxEvents bounds the staged events of one chunk of a
	// derivation (write.Config.MaxEvents); 0: the write stage's default.
	DeriveMaxEvents int
	// DeriveInterval is the least time between the starts of the write
	// stage's derivation passes while they find events
	// (write.Config.Interval); 0: the write stage's default.
	DeriveInterval time.Duration
	// RealtimeMaxCells bounds a site's realtime cells per minute in this
	// node's memory (redis.RealtimeOptions.MaxCells); 0: the default.
	RealtimeMaxCells int
	// Version is the build version gossiped to peers and shown in status.
	Version string
	// Metrics receives the node's Prometheus metrics, served on /metrics;
	// nil: a registry of the node's own, with the Go runtime and process
	// collectors.
	Metrics *prometheus.Registry
	// TracerProvider receives spans of API requests, batches and database
	// queries; nil: no tracing.
	TracerProvider trace.TracerProvider
}

// reportCache keeps query results until their site's data changes:
// redis.Cache (shared by the cluster) or redis.MemoryCache (a node alone),
// chosen once at start.
type reportCache interface {
	query.ResultCache
	// Bump makes everything cached for sites stale (GDPR erasure).
	Bump(ctx context.Context, sites []uint32)
	// Committed bumps the sites of a derived batch.
	Committed(ctx context.Context, events []protocol.Event)
	// Run retries what could not reach the cache's store until ctx ends.
	Run(ctx context.Context)
}

// realtimeStore holds the last 30 minutes' counters of every site:
// redis.RedisRealtime (shared by the cluster, with this node's memory as
// fallback) or redis.Realtime (this node's memory), chosen once at start.
type realtimeStore interface {
	query.RealtimeSource
	Record(ctx context.Context, events []protocol.Event)
	Forget(ctx context.Context, site uint32, visitors []uint64) error
	Run(ctx context.Context)
	RedisErrors() uint64
	DroppedCells() uint64
}

// Node is a running aggregator.
type Node struct {
	// Ready facts, for the one JSON line the binary prints.
	QUICAddr    string // host:port
	APIURL      string // http://host:port
	OperatorURL string // http://host:port; "" without Config.ListenOperator
	CAFile      string // absolute path of the CA that signed the QUIC certificate; "" with --tls-cert

	log     *slog.Logger
	name    string
	version string
	started time.Time // the incarnation agents see in member lists
	store   *postgres.Store
	// reports is the report pool: reports never wait for, nor hold, the
	// connections the write stage uses (the store's own pool).
	reports       *pgxpool.Pool
	reportTimeout time.Duration
	propertyConns int
	readyLog      logthrottle.Throttle // not-ready reasons, logged
	operator      *http.Server         // nil without Config.ListenOperator
	// replicas route reports between the primary and read replicas; nil
	// without --database-read-url.
	replicas *postgres.Replicas
	redis    goredis.UniversalClient // nil without --redis-url
	rprefix  string                  // Config.RedisPrefix
	// committed are called, in order, after each batch's first commit with
	// its stored events (ingest.Options.Committed): derived state such as
	// realtime counters hooks in here.
	committed []func(ctx context.Context, events []protocol.Event)
	realtime  realtimeStore
	socket    *query.RealtimeSocket
	gate      *gate
	act       *activity
	metrics   *nodeMetrics
	cluster   *cluster.Cluster // nil when running alone
	quic      *protocol.Server
	http      *http.Server
	cancel    context.CancelFunc     // stops Serve's accept loop and the jobs
	wg        sync.WaitGroup         // QUIC Serve, jobs, HTTP serve
	retainer  *governance.Retainer   // the upkeep's retention job
	gdpr      *governance.Worker     // data subject requests of the API
	tombs     *governance.Tombstones // erased subjects, left out of realtime counts
	// cache holds query results: in Redis (redis.Cache), or in memory
	// when the node runs alone without Redis (redis.MemoryCache); nil in
	// a cluster without Redis.
	cache reportCache
	// writer is the write stage: it stages batches and derives them.
	writer *write.Writer

	serveErr chan error
}

// Start opens the database, migrates it, runs the upkeep jobs once and binds
// both listeners. On error everything opened so far is closed again.
func Start(ctx context.Context, cfg Config, log *slog.Logger) (_ *Node, err error) {
	if cfg.DatabaseURL == "" {
		return nil, errors.New("aggregator: no database: set --database-url or DATABASE_URL")
	}
	if (cfg.TLSCert == "") != (cfg.TLSKey == "") {
		return nil, errors.New("aggregator: --tls-cert and --tls-key go together")
	}
	if (cfg.APITLSCert == "") != (cfg.APITLSKey == "") {
		return nil, errors.New("aggregator: --api-tls-cert and --api-tls-key go together")
	}
	log = httplog.ContextLogger(log) // API records name their request
	n := &Node{log: log, name: cfg.NodeName, version: cfg.Version, act: newActivity(time.Now), serveErr: make(chan error, 2),
		started: time.Now()}
	if n.name == "" {
		n.name, _ = os.Hostname()
	}
	defer func() {
		if err != nil {
			n.abort()
		}
	}()
	tp := cfg.TracerProvider
	if tp == nil {
		tp = noop.NewTracerProvider()
	}
	if n.store, err = postgres.OpenTraced(ctx, cfg.DatabaseURL, log, pgxTracer(tp)); err != nil {
		return nil, fmt.Errorf("aggregator: %w", err)
	}
	if err = n.store.Migrate(ctx); err != nil {
		return nil, fmt.Errorf("aggregator: %w", err)
	}
	cfg = withDefaults(cfg)
	n.reportTimeout, n.propertyConns = cfg.ReportTimeout, cfg.PropertyConns
	n.readyLog.Every = 10 * time.Second
	reportPool := postgres.PoolOptions{MaxConns: int32(cfg.ReportConns), StatementTimeout: cfg.ReportTimeout}
	if n.reports, err = postgres.OpenReportPool(ctx, cfg.DatabaseURL, pgxTracer(tp), reportPool); err != nil {
		return nil, fmt.Errorf("aggregator: %w", err)
	}
	if len(cfg.DatabaseReadURLs) > 0 {
		n.replicas, err = n.store.OpenReplicas(ctx, postgres.ReplicaOptions{
			URLs: cfg.DatabaseReadURLs, MaxLag: cfg.DatabaseReadMaxLag, Tracer: pgxTracer(tp), Logger: log,
			Primary: n.reports, Pool: reportPool})
		if err != nil {
			return nil, fmt.Errorf("aggregator: %w", err)
		}
	}
	n.rprefix = cfg.RedisPrefix
	if cfg.RedisURL != "" {
		if n.redis, err = redis.New(redis.Options{URL: cfg.RedisURL, TracerProvider: tp}); err != nil {
			return nil, fmt.Errorf("aggregator: %w", err)
		}
		if err := n.redis.Ping(ctx).Err(); err != nil {
			log.Warn("redis does not answer; serving from the database and memory until it does", "redis", redis.Describe(cfg.RedisURL), "err", err)
		}
	}
	// Partitions and salts are cluster singletons under an advisory lock.
	n.retainer = &governance.Retainer{Store: n.store, Log: log}
	j := jobs.New(jobs.Options{Logger: log, Lock: jobs.NewAdvisoryLock(n.store),
		Tracer: tp.Tracer(tracerJobs), Retention: n.retainer.Run}, n.store)
	switch err = j.RunOnce(ctx); {
	case jobs.OnlyDeferrable(err):
		log.Warn("upkeep: packing failed at start-up; serving anyway, the next run retries", "err", err)
	case err != nil:
		return nil, fmt.Errorf("aggregator: first upkeep run: %w", err)
	}
	tlsConf, err := n.serverTLS(cfg)
	if err != nil {
		return nil, err
	}
	if n.metrics, err = n.newNodeMetrics(cfg.Metrics); err != nil {
		return nil, err
	}
	if rtOpts := (redis.RealtimeOptions{Prefix: n.rprefix, Logger: log, MaxCells: cfg.RealtimeMaxCells}); n.redis != nil {
		n.realtime = redis.NewRedisRealtime(n.redis, rtOpts)
	} else {
		n.realtime = redis.NewRealtime(rtOpts)
	}
	// Realtime counts a batch as soon as it is staged, without the late
	// events of subjects erased in the last 72 hours.
	n.tombs = governance.NewTombstones(n.store, 0, log)
	n.committed = append(n.committed, func(ctx context.Context, events []protocol.Event) {
		n.realtime.Record(ctx, n.tombs.Filter(events))
	})
	// A cache in this node's memory cannot see the batches other nodes
	// derive, so a cluster caches reports only in Redis. Cached reports
	// turn stale when a derivation makes new rows visible.
	switch cacheOpts := (redis.CacheOptions{Prefix: n.rprefix, Logger: log, Metrics: n.metrics.cache}); {
	case n.redis != nil:
		n.cache = redis.NewCache(n.redis, cacheOpts)
	case cfg.GossipListen == "":
		n.cache = redis.NewMemoryCache(cacheOpts)
	}
	// The events a derivation adds (session_start, first_visit) count in
	// realtime when it commits, on whichever node derived them; the
	// staged ones counted when their batch was staged (docs/architecture.md,
	// Freshness).
	n.writer = write.New(write.Config{Logger: log, Derived: n.onDerived, Added: n.onAdded, Tracer: tp.Tracer(tracerWrite),
		Metrics: n.metrics.write, MaxEvents: cfg.DeriveMaxEvents, Interval: cfg.DeriveInterval, Readers: n.readsVersion}, n.store)
	n.retainer.Metrics = n.metrics.governance
	n.gdpr = n.newGDPRWorker(log)
	n.socket = query.NewRealtimeSocket(query.SocketOptions{Options: query.Options{Logger: log}}, n.reports, n.store, n.realtime)
	h := ingest.New(ingest.Options{Logger: log, Stored: n.act.stored, Metrics: n.metrics.ingest,
		Tracer: tp.Tracer(tracerIngest), Committed: n.onCommitted}, n.store, n.writer)
	n.gate = newGate(h, n.members)
	resetKey, err := protocol.EnsureResetKey(cfg.DataDir)
	if err != nil {
		return nil, fmt.Errorf("aggregator: %w", err)
	}
	if n.quic, err = protocol.ListenOptions(cfg.ListenQUIC, tlsConf, n.gate, log, protocol.ServerOptions{ResetKey: resetKey}); err != nil {
		return nil, fmt.Errorf("aggregator: %w", err)
	}
	ln, err := net.Listen("tcp", cfg.ListenAPI)
	if err != nil {
		return nil, fmt.Errorf("aggregator: listen api %s: %w", cfg.ListenAPI, err)
	}
	n.QUICAddr, n.APIURL = n.quic.Addr().String(), "http://"+ln.Addr().String()
	n.http = newAPIServer(cfg, traceHTTP(tp, httplog.Handler(log, n.routes())))
	if cfg.APITLSCert != "" {
		// ServeTLS offers h2 by ALPN beside http/1.1.
		if n.http.TLSConfig, err = protocol.ServerTLS(cfg.APITLSCert, cfg.APITLSKey, ""); err != nil {
			ln.Close()
			return nil, fmt.Errorf("aggregator: api: %w", err)
		}
		n.http.TLSConfig.NextProtos = nil
		n.APIURL = "https://" + ln.Addr().String()
	}
	var opLn net.Listener
	if cfg.ListenOperator != "" {
		if opLn, err = net.Listen("tcp", cfg.ListenOperator); err != nil {
			ln.Close()
			return nil, fmt.Errorf("aggregator: listen operator %s: %w", cfg.ListenOperator, err)
		}
		n.OperatorURL = "http://" + opLn.Addr().String()
		n.operator = &http.Server{Handler: httplog.Handler(log, n.operatorRoutes()), ReadHeaderTimeout: apiReadHeaderTimeout,
			ReadTimeout: DefaultAPIReadTimeout, WriteTimeout: DefaultAPIWriteTimeout, IdleTimeout: DefaultAPIIdleTimeout}
	}
	if cfg.GossipListen != "" {
		n.cluster, err = cluster.New(cluster.Config{
			NodeName: n.name, Listen: cfg.GossipListen, Seeds: cfg.Join, Key: cfg.GossipKey,
			Meta: cluster.Meta{QUICAddr: n.QUICAddr, APIAddr: ln.Addr().String(), Version: cfg.Version,
				Protocol: protocol.Version, Started: n.started.UnixMilli()},
			ProbeInterval: cfg.GossipProbeInterval, SuspicionMult: cfg.GossipSuspicionMult,
			Logger: log,
		})
		if err != nil {
			ln.Close()
			if opLn != nil {
				opLn.Close()
			}
			return nil, fmt.Errorf("aggregator: %w", err)
		}
		if cfg.TLSCert == "" {
			log.Warn("clustered node with a development certificate: every node makes its own CA, so agents (which trust one) cannot fail over; " +
				"give every node --tls-cert/--tls-key from one CA (avila certs init, avila certs issue --aggregator NAME)")
		}
	}

	runCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	n.cancel = cancel
	n.wg.Go(func() {
		if err := n.quic.Serve(runCtx); err != nil {
			n.serveErr <- err
		}
	})
	n.wg.Go(func() { j.Run(runCtx) })
	if n.replicas != nil {
		n.wg.Go(func() { n.replicas.Run(runCtx) })
	}
	n.wg.Go(func() { n.writer.Run(runCtx) })
	n.wg.Go(func() { n.gdpr.Run(runCtx) })
	n.wg.Go(func() { n.tombs.Run(runCtx) })
	n.wg.Go(func() { n.realtime.Run(runCtx) })
	n.wg.Go(func() { n.socket.Run(runCtx) })
	if n.cache != nil {
		n.wg.Go(func() { n.cache.Run(runCtx) })
	}
	if n.cluster != nil {
		n.wg.Go(func() { n.cluster.Run(runCtx) })
		n.wg.Go(func() { n.publishLoad(runCtx) })
	}
	n.wg.Go(func() {
		serve := n.http.Serve
		if n.http.TLSConfig != nil {
			serve = func(ln net.Listener) error { return n.http.ServeTLS(ln, "", "") }
		}
		if err := serve(ln); !errors.Is(err, http.ErrServerClosed) {
			n.serveErr <- fmt.Errorf("aggregator: api: %w", err)
		}
	})
	if n.operator != nil {
		n.wg.Go(func() {
			if err := n.operator.Serve(opLn); !errors.Is(err, http.ErrServerClosed) {
				n.serveErr <- fmt.Errorf("aggregator: operator: %w", err)
			}
		})
	}
	log.Info("aggregator ready", "node", n.name, "quic", n.QUICAddr, "api", n.APIURL, "operator", n.OperatorURL, "mtls", cfg.TLSClientCA != "")
	return n, nil
}

// Flush derives every event staged so far (by any node), so reports read
// them: for tests, which otherwise see them within the derivation lag.
func (n *Node) Flush(ctx context.Context) error {
	if err := n.writer.Flush(ctx); err != nil {
		return fmt.Errorf("aggregator: %w", err)
	}
	return nil
}

// onDerived tells the report cache that a derivation of site made events
// visible.
func (n *Node) onDerived(ctx context.Context, site uint32, events []protocol.Event) {
	if n.cache != nil {
		n.cache.Committed(ctx, events)
	}
}

// onAdded counts in realtime the events a derivation of site added.
func (n *Node) onAdded(ctx context.Context, _ uint32, events []protocol.Event) {
	n.realtime.Record(ctx, events)
}

// onCommitted runs the committed hooks for one batch's staged events.
func (n *Node) onCommitted(ctx context.Context, events []protocol.Event) {
	for _, fn := range n.committed {
		fn(ctx, events)
	}
}

func (n *Node) serverTLS(cfg Config) (*tls.Config, error) {
	cert, key := cfg.TLSCert, cfg.TLSKey
	if cert == "" {
		dev, err := protocol.EnsureDevCerts(cfg.DataDir)
		if err != nil {
			return nil, fmt.Errorf("aggregator: %w", err)
		}
		if n.CAFile, err = filepath.Abs(dev.CA); err != nil {
			return nil, fmt.Errorf("aggregator: %w", err)
		}
		cert, key = dev.Cert, dev.Key
	}
	conf, err := protocol.ServerTLS(cert, key, cfg.TLSClientCA)
	if err != nil {
		return nil, fmt.Errorf("aggregator: %w", err)
	}
	return conf, nil
}

// Err reports a listener that failed while serving; the node should then be
// shut down.
func (n *Node) Err() <-chan error { return n.serveErr }

// Shutdown drains the node and stops it: new batches are answered Retry
// ("draining", with the members to go to instead) and the node announces it
// is draining; once the batches in flight are answered (or ctx ends) it
// leaves the cluster, stops the API (waiting for requests in progress until
// ctx ends) and closes the database. A rolling restart loses nothing: every
// batch is either committed and acknowledged or resent elsewhere.
func (n *Node) Shutdown(ctx context.Context) error {
	n.log.Info("aggregator draining")
	var errs []error
	idle := n.gate.drain()
	n.gate.invalidate()
	if n.cluster != nil {
		if err := n.cluster.Update(func(m *cluster.Meta) { m.Draining = true }); err != nil {
			n.log.Warn("announcing drain to the cluster", "err", err)
		}
		n.gate.invalidate()
	}
	select {
	case <-idle:
	case <-ctx.Done():
		errs = append(errs, fmt.Errorf("aggregator: batches still in flight at shutdown deadline: %w", ctx.Err()))
	}
	if n.cluster != nil {
		if err := n.cluster.Leave(); err != nil {
			errs = append(errs, err)
		}
	}
	n.log.Info("aggregator stopping")
	// What this node staged becomes visible before it goes (another node
	// or the next start would derive it otherwise).
	if err := n.writer.Flush(ctx); err != nil {
		errs = append(errs, fmt.Errorf("aggregator: derive staged events at shutdown: %w", err))
	}
	// Cancelling ends the accept loops; streams already accepted run to
	// their answer (protocol.Server.Serve waits for them) on uncancelled contexts.
	n.cancel()
	if err := n.http.Shutdown(ctx); err != nil {
		errs = append(errs, fmt.Errorf("aggregator: stop api: %w", err))
	}
	if n.operator != nil {
		if err := n.operator.Shutdown(ctx); err != nil {
			errs = append(errs, fmt.Errorf("aggregator: stop operator listener: %w", err))
		}
	}
	n.wg.Wait()
	// Only now close the QUIC transport: closing it first would cut the
	// connections that in-flight batches are answered on.
	if err := n.quic.Close(); err != nil {
		errs = append(errs, fmt.Errorf("aggregator: close quic: %w", err))
	}
	if n.replicas != nil {
		n.replicas.Close()
	}
	n.reports.Close()
	n.store.Close()
	if n.redis != nil {
		_ = n.redis.Close()
	}
	n.log.Info("aggregator stopped")
	return errors.Join(errs...)
}

// abort closes what a failed Start opened.
func (n *Node) abort() {
	if n.cluster != nil {
		_ = n.cluster.Shutdown()
	}
	if n.quic != nil {
		_ = n.quic.Close()
	}
	if n.replicas != nil {
		n.replicas.Close()
	}
	if n.reports != nil {
		n.reports.Close()
	}
	if n.store != nil {
		n.store.Close()
	}
	if n.redis != nil {
		_ = n.redis.Close()
	}
}
