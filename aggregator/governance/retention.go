package governance

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/avila-analytics/avila/storage/postgres"
)

// DefaultRetentionEvery is how often the upkeep runs retention: often
// enough that a day goes within the hour after it passed a site's bound.
const DefaultRetentionEvery = time.Hour

// Retainer is the upkeep's retention job: RunRetention at most every Every,
// counted in Metrics, and expired tombstones cleared.
type Retainer struct {
	Store   *postgres.Store
	Metrics *Metrics
	Log     *slog.Logger
	Every   time.Duration // 0: DefaultRetentionEvery

	last time.Time // the last run that succeeded; jobs run it from one goroutine
}

// Run applies every site's retention at now, unless a run succeeded less
// than Every before.
func (r *Retainer) Run(ctx context.Context, now time.Time) error {
	every := r.Every
	if every <= 0 {
		every = DefaultRetentionEvery
	}
	if !r.last.IsZero() && now.Sub(r.last) < every {
		return nil
	}
	run, err := r.Store.RunRetention(ctx, now, false, "aggregator")
	r.Metrics.Retained(run)
	if err != nil {
		return fmt.Errorf("governance: retention: %w", err)
	}
	if _, err := r.Store.ExpireTombstones(ctx); err != nil {
		return fmt.Errorf("governance: retention: %w", err)
	}
	r.last = now
	log := r.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	for _, s := range run.Sites {
		if s.Events+s.Sessions+s.RollupRows+s.SessionRollups > 0 {
			log.Info("retention removed data", "site", s.Site, "events", s.Events, "sessions", s.Sessions,
				"rollup_rows", s.RollupRows, "session_rollups", s.SessionRollups)
		}
	}
	if len(run.Partitions) > 0 {
		log.Info("retention dropped partitions", "partitions", run.Partitions)
	}
	return nil
}
