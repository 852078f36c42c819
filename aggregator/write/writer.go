package write

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/avila-analytics/avila/internal/logthrottle"
	"github.com/avila-analytics/avila/protocol"
	"github.com/avila-analytics/avila/storage/postgres"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"
)

// Defaults of Config.
const (
	defaultEvery     = 250 * time.Millisecond
	defaultMaxEvents = 100_000
	// maxStagedRows bounds the staged rows (batch shares) one derivation
	// takes, whatever their size.
	maxStagedRows = 1000
	logEvery      = 10 * time.Second
)

// Config configures a Writer.
type Config struct {
	Logger *slog.Logger
	// Every is how often Run looks for events staged by other nodes
	// (default 250 ms); batches staged by this Writer wake it at once.
	Every time.Duration
	// MaxEvents bounds the events one derivation transaction takes
	// (default 100 000).
	MaxEvents int
	// Derived, when set, runs after a derivation of site committed, with
	// the events it made visible (e.g. to invalidate cached reports).
	Derived func(ctx context.Context, site uint32, events []protocol.Event)
	// Tracer makes a span ("write.derive") per derivation; nil: none.
	Tracer trace.Tracer
}

// Writer is the write stage. Safe for concurrent use.
type Writer struct {
	cfg   Config
	log   *slog.Logger
	store *postgres.Store
	wake  chan struct{}

	// deriving makes this Writer's derivation rounds (Run's and Flush's)
	// take turns, so Flush returns only after a round in progress, its
	// Derived hooks included, has ended.
	deriving sync.Mutex

	mu    sync.Mutex
	sites map[uint32]*siteSessions // sessions of the sites this node derived last

	failLog logthrottle.Throttle
}

// New returns a write stage storing into store.
func New(cfg Config, store *postgres.Store) *Writer {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Every <= 0 {
		cfg.Every = defaultEvery
	}
	if cfg.MaxEvents <= 0 {
		cfg.MaxEvents = defaultMaxEvents
	}
	if cfg.Tracer == nil {
		cfg.Tracer = noop.NewTracerProvider().Tracer("")
	}
	return &Writer{cfg: cfg, log: cfg.Logger, store: store, wake: make(chan struct{}, 1),
		sites: make(map[uint32]*siteSessions), failLog: logthrottle.Throttle{Every: logEvery}}
}

// WriteBatch stages one validated batch exactly once (postgres.StageBatch):
// its events become visible to reports once a derivation took them.
func (w *Writer) WriteBatch(ctx context.Context, agentID string, seq uint64, events []protocol.Event, dead []postgres.DeadLetter) (postgres.StageResult, error) {
	res, err := w.store.StageBatch(ctx, agentID, seq, stage(events), dead)
	if err != nil {
		return res, fmt.Errorf("write: %w", err)
	}
	if res.Staged > 0 {
		select {
		case w.wake <- struct{}{}:
		default:
		}
	}
	return res, nil
}

// stage splits events by site, in order, and encodes each site's share
// as a wire batch (protocol.AppendEvent, as the agent does).
func stage(events []protocol.Event) []postgres.Staged {
	var sites []uint32
	by := make(map[uint32][]protocol.Event)
	for i := range events {
		s := events[i].Site
		if _, ok := by[s]; !ok {
			sites = append(sites, s)
		}
		by[s] = append(by[s], events[i])
	}
	out := make([]postgres.Staged, 0, len(sites))
	var plain []byte
	for _, s := range sites {
		// The envelope is not read back; it only has to be valid.
		plain = protocol.AppendBatchHead(plain[:0], "staged", 1, 0, len(by[s]))
		for i := range by[s] {
			plain = protocol.AppendEvent(plain, &by[s][i])
		}
		out = append(out, postgres.Staged{Site: s, Events: len(by[s]), Payload: protocol.CompressBatch(nil, plain)})
	}
	return out
}

// Run derives staged events until ctx ends: at once when this Writer
// staged a batch, else every Config.Every for batches other nodes staged.
// Errors are logged (rate-limited) and retried on the next round.
func (w *Writer) Run(ctx context.Context) {
	t := time.NewTicker(w.cfg.Every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-w.wake:
		case <-t.C:
		}
		if err := w.deriveAll(ctx, false); err != nil && ctx.Err() == nil {
			level := slog.LevelWarn
			if !postgres.IsTransient(err) {
				level = slog.LevelError
			}
			if n, ok := w.failLog.Allow(time.Now()); ok {
				w.log.Log(ctx, level, "derivation failed; staged events wait for the next round", "err", err, "suppressed", n)
			}
		}
	}
}

// Flush derives every event staged before it was called, waiting for
// derivations other nodes run meanwhile: afterwards reports see them.
func (w *Writer) Flush(ctx context.Context) error {
	return w.deriveAll(ctx, true)
}

// deriveAll derives the staged events of every site; without wait it skips
// the sites another transaction is deriving.
func (w *Writer) deriveAll(ctx context.Context, wait bool) error {
	w.deriving.Lock()
	defer w.deriving.Unlock()
	sites, err := w.store.StagedSites(ctx)
	if err != nil {
		return fmt.Errorf("write: %w", err)
	}
	// Round by round, one derivation per site each, so a busy site does
	// not hold the others back; until a round finds nothing left.
	var errs []error
	for len(sites) > 0 {
		busy := sites[:0]
		for _, site := range sites {
			n, err := w.deriveSite(ctx, site, wait)
			switch {
			case errors.Is(err, postgres.ErrSiteBusy): // another node derives it
			case err != nil:
				errs = append(errs, err)
			case n > 0:
				busy = append(busy, site)
			}
		}
		sites = busy
	}
	return errors.Join(errs...)
}
