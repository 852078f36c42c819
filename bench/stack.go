package bench

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/avila-analytics/avila/internal/apptest"
	"github.com/avila-analytics/avila/internal/pgserver"
	"github.com/avila-analytics/avila/storage/postgres"
)

// stopTimeout bounds a binary's clean shutdown.
const stopTimeout = 30 * time.Second

// Site roles: each phase writes to its own site, so its rows can be told
// apart (events have no index on site_id; phases never count by scanning).
const (
	siteIngest    = "bench ingest"
	sitePipeline  = "bench pipeline"
	siteDashboard = "bench dashboard"
	siteImport    = "bench import"
	siteFailover  = "bench failover"
)

// stack is what a run starts: PostgreSQL, the aggregator and the agent.
type stack struct {
	log  *slog.Logger
	work string
	bins string

	pg        *pgserver.Server // nil when Options.DatabaseURL was given
	serverURL string           // the server's maintenance database
	dbName    string
	dbURL     string
	store     *postgres.Store
	// db is the bench's own pool on the database, for what no typed
	// operation of the store does: building data sets in bulk, COPY
	// baselines, and reading table sizes and counts.
	db *pgxpool.Pool

	sites  map[string]postgres.Site
	apiKey string

	agg, agent *process
	apiURL     string // aggregator's HTTP API
	agentURL   string
	agentID    string
}

// startStack builds the binaries, starts or reaches PostgreSQL, creates the
// database, sites, salts and an API key, then starts aggregator and agent
// and waits until the agent is ready. On error what was started is stopped.
func startStack(ctx context.Context, opts Options, work string, log *slog.Logger) (_ *stack, err error) {
	s := &stack{log: log, work: work, bins: filepath.Join(work, "bin"), sites: make(map[string]postgres.Site)}
	defer func() {
		if err != nil {
			s.close(context.WithoutCancel(ctx))
		}
	}()
	if err := s.build(ctx, opts); err != nil {
		return nil, err
	}
	if err := s.database(ctx, opts); err != nil {
		return nil, err
	}
	if err := s.setup(ctx); err != nil {
		return nil, err
	}
	if err := s.startAggregator(); err != nil {
		return nil, err
	}
	if err := s.startAgent(ctx); err != nil {
		return nil, err
	}
	return s, nil
}

// build compiles the three binaries into the work directory.
func (s *stack) build(ctx context.Context, opts Options) error {
	goCmd, repo := opts.Go, opts.RepoDir
	if goCmd == "" {
		goCmd = "go"
	}
	if repo == "" {
		repo = "."
	}
	s.log.Info("building binaries", "dir", s.bins)
	cmd := exec.CommandContext(ctx, goCmd, "build", "-o", s.bins+"/", "./cmd/avila-agent", "./cmd/avila-aggregator", "./cmd/avila")
	cmd.Dir = repo
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("bench: build binaries in %s: %w\n%s", repo, err, out)
	}
	return nil
}

// database starts a managed PostgreSQL (or uses opts.DatabaseURL) and
// creates the run's own database.
func (s *stack) database(ctx context.Context, opts Options) error {
	s.serverURL = opts.DatabaseURL
	if s.serverURL == "" {
		// PostgreSQL may run as another user than the harness: it must be
		// able to reach its data directory.
		if err := os.Chmod(s.work, 0o711); err != nil {
			return fmt.Errorf("bench: %w", err)
		}
		s.log.Info("starting a managed PostgreSQL", "dir", filepath.Join(s.work, "postgres"))
		pg, err := pgserver.Start(ctx, pgserver.Options{Dir: filepath.Join(s.work, "postgres"), Logger: s.log, Settings: pgserver.IngestSettings})
		if err != nil {
			return fmt.Errorf("bench: %w (or set DATABASE_URL to an existing server)", err)
		}
		s.pg, s.serverURL = pg, pg.URL()
	}
	s.dbName = "avila_bench_" + strconv.FormatInt(time.Now().UnixNano(), 36)
	if err := pgserver.CreateDatabase(ctx, s.serverURL, s.dbName); err != nil {
		return fmt.Errorf("bench: %w", err)
	}
	u, err := url.Parse(s.serverURL)
	if err != nil {
		return fmt.Errorf("bench: database url: %w", err)
	}
	u.Path = "/" + s.dbName
	s.dbURL = u.String()
	return nil
}

