package agent

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/valyala/fasthttp"

	"github.com/avila-analytics/avila/agent/collect"
	"github.com/avila-analytics/avila/agent/enrich"
	"github.com/avila-analytics/avila/agent/listen"
	"github.com/avila-analytics/avila/agent/queue"
	"github.com/avila-analytics/avila/agent/ship"
	"github.com/avila-analytics/avila/internal/httplog"
	"github.com/avila-analytics/avila/protocol"
)

// QueueFile is the queue's file name inside Config.DataDir.
const QueueFile = "queue.db"

// Config is one agent's settings; see cmd/avila-agent for each field's flag.
type Config struct {
	Listen      string   // HTTP address, e.g. "127.0.0.1:8090"; port 0 picks a free one
	DataDir     string   // queue.db and cached config live here
	Aggregators []string // seed QUIC host:port; the live cluster members are learned from them
	CAFile      string   // PEM CA that signed the aggregators' certificates
	// PeerTimeout is how long an aggregator may stay silent before the
	// agent fails over (--peer-timeout); 0: ship.DefaultPeerTimeout.
	PeerTimeout time.Duration
	// CertFile and KeyFile are the agent's own certificate for aggregators
	// that require one (mTLS); its CommonName is the agent's identity.
	CertFile, KeyFile string
	QueueMaxBytes     int64 // 0: queue.DefaultMaxBytes
	// QueueKeyFile holds the key the queue is encrypted with; empty:
	// queue.key in DataDir, created on first start.
	QueueKeyFile string
	// GeoIPDB is a MaxMind-format database for country, region and city;
	// empty: countries only, from the table built into the agent.
	GeoIPDB string
	// TrustedProxies are the peers whose Forwarded / X-Forwarded-For name
	// the client (--trusted-proxies); RatePerIP and RatePerSite are token
	// buckets (--rate-ip, --rate-site; zero: no limit); DoNotTrack is what
	// DNT: 1 / Sec-GPC: 1 hits become (--dnt).
	TrustedProxies         []netip.Prefix
	RatePerIP, RatePerSite collect.Rate
	DoNotTrack             collect.DNTPolicy
	// MPStrict answers /mp/collect requests that break a rule with 4xx
	// instead of GA4's 204 (--mp-strict).
	MPStrict bool
	// Metrics receives the agent's Prometheus metrics and is served on
	// /metrics; nil: a registry of the agent's own, with the Go runtime and
	// process collectors.
	Metrics *prometheus.Registry
	// GCPercent and MemoryLimit (bytes) set the Go runtime's GOGC and soft
	// memory limit for the whole process at Start (--gogc,
	// --memory-limit); 0 leaves each as it is. GCPercent -1 turns the
	// collector off and needs a MemoryLimit.
	GCPercent   int
	MemoryLimit int64
	// MinProcs keeps GOMAXPROCS at no less than this while the process
	// may run on fewer CPUs, from Start to Shutdown (--min-procs; see
	// DefaultMinProcs); 0 leaves it to the runtime.
	MinProcs int
	// MaxConns and MaxConnsPerIP cap the HTTP connections open at once, in
	// total and per client address (--max-conns, --max-conns-per-ip); past
	// a cap a connection is answered 503 with Retry-After. TrustedProxies
	// count only against the total. 0: derived from the open-file limit
	// (listen.DefaultCaps), which Start raises to its hard limit.
	MaxConns, MaxConnsPerIP int
}

// Agent is a running agent: the HTTP edge, the durable queue and the
// shipper to the aggregators.
type Agent struct {
	URL string // http://host:port the agent listens on
	ID  string // agent id: names this agent's segments (agent id, seq) for ever

	log      *slog.Logger
	q        *queue.Queue
	shipper  *ship.Shipper
	enrich   *enrich.Enricher
	http     *fasthttp.Server
	ln       *listen.Listener
	sites    atomic.Pointer[collect.Sites] // nil until a config is known
	stopShip context.CancelFunc
	shipDone chan struct{}
	serveErr chan error

	shutdownOnce   sync.Once
	shutdownErr    error
	restoreRuntime func() // undoes Config.GCPercent, MemoryLimit and MinProcs
}

