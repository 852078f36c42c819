package postgres

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"math/rand/v2"
	"net"
	"strconv"
	"sync"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// ErrNotFound is returned when a site, key or other named row does not exist
// (or, for API keys, is revoked).
var ErrNotFound = errors.New("not found")

// ErrExists is returned when creating a row whose unique name is taken.
var ErrExists = errors.New("already exists")

// Store is the PostgreSQL store. Safe for concurrent use.
type Store struct {
	// pool holds the write stage's connections. It stays inside this
	// package: every other package reaches the tables through the
	// store's typed operations, and reports read through their own pool
	// (OpenReportPool, Replicas).
	pool *pgxpool.Pool
	log  *slog.Logger

	dims                              *dimCache
	dimAddrs                          *dimAddrs // guarded by dims.mu
	contents, clients, traffic, items *profileCache

	partMu sync.Mutex
	parts  map[int64]bool // UTC day (Unix days) → partition known to exist

	packMu     sync.Mutex
	packPart   int           // see SetPackPartEvents
	packBudget time.Duration // see SetPackBudget

	// node names this Store in derive_state: drawn at random when it
	// opens, so each process (and each Store of a test or the bench)
	// derives as a node of its own.
	node int64
}

// Open connects to databaseURL and checks the connection with a ping.
func Open(ctx context.Context, databaseURL string, log *slog.Logger) (*Store, error) {
	return OpenTraced(ctx, databaseURL, log, nil)
}

// OpenTraced is Open with tracer (nil: none) on every connection, so each
// query, batch and COPY can be traced.
func OpenTraced(ctx context.Context, databaseURL string, log *slog.Logger, tracer pgx.QueryTracer) (*Store, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	pool, err := connect(ctx, databaseURL, tracer)
	if err != nil {
		return nil, err
	}
	return &Store{
		pool:       pool,
		log:        log,
		dims:       newIDCache[dimKey](dimCacheSize),
		dimAddrs:   new(dimAddrs),
		contents:   newIDCache[profileKey](profileCacheSize),
		clients:    newIDCache[profileKey](profileCacheSize),
		traffic:    newIDCache[profileKey](profileCacheSize),
		items:      newIDCache[profileKey](profileCacheSize),
		parts:      make(map[int64]bool),
		packPart:   packPartEvents,
		packBudget: packEventsBudget,
		node:       rand.Int64N(math.MaxInt64) + 1,
	}, nil
}

// connect opens a pool on databaseURL and checks that the server answers.
func connect(ctx context.Context, databaseURL string, tracer pgx.QueryTracer) (*pgxpool.Pool, error) {
	return connectWith(ctx, databaseURL, tracer, PoolOptions{})
}

// connectWith is connect with the pool sized and bounded by o.
func connectWith(ctx context.Context, databaseURL string, tracer pgx.QueryTracer, o PoolOptions) (*pgxpool.Pool, error) {
	cfg, err := pgxpool.ParseConfig(databaseURL)
	if err != nil {
		return nil, fmt.Errorf("postgres: parse database url: %w", err)
	}
	o.apply(cfg)
	cfg.AfterConnect = func(_ context.Context, c *pgx.Conn) error {
		registerFlatArrays(c.TypeMap())
		return nil
	}
	if tracer != nil {
		cfg.ConnConfig.Tracer = tracer
	}
	addr := net.JoinHostPort(cfg.ConnConfig.Host, strconv.Itoa(int(cfg.ConnConfig.Port)))
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("postgres: connect %s: %w", addr, err)
	}
	if err := pool.Ping(ctx); err != nil {
		pool.Close()
		if errors.Is(err, syscall.ECONNREFUSED) {
			return nil, fmt.Errorf("postgres: connect %s: connection refused (is PostgreSQL running? set DATABASE_URL)", addr)
		}
		return nil, fmt.Errorf("postgres: connect %s: %w", addr, err)
	}
	return pool, nil
}

// Ping checks that the database answers.
func (s *Store) Ping(ctx context.Context) error {
	if err := s.pool.Ping(ctx); err != nil {
		return fmt.Errorf("postgres: ping: %w", err)
	}
	return nil
}

// Close closes all connections; in-flight calls should have returned first.
func (s *Store) Close() { s.pool.Close() }
