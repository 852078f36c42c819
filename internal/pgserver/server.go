package pgserver

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"time"

	"github.com/avila-analytics/avila/internal/freeport"
	"github.com/jackc/pgx/v5"
)

// startTimeout bounds pg_ctl's wait for the server to accept connections.
const startTimeout = 60 * time.Second

// Options configure a managed server.
type Options struct {
	Dir    string       // data directory; initdb runs when it holds no cluster yet
	Port   int          // TCP port on 127.0.0.1; 0 picks a free one
	Logger *slog.Logger // nil: discard
	// NoFsync turns fsync off: for throwaway test servers only. Commits still
	// reach the operating system before they return, so a killed server
	// loses nothing; a machine crash could.
	NoFsync bool
	// Settings are server settings as name=value, each given to the
	// server with -c, e.g. IngestSettings.
	Settings []string
}

// IngestSettings are the settings the product recommends for a server that
// takes ingestion (README, "PostgreSQL settings"), as `avila demo` and
// `make bench` run their managed servers. Ingestion writes write-ahead log
// fast: with the defaults (max_wal_size 1GB, min_wal_size 80MB) a busy
// server starts checkpoints often, after each of which the first change
// of each page logs the whole page, and the segments a checkpoint removes
// are made again, zero-filled, by the commits after it.
var IngestSettings = []string{"max_wal_size=4GB", "min_wal_size=1GB"}

// settingRE is what Options.Settings accepts: pg_ctl hands its -o string
// to a shell, so a value is one word without quotes.
var settingRE = regexp.MustCompile(`^[a-z_][a-z0-9_.]*=[A-Za-z0-9_.:/+-]+$`)

// Server is a running (or stopped) managed PostgreSQL.
type Server struct {
	opts Options
	bin  string
	as   *runAs
	log  *slog.Logger
}

// Start creates the cluster if needed and starts the server, waiting until
// it accepts connections. A server left running by a killed earlier process
// on the same directory is stopped first.
func Start(ctx context.Context, opts Options) (*Server, error) {
	if opts.Dir == "" {
		return nil, errors.New("pgserver: Options.Dir is required")
	}
	dir, err := filepath.Abs(opts.Dir)
	if err != nil {
		return nil, fmt.Errorf("pgserver: %w", err)
	}
	opts.Dir = dir
	for _, set := range opts.Settings {
		if !settingRE.MatchString(set) {
			return nil, fmt.Errorf("pgserver: setting %q is not name=value with a value of letters, digits and _.:/+-", set)
		}
	}
	s := &Server{opts: opts, log: opts.Logger}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	if s.bin, err = findBinDir(); err != nil {
		return nil, fmt.Errorf("pgserver: %w", err)
	}
	if s.as, err = serverUser(); err != nil {
		return nil, fmt.Errorf("pgserver: %w", err)
	}
	if s.opts.Port == 0 {
		if s.opts.Port, err = freePort(); err != nil {
			return nil, err
		}
	}
	if err := s.initdb(ctx); err != nil {
		return nil, err
	}
	if s.running(ctx) {
		s.log.Warn("a PostgreSQL server was left running on the data directory; stopping it", "dir", dir)
		if err := s.stop(ctx, "fast"); err != nil {
			return nil, err
		}
	}
	if err := s.Start(ctx); err != nil {
		return nil, err
	}
	return s, nil
}

func (s *Server) initdb(ctx context.Context) error {
	if _, err := os.Stat(filepath.Join(s.opts.Dir, "PG_VERSION")); err == nil {
		return nil
	}
	if err := s.as.prepareDir(s.opts.Dir); err != nil {
		return err
	}
	args := []string{"-D", s.opts.Dir, "-U", "postgres", "--auth=trust", "-E", "UTF8", "--locale=C"}
	if s.opts.NoFsync {
		args = append(args, "--no-sync")
	}
	s.log.Info("creating PostgreSQL cluster", "dir", s.opts.Dir)
	cmd := s.as.command(filepath.Join(s.bin, "initdb"), args...)
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("pgserver: initdb %s: %w: %s", s.opts.Dir, err, trimOutput(out))
	}
	return ctx.Err()
}

// Start starts the server again after Stop or StopImmediate.
func (s *Server) Start(ctx context.Context) error {
	o := fmt.Sprintf("-c listen_addresses=127.0.0.1 -c port=%d -c unix_socket_directories='' -c max_connections=300", s.opts.Port)
	if s.opts.NoFsync {
		o += " -c fsync=off -c full_page_writes=off"
	}
	for _, set := range s.opts.Settings {
		o += " -c " + set
	}
	cmd := s.as.command(filepath.Join(s.bin, "pg_ctl"), "start", "-w", "-t", strconv.Itoa(int(startTimeout/time.Second)),
		"-D", s.opts.Dir, "-l", filepath.Join(s.opts.Dir, "server.log"), "-o", o)
	if out, err := cmd.CombinedOutput(); err != nil {
		log, _ := os.ReadFile(filepath.Join(s.opts.Dir, "server.log"))
		return fmt.Errorf("pgserver: start on port %d: %w: %s\nserver log: %s", s.opts.Port, err, trimOutput(out), trimOutput(log))
	}
	s.log.Info("PostgreSQL started", "port", s.opts.Port, "dir", s.opts.Dir)
	return ctx.Err()
}

