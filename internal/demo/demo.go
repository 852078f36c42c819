package demo

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net/http"
	"net/netip"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"time"

	"github.com/avila-analytics/avila/agent"
	"github.com/avila-analytics/avila/aggregator/node"
	"github.com/avila-analytics/avila/internal/pgserver"
)

// MaxTraffic bounds Config.Traffic, in visitors per second: more would
// measure the traffic generator rather than show the product.
const MaxTraffic = 1000

// readyTimeout bounds the wait for the agent to learn the demo site and its
// salt from the aggregator.
const readyTimeout = 60 * time.Second

// databaseName is the database the demo uses on its managed PostgreSQL.
const databaseName = "avila"

// Config is the demo's settings; see `avila help demo` for each field's flag.
type Config struct {
	// DataDir holds everything the demo keeps across runs: postgres/ (the
	// managed cluster), aggregator/ (development TLS) and agent/ (queue).
	DataDir string
	// DatabaseURL is an existing PostgreSQL to use; empty runs a managed one
	// from the system's initdb and pg_ctl in DataDir/postgres.
	DatabaseURL string
	AgentListen string // host:port of the agent's HTTP collector
	APIListen   string // host:port of the aggregator's HTTP API
	QUICListen  string // host:port (UDP) the agent ships to
	// Traffic is how many synthetic visitors per second to send through the
	// agent; 0 sends none. At most MaxTraffic.
	Traffic float64
}

// Ready is what a user needs to use the running demo; it is printed as the
// one JSON line of `avila demo`. Keys may be added, never renamed.
type Ready struct {
	Agent         string `json:"agent"`          // the agent's base URL: point gtag.js' transport_url here
	API           string `json:"api"`            // the aggregator's API base URL
	Dashboard     string `json:"dashboard"`      // the dashboard's URL
	Property      string `json:"property"`       // the demo site's property id
	MeasurementID string `json:"measurement_id"` // the demo site's GA4 measurement id
	APISecret     string `json:"api_secret"`     // the demo site's Measurement Protocol secret
	APIKey        string `json:"api_key"`        // a Data API key for the demo site, new each run
	Operator      string `json:"operator"`       // the aggregator's operator address: /metrics, /v1/cluster/status
}

// Demo is a running demo.
type Demo struct {
	Ready Ready

	log   *slog.Logger
	pg    *pgserver.Server // nil with Config.DatabaseURL
	node  *node.Node
	agent *agent.Agent

	unlock func() // releases the data directory; nil until locked

	stopTraffic context.CancelFunc
	trafficDone chan struct{}
	errc        chan error
	done        chan struct{} // closed by Shutdown: stops the error forwarders
	forwarders  sync.WaitGroup
	shutdown    sync.Once
	shutdownErr error
}

// Start runs the demo and returns when the agent accepts hits for the demo
// site. On error, whatever was started is stopped again.
func Start(ctx context.Context, cfg Config, log *slog.Logger) (_ *Demo, err error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	d := &Demo{log: log, errc: make(chan error, 4), done: make(chan struct{})}
	defer func() {
		if err != nil {
			sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), readyTimeout)
			defer cancel()
			if serr := d.Shutdown(sctx); serr != nil {
				log.Warn("demo: stopping after a failed start", "err", serr)
			}
		}
	}()
	if err := os.MkdirAll(cfg.DataDir, 0o755); err != nil {
		return nil, fmt.Errorf("demo: create --data-dir: %w", err)
	}
	if d.unlock, err = lockDataDir(cfg.DataDir); err != nil {
		return nil, err
	}
	if err := checkPorts(cfg); err != nil {
		return nil, err
	}
	dbURL := cfg.DatabaseURL
	if dbURL == "" {
		if dbURL, err = d.startPostgres(ctx, filepath.Join(cfg.DataDir, "postgres")); err != nil {
			return nil, err
		}
	}
	d.node, err = node.Start(ctx, node.Config{DatabaseURL: dbURL, ListenQUIC: cfg.QUICListen, ListenAPI: cfg.APIListen,
		ListenOperator: "127.0.0.1:0", DataDir: filepath.Join(cfg.DataDir, "aggregator")}, log)
	if err != nil {
		return nil, fmt.Errorf("demo: %w", explainListen(err))
	}
	d.forward(d.node.Err())
	site, key, err := prepareDatabase(ctx, dbURL, log)
	if err != nil {
		return nil, err
	}
	d.agent, err = agent.Start(ctx, agent.Config{Listen: cfg.AgentListen, DataDir: filepath.Join(cfg.DataDir, "agent"),
		Aggregators: []string{d.node.QUICAddr}, CAFile: d.node.CAFile,
		// The synthetic visitors name their (public, made-up) addresses in
		// X-Forwarded-For, as a reverse proxy on this host would.
		TrustedProxies: loopback}, log)
	if err != nil {
		return nil, fmt.Errorf("demo: %w", explainListen(err))
	}
	d.forward(d.agent.Err())
	if err := d.waitAgentReady(ctx); err != nil {
		return nil, err
	}
	d.Ready = Ready{
		Agent:         d.agent.URL,
		API:           d.node.APIURL,
		Dashboard:     dashboardURL(d.node.APIURL, site.ID, key),
		Property:      strconv.FormatUint(uint64(site.ID), 10),
		MeasurementID: site.MeasurementID,
		APISecret:     site.APISecret,
		APIKey:        key,
		Operator:      d.node.OperatorURL,
	}
	if cfg.Traffic > 0 {
		d.startTraffic(ctx, TrafficOptions{AgentURL: d.agent.URL, MeasurementID: site.MeasurementID,
			Rate: cfg.Traffic, Logger: log})
	}
	log.Info("demo ready", "agent", d.Ready.Agent, "api", d.Ready.API, "property", d.Ready.Property)
	return d, nil
}