// Start opens the queue in cfg.DataDir, loads the site config cached there
// (so a restarted agent serves at once, even with no aggregator reachable),
// binds the HTTP listener and starts shipping. ctx bounds only the start;
// the agent runs until Shutdown. On error everything opened is closed.
func Start(ctx context.Context, cfg Config, log *slog.Logger) (_ *Agent, err error) {
	if log == nil {
		log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	// Records logged with a request's context name the request.
	log = httplog.ContextLogger(log)
	if err := checkConfig(cfg); err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("agent: start: %w", err)
	}
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return nil, fmt.Errorf("agent: create data dir: %w", err)
	}
	restoreRuntime := applyRuntime(cfg)
	defer func() {
		if err != nil {
			restoreRuntime()
		}
	}()
	tlsConf, err := protocol.ClientTLS(cfg.CAFile, cfg.CertFile, cfg.KeyFile)
	if err != nil {
		return nil, fmt.Errorf("agent: --ca, --cert, --key: %w", err)
	}
	a := &Agent{log: log, serveErr: make(chan error, 1), shipDone: make(chan struct{}), restoreRuntime: restoreRuntime}
	a.q, err = queue.Open(queue.Options{
		Path: filepath.Join(cfg.DataDir, QueueFile), KeyFile: cfg.QueueKeyFile, MaxBytes: cfg.QueueMaxBytes, Logger: log,
	})
	if err != nil {
		return nil, fmt.Errorf("agent: %w", err)
	}
	defer func() {
		if err != nil {
			_ = a.q.Close()
		}
	}()
	a.ID = a.q.AgentID()
	if a.enrich, err = enrich.New(enrich.Config{GeoIPDB: cfg.GeoIPDB}); err != nil {
		return nil, fmt.Errorf("agent: %w", err)
	}
	defer func() {
		if err != nil {
			_ = a.enrich.Close()
		}
	}()
	cached, err := ship.LoadCachedConfig(a.q)
	if err != nil {
		// A cache that cannot be read is replaced by the next fetch.
		log.Warn("ignoring the cached site config", "err", err)
	} else if cached != nil {
		a.setConfig(cached, "cache")
	}
	a.shipper, err = ship.New(ship.Options{Aggregators: cfg.Aggregators, TLS: tlsConf, PeerTimeout: cfg.PeerTimeout, Logger: log}, a.q,
		func(c *protocol.Config) { a.setConfig(c, "aggregator") })
	if err != nil {
		return nil, fmt.Errorf("agent: %w", err)
	}
	if a.ln, err = a.listen(cfg); err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			_ = a.ln.Close()
		}
	}()
	reg := cfg.Metrics
	if reg == nil {
		reg = newRegistry()
	}
	m, err := newMetrics(reg, a.q, a.shipper, a.ln)
	if err != nil {
		return nil, fmt.Errorf("agent: register metrics: %w", err)
	}
	col, err := collect.New(collect.Options{
		Count:           m.count,
		CountMPRejected: m.mpRejectedCount,
		CountRepaired:   m.repairedCount,
		MPStrict:        cfg.MPStrict,
		Sites:           a.sites.Load,
		Queue:           a.q,
		OnUnknownSite:   a.shipper.RefreshConfig,
		Enricher:        a.enrich,
		Logger:          log,
		// Edge policy.
		TrustedProxies: cfg.TrustedProxies,
		RatePerIP:      cfg.RatePerIP,
		RatePerSite:    cfg.RatePerSite,
		DoNotTrack:     cfg.DoNotTrack,
	})
	if err != nil {
		return nil, fmt.Errorf("agent: %w", err)
	}
	a.URL = "http://" + a.ln.Addr().String()
	a.http = a.newHTTPServer(col, func(ids *httplog.IDs) http.Handler { return a.routes(col, reg, ids) })

	shipCtx, stop := context.WithCancel(context.WithoutCancel(ctx))
	a.stopShip = stop
	go func() {
		defer close(a.shipDone)
		_ = a.shipper.Run(shipCtx)
	}()
	go func() {
		if err := a.http.Serve(a.ln); err != nil {
			a.serveErr <- fmt.Errorf("agent: http: %w", err)
		}
	}()
	log.Info("agent ready", "url", a.URL, "agent", a.ID, "aggregators", cfg.Aggregators)
	return a, nil
}

func checkConfig(cfg Config) error {
	switch {
	case cfg.Listen == "":
		return errors.New("agent: --listen is empty")
	case cfg.DataDir == "":
		return errors.New("agent: --data-dir is empty")
	case len(cfg.Aggregators) == 0:
		return errors.New("agent: no --aggregator address")
	case cfg.CAFile == "":
		return errors.New("agent: --ca is empty: name the PEM CA that signed the aggregators' certificates (the aggregator prints its path as \"ca\" when ready)")
	case (cfg.CertFile == "") != (cfg.KeyFile == ""):
		return errors.New("agent: --cert and --key go together")
	case cfg.QueueMaxBytes < 0:
		return errors.New("agent: --queue-max-bytes must be >= 0")
	case cfg.MaxConns < 0:
		return errors.New("agent: --max-conns must be >= 0")
	case cfg.MaxConnsPerIP < 0:
		return errors.New("agent: --max-conns-per-ip must be >= 0")
	}
	if err := checkRuntime(cfg); err != nil {
		return err
	}
	for _, addr := range cfg.Aggregators {
		if _, _, err := net.SplitHostPort(addr); err != nil {
			return fmt.Errorf("agent: --aggregator %q: want host:port", addr)
		}
	}
	return nil
}

// Err reports the HTTP listener failing while serving; the agent should then
// be shut down.
func (a *Agent) Err() <-chan error { return a.serveErr }

// Shutdown stops the HTTP server (requests in progress finish, until ctx
// ends), then stops the shipper and then closes the queue: in that order, so
// no accepted request loses its Append and no send outlives the file.
// Events not yet acknowledged stay in the queue for the next start.
// Calling it again returns the first call's result.
func (a *Agent) Shutdown(ctx context.Context) error {
	a.shutdownOnce.Do(func() {
		a.log.Info("agent stopping")
		var errs []error
		if err := a.http.ShutdownWithContext(ctx); err != nil {
			errs = append(errs, fmt.Errorf("agent: stop http: %w", err))
		}
		a.stopShip()
		<-a.shipDone
		if err := a.enrich.Close(); err != nil {
			errs = append(errs, fmt.Errorf("agent: %w", err))
		}
		if err := a.q.Close(); err != nil {
			errs = append(errs, fmt.Errorf("agent: %w", err))
		}
		a.shutdownErr = errors.Join(errs...)
		a.restoreRuntime()
		a.log.Info("agent stopped")
	})
	return a.shutdownErr
}