// Stop shuts the server down cleanly (pg_ctl -m fast).
func (s *Server) Stop(ctx context.Context) error { return s.stop(ctx, "fast") }

// StopImmediate stops the server the way a crash would (pg_ctl -m
// immediate): no checkpoint, recovery from the WAL at the next start.
func (s *Server) StopImmediate(ctx context.Context) error { return s.stop(ctx, "immediate") }

func (s *Server) stop(ctx context.Context, mode string) error {
	cmd := s.as.command(filepath.Join(s.bin, "pg_ctl"), "stop", "-w", "-m", mode, "-D", s.opts.Dir)
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("pgserver: stop (%s) %s: %w: %s", mode, s.opts.Dir, err, trimOutput(out))
	}
	s.log.Info("PostgreSQL stopped", "mode", mode, "dir", s.opts.Dir)
	return ctx.Err()
}

// running reports whether pg_ctl finds a live server on the data directory.
func (s *Server) running(ctx context.Context) bool {
	cmd := s.as.command(filepath.Join(s.bin, "pg_ctl"), "status", "-D", s.opts.Dir)
	return cmd.Run() == nil && ctx.Err() == nil
}

// Port is the server's TCP port on 127.0.0.1.
func (s *Server) Port() int { return s.opts.Port }

// URL is the connection URL of the server's "postgres" database.
func (s *Server) URL() string { return s.databaseURL("postgres") }

func (s *Server) databaseURL(name string) string {
	u := url.URL{Scheme: "postgres", User: url.User("postgres"), Host: net.JoinHostPort("127.0.0.1", strconv.Itoa(s.opts.Port)),
		Path: "/" + name, RawQuery: "sslmode=disable"}
	return u.String()
}

// CreateDatabase creates a database (when missing) and returns its URL.
func (s *Server) CreateDatabase(ctx context.Context, name string) (string, error) {
	if err := CreateDatabase(ctx, s.URL(), name); err != nil {
		return "", err
	}
	return s.databaseURL(name), nil
}

// CreateDatabase creates database name on the server serverURL points at,
// unless it exists.
func CreateDatabase(ctx context.Context, serverURL, name string) error {
	conn, err := pgx.Connect(ctx, serverURL)
	if err != nil {
		return fmt.Errorf("pgserver: connect to create database %s: %w", name, err)
	}
	defer conn.Close(ctx)
	var exists bool
	if err := conn.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)`, name).Scan(&exists); err != nil {
		return fmt.Errorf("pgserver: look up database %s: %w", name, err)
	}
	if exists {
		return nil
	}
	if _, err := conn.Exec(ctx, "CREATE DATABASE "+pgx.Identifier{name}.Sanitize()); err != nil {
		return fmt.Errorf("pgserver: create database %s: %w", name, err)
	}
	return nil
}

// DropDatabase drops database name, disconnecting its sessions.
func DropDatabase(ctx context.Context, serverURL, name string) error {
	conn, err := pgx.Connect(ctx, serverURL)
	if err != nil {
		return fmt.Errorf("pgserver: connect to drop database %s: %w", name, err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, "DROP DATABASE IF EXISTS "+pgx.Identifier{name}.Sanitize()+" WITH (FORCE)"); err != nil {
		return fmt.Errorf("pgserver: drop database %s: %w", name, err)
	}
	return nil
}

// freePort returns a free TCP port on 127.0.0.1, below the ephemeral range
// so that no outgoing connection takes it before the server binds it.
func freePort() (int, error) {
	port, err := freeport.Port()
	if err != nil {
		return 0, fmt.Errorf("pgserver: find a free port: %w", err)
	}
	return port, nil
}

// StartReplica makes a streaming standby of primary in opts.Dir with
// pg_basebackup (-R writes the connection to the primary into the standby's
// settings) and starts it. A directory that already holds a cluster is
// started as it is. The primary's default settings allow it: wal_level
// replica, max_wal_senders 10 and trust for replication from 127.0.0.1.
func StartReplica(ctx context.Context, primary *Server, opts Options) (*Server, error) {
	if opts.Dir == "" {
		return nil, errors.New("pgserver: Options.Dir is required")
	}
	dir, err := filepath.Abs(opts.Dir)
	if err != nil {
		return nil, fmt.Errorf("pgserver: %w", err)
	}
	opts.Dir = dir
	s := &Server{opts: opts, bin: primary.bin, as: primary.as, log: opts.Logger}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	if s.opts.Port == 0 {
		if s.opts.Port, err = freePort(); err != nil {
			return nil, err
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "PG_VERSION")); err != nil {
		if err := s.as.prepareDir(dir); err != nil {
			return nil, err
		}
		s.log.Info("copying the primary into a standby", "dir", dir, "primary_port", primary.Port())
		cmd := s.as.command(filepath.Join(s.bin, "pg_basebackup"), "-h", "127.0.0.1", "-p", strconv.Itoa(primary.Port()),
			"-U", "postgres", "-D", dir, "-R", "-X", "stream", "-c", "fast")
		if out, err := cmd.CombinedOutput(); err != nil {
			return nil, fmt.Errorf("pgserver: pg_basebackup of port %d into %s: %w: %s", primary.Port(), dir, err, trimOutput(out))
		}
	}
	if err := s.Start(ctx); err != nil {
		return nil, err
	}
	return s, nil
}
