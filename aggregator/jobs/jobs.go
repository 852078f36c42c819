package jobs

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"
)

// Store is what the jobs need from storage (storage/postgres.Store).
type Store interface {
	EnsurePartitions(ctx context.Context, from, to time.Time) error
	EnsureSalts(ctx context.Context, now time.Time) error
	PackRollups(ctx context.Context, now time.Time) error
	PackEvents(ctx context.Context, now time.Time) (int, error)
	PackItems(ctx context.Context, now time.Time) (int, error)
	AnalyzeFresh(ctx context.Context) (int, error)
}

// Options configures the jobs. Zero values take the defaults.
type Options struct {
	Logger   *slog.Logger
	Now      func() time.Time // clock; time.Now by default
	Interval time.Duration    // between runs; default 1 minute
	// Lock, when set, makes the jobs cluster singletons: only the node
	// holding the leader lock runs them periodically, and no two runs
	// overlap (see NewAdvisoryLock). Nil runs them unconditionally.
	Lock Lock
	// LeaderRetry is how often a node that does not lead tries to take
	// over; default min(Interval, 10s). It bounds how long the jobs pause
	// after the leader dies.
	LeaderRetry time.Duration
	// Tracer makes a span per job run, parent of its database spans; nil:
	// no spans.
	Tracer trace.Tracer
	// Retention, when set, runs with the jobs: it removes what is past
	// each site's retention (aggregator/governance.Retainer.Run).
	Retention func(ctx context.Context, now time.Time) error
}

// partitionsAhead is how many days after today get partitions in advance, so
// writes never wait for one and a node down for a while still finds them.
const partitionsAhead = 3

const defaultLeaderRetry = 10 * time.Second

// Jobs runs the upkeep jobs.
type Jobs struct {
	opts  Options
	store Store
}

// New returns the jobs over store.
func New(opts Options, store Store) *Jobs {
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Interval <= 0 {
		opts.Interval = time.Minute
	}
	if opts.LeaderRetry <= 0 {
		opts.LeaderRetry = min(opts.Interval, defaultLeaderRetry)
	}
	if opts.Tracer == nil {
		opts.Tracer = noop.NewTracerProvider().Tracer("")
	}
	return &Jobs{opts: opts, store: store}
}

// RunOnce runs every job once and returns their errors joined. With a Lock
// it first waits for a run in progress on another node to end, so a node
// starting up can rely on the jobs' results whoever leads.
func (j *Jobs) RunOnce(ctx context.Context) error {
	if j.opts.Lock == nil {
		return j.runAll(ctx)
	}
	return j.opts.Lock.Exclusive(ctx, j.runAll)
}

func (j *Jobs) runAll(ctx context.Context) error {
	now := j.opts.Now().UTC()
	var errs []error
	if err := j.traced(ctx, "jobs.partitions", func(ctx context.Context) error {
		return j.store.EnsurePartitions(ctx, now.AddDate(0, 0, -1), now.AddDate(0, 0, partitionsAhead))
	}); err != nil {
		errs = append(errs, fmt.Errorf("jobs: partitions: %w", err))
	}
	if err := j.traced(ctx, "jobs.salts", func(ctx context.Context) error { return j.store.EnsureSalts(ctx, now) }); err != nil {
		errs = append(errs, fmt.Errorf("jobs: salts: %w", err))
	}
	if err := j.traced(ctx, "jobs.analyze", func(ctx context.Context) error {
		n, err := j.store.AnalyzeFresh(ctx)
		if n > 0 {
			j.opts.Logger.Info("partitions analyzed for the first time", "partitions", n)
		}
		return err
	}); err != nil {
		errs = append(errs, fmt.Errorf("jobs: analyze: %w: %w", ErrDeferrable, err))
	}
	if err := j.traced(ctx, "jobs.pack_rollups", func(ctx context.Context) error { return j.store.PackRollups(ctx, now) }); err != nil {
		errs = append(errs, fmt.Errorf("jobs: pack rollups: %w: %w", ErrDeferrable, err))
	}
	if err := j.traced(ctx, "jobs.pack_events", func(ctx context.Context) error {
		days, err := j.store.PackEvents(ctx, now)
		if days > 0 {
			j.opts.Logger.Info("settled days' events packed", "days", days)
		}
		return err
	}); err != nil {
		errs = append(errs, fmt.Errorf("jobs: pack events: %w: %w", ErrDeferrable, err))
	}
	if err := j.traced(ctx, "jobs.pack_items", func(ctx context.Context) error {
		days, err := j.store.PackItems(ctx, now)
		if days > 0 {
			j.opts.Logger.Info("settled days' item rows packed", "days", days)
		}
		return err
	}); err != nil {
		errs = append(errs, fmt.Errorf("jobs: pack items: %w: %w", ErrDeferrable, err))
	}
	if j.opts.Retention != nil {
		if err := j.traced(ctx, "jobs.retention", func(ctx context.Context) error { return j.opts.Retention(ctx, now) }); err != nil {
			errs = append(errs, fmt.Errorf("jobs: retention: %w: %w", ErrDeferrable, err))
		}
	}
	return errors.Join(errs...)
}

// ErrDeferrable marks the failures of jobs that only save space (packing,
// retention) or refresh the planner's statistics: what they leave undone
// waits for the next run, and reports are right in the meantime.
var ErrDeferrable = errors.New("deferrable job")

// OnlyDeferrable reports whether every failure err (from RunOnce) joins is of
// a deferrable job, so a node may start and serve all the same.
func OnlyDeferrable(err error) bool {
	if err == nil {
		return false
	}
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		for _, e := range j.Unwrap() {
			if !errors.Is(e, ErrDeferrable) {
				return false
			}
		}
		return true
	}
	return errors.Is(err, ErrDeferrable)
}

// traced runs one job in a span named name.
func (j *Jobs) traced(ctx context.Context, name string, job func(context.Context) error) error {
	ctx, span := j.opts.Tracer.Start(ctx, name)
	defer span.End()
	err := job(ctx)
	if err != nil {
		span.SetStatus(codes.Error, err.Error())
	}
	return err
}

// Run runs the jobs every Interval until ctx is done. Failures are logged
// and retried at the next tick: the work is a day ahead of need. With a
// Lock only the leader runs them; the others try to take over every
// LeaderRetry, and the leader gives the lock up when ctx ends.
func (j *Jobs) Run(ctx context.Context) {
	if j.opts.Lock != nil {
		defer j.opts.Lock.Release(context.WithoutCancel(ctx))
	}
	leading := false
	wait := j.opts.Interval
	for {
		if !sleep(ctx, wait) {
			return
		}
		wait = j.opts.Interval
		if j.opts.Lock != nil {
			lead, err := j.opts.Lock.Lead(ctx)
			if ctx.Err() != nil {
				return
			}
			if err != nil {
				j.opts.Logger.Warn("upkeep jobs: leader lock failed, retrying", "err", err)
			}
			if lead != leading {
				leading = lead
				if lead {
					j.opts.Logger.Info("this node now runs the singleton upkeep jobs")
				} else {
					j.opts.Logger.Warn("this node lost the upkeep jobs' leader lock; another node takes over")
				}
			}
			if !lead {
				wait = j.opts.LeaderRetry
				continue
			}
		}
		if err := j.RunOnce(ctx); err != nil && ctx.Err() == nil {
			j.opts.Logger.Warn("upkeep jobs failed, retrying next interval", "interval", j.opts.Interval, "err", err)
		}
	}
}

// sleep waits d or until ctx is done; false means ctx is done.
func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}