// explainListen adds the fix to an address that is taken.
func explainListen(err error) error {
	if errors.Is(err, syscall.EADDRINUSE) {
		return fmt.Errorf("%w (another program took the address since the demo checked it: choose others with --agent-listen, --api-listen and --quic-listen; port 0 picks a free one)", err)
	}
	return err
}

func (cfg *Config) validate() error {
	switch {
	case cfg.DataDir == "":
		return errors.New("demo: --data-dir is required")
	case cfg.AgentListen == "":
		return errors.New("demo: --agent-listen is required")
	case cfg.APIListen == "":
		return errors.New("demo: --api-listen is required")
	case cfg.QUICListen == "":
		return errors.New("demo: --quic-listen is required")
	case cfg.Traffic < 0 || cfg.Traffic > MaxTraffic || math.IsNaN(cfg.Traffic):
		return fmt.Errorf("demo: --traffic must be between 0 and %d visitors per second, got %v", MaxTraffic, cfg.Traffic)
	}
	return nil
}

// startPostgres runs the managed PostgreSQL in dir and returns the URL of
// the demo's database on it.
func (d *Demo) startPostgres(ctx context.Context, dir string) (string, error) {
	d.log.Info("starting PostgreSQL (set DATABASE_URL to use an existing server instead)", "dir", dir)
	pg, err := pgserver.Start(ctx, pgserver.Options{Dir: dir, Logger: d.log, Settings: pgserver.IngestSettings})
	if errors.Is(err, pgserver.ErrNoBinaries) {
		return "", fmt.Errorf("demo: %w", err)
	}
	if err != nil {
		return "", fmt.Errorf("demo: managed PostgreSQL in %s (or set DATABASE_URL to use an existing server): %w", dir, err)
	}
	d.pg = pg
	url, err := pg.CreateDatabase(ctx, databaseName)
	if err != nil {
		return "", fmt.Errorf("demo: %w", err)
	}
	return url, nil
}

// waitAgentReady polls the agent's /readyz until it answers 200: the agent
// then knows the demo site and today's salt, so a hit sent now is accepted.
func (d *Demo) waitAgentReady(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, readyTimeout)
	defer cancel()
	client := &http.Client{Timeout: 5 * time.Second}
	last := "no answer yet"
	for {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, d.agent.URL+"/readyz", nil)
		if err != nil {
			return fmt.Errorf("demo: agent readiness: %w", err)
		}
		if resp, err := client.Do(req); err != nil {
			last = err.Error()
		} else {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
			last = resp.Status
		}
		select {
		case <-ctx.Done():
			if errors.Is(ctx.Err(), context.DeadlineExceeded) {
				return fmt.Errorf("demo: agent at %s not ready after %s (last answer: %s); see the agent's log lines above", d.agent.URL, readyTimeout, last)
			}
			return fmt.Errorf("demo: waiting for the agent: %w", ctx.Err())
		case err := <-d.errc:
			return fmt.Errorf("demo: failed while waiting for the agent: %w", err)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

func (d *Demo) startTraffic(ctx context.Context, opts TrafficOptions) {
	tctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	d.stopTraffic, d.trafficDone = cancel, make(chan struct{})
	go func() {
		defer close(d.trafficDone)
		NewTraffic(opts).Run(tctx)
	}()
}

// forward passes a part's serving error on to Err until Shutdown.
func (d *Demo) forward(errs <-chan error) {
	d.forwarders.Go(func() {
		select {
		case err := <-errs:
			select {
			case d.errc <- err:
			default: // one error is enough to shut the demo down
			}
		case <-d.done:
		}
	})
}

// Err reports a part that failed while running; the demo should then be
// shut down.
func (d *Demo) Err() <-chan error { return d.errc }

// Shutdown stops traffic, the agent (its queue keeps what was not shipped
// yet), the aggregator and the managed PostgreSQL, in that order, and
// returns their errors joined. Parts that never started are skipped.
func (d *Demo) Shutdown(ctx context.Context) error {
	d.shutdown.Do(func() { d.shutdownErr = d.stop(ctx) })
	return d.shutdownErr
}

func (d *Demo) stop(ctx context.Context) error {
	close(d.done)
	d.forwarders.Wait()
	var errs []error
	if d.stopTraffic != nil {
		d.stopTraffic()
		<-d.trafficDone
	}
	if d.agent != nil {
		if err := d.agent.Shutdown(ctx); err != nil {
			errs = append(errs, fmt.Errorf("demo: stop agent: %w", err))
		}
	}
	if d.node != nil {
		if err := d.node.Shutdown(ctx); err != nil {
			errs = append(errs, fmt.Errorf("demo: stop aggregator: %w", err))
		}
	}
	if d.pg != nil {
		// pg_ctl must run even when ctx is done, or the server outlives us.
		if err := d.pg.Stop(context.WithoutCancel(ctx)); err != nil {
			errs = append(errs, fmt.Errorf("demo: stop PostgreSQL: %w", err))
		}
	}
	if d.unlock != nil {
		d.unlock()
	}
	return errors.Join(errs...)
}

// loopback is the demo agent's trusted proxy range.
var loopback = []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8"), netip.MustParsePrefix("::1/128")}

// dashboardURL opens the dashboard on the demo property with its key. The key
// rides in the fragment, which the browser never sends; the page moves it into
// session storage and out of the address bar.
func dashboardURL(api string, property uint32, key string) string {
	return fmt.Sprintf("%s/#property=%d&key=%s", api, property, url.QueryEscape(key))
}