// setup migrates the database and creates what the agent and the query API
// need before they start: the sites, their salts and an API key.
func (s *stack) setup(ctx context.Context) error {
	var err error
	if s.store, err = postgres.Open(ctx, s.dbURL, s.log); err != nil {
		return fmt.Errorf("bench: %w", err)
	}
	if err := s.store.Migrate(ctx); err != nil {
		return fmt.Errorf("bench: %w", err)
	}
	if s.db, err = pgxpool.New(ctx, s.dbURL); err != nil {
		return fmt.Errorf("bench: open a pool: %w", err)
	}
	var ids []uint32
	for _, name := range []string{siteIngest, sitePipeline, siteDashboard, siteImport, siteFailover} {
		site, err := s.store.CreateSite(ctx, postgres.SiteSpec{Name: name, Domains: []string{benchHost}})
		if err != nil {
			return fmt.Errorf("bench: %w", err)
		}
		s.sites[name] = site
		ids = append(ids, site.ID)
	}
	if err := s.store.EnsureSalts(ctx, time.Now()); err != nil {
		return fmt.Errorf("bench: %w", err)
	}
	if s.apiKey, err = s.store.CreateAPIKey(ctx, "bench", ids); err != nil {
		return fmt.Errorf("bench: %w", err)
	}
	return nil
}

func (s *stack) startAggregator() error {
	var err error
	s.agg, err = startProcess("avila-aggregator", filepath.Join(s.bins, "avila-aggregator"), filepath.Join(s.work, "aggregator.log"),
		"--database-url", s.dbURL, "--listen-quic", "127.0.0.1:0", "--listen-api", "127.0.0.1:0", "--listen-operator", "127.0.0.1:0",
		"--data-dir", filepath.Join(s.work, "aggregator"), "--log-level", "warn")
	if err != nil {
		return err
	}
	s.apiURL = s.agg.Ready["api"]
	if s.apiURL == "" || s.agg.Ready["quic"] == "" || s.agg.Ready["ca"] == "" {
		return fmt.Errorf("bench: aggregator ready line %v lacks api, quic or ca", s.agg.Ready)
	}
	return nil
}

func (s *stack) startAgent(ctx context.Context) error {
	var err error
	s.agent, err = startProcess("avila-agent", filepath.Join(s.bins, "avila-agent"), filepath.Join(s.work, "agent.log"),
		"--listen", "127.0.0.1:0", "--data-dir", filepath.Join(s.work, "agent"),
		"--aggregator", s.agg.Ready["quic"], "--ca", s.agg.Ready["ca"], "--log-level", "warn")
	if err != nil {
		return err
	}
	s.agentURL, s.agentID = s.agent.Ready["agent"], s.agent.Ready["agent_id"]
	if s.agentURL == "" || s.agentID == "" {
		return fmt.Errorf("bench: agent ready line %v lacks agent or agent_id", s.agent.Ready)
	}
	return s.waitAgentReady(ctx)
}

// agentReadyTimeout bounds the wait for the agent's first config and salts.
const agentReadyTimeout = 60 * time.Second

func (s *stack) waitAgentReady(ctx context.Context) error {
	if err := apptest.WaitReady(ctx, s.agentURL+"/readyz", agentReadyTimeout); err != nil {
		return fmt.Errorf("bench: %w; log %s:\n%s", err, s.agent.LogPath(), apptest.Tail(s.agent.LogPath()))
	}
	return nil
}

// close stops agent, aggregator and PostgreSQL (in that order) and drops
// the run's database on a server the harness does not manage.
func (s *stack) close(ctx context.Context) {
	var errs []error
	if s.agent != nil {
		errs = append(errs, s.agent.Stop(stopTimeout))
	}
	if s.agg != nil {
		errs = append(errs, s.agg.Stop(stopTimeout))
	}
	if s.db != nil {
		s.db.Close()
	}
	if s.store != nil {
		s.store.Close()
	}
	if s.pg != nil {
		errs = append(errs, s.pg.Stop(ctx))
	} else if s.dbName != "" && s.serverURL != "" {
		errs = append(errs, pgserver.DropDatabase(ctx, s.serverURL, s.dbName))
	}
	if err := errors.Join(errs...); err != nil {
		s.log.Warn("shutting the stack down", "err", err)
	}
}
