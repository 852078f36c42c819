package jobs

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"
)

// Store is what the jobs need from storage (storage/postgres.Store).
type Store interface {
	EnsurePartitions(ctx context.Context, from, to time.Time) error
	EnsureSalts(ctx context.Context, now time.Time) error
}

// Options configures the jobs. Zero values take the defaults.
type Options struct {
	Logger   *slog.Logger
	Now      func() time.Time // clock; time.Now by default
	Interval time.Duration    // between runs; default 1 minute
}

// partitionsAhead is how many days after today get partitions in advance, so
// writes never wait for one and a node down for a while still finds them.
const partitionsAhead = 3

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
	return &Jobs{opts: opts, store: store}
}

// RunOnce runs every job once and returns their errors joined.
func (j *Jobs) RunOnce(ctx context.Context) error {
	now := j.opts.Now().UTC()
	var errs []error
	if err := j.store.EnsurePartitions(ctx, now.AddDate(0, 0, -1), now.AddDate(0, 0, partitionsAhead)); err != nil {
		errs = append(errs, fmt.Errorf("jobs: partitions: %w", err))
	}
	if err := j.store.EnsureSalts(ctx, now); err != nil {
		errs = append(errs, fmt.Errorf("jobs: salts: %w", err))
	}
	return errors.Join(errs...)
}

// Run runs the jobs every Interval until ctx is done. Failures are logged
// and retried at the next tick: the work is a day ahead of need.
func (j *Jobs) Run(ctx context.Context) {
	t := time.NewTicker(j.opts.Interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if err := j.RunOnce(ctx); err != nil && ctx.Err() == nil {
				j.opts.Logger.Warn("upkeep jobs failed, retrying next interval", "interval", j.opts.Interval, "err", err)
			}
		}
	}
}
