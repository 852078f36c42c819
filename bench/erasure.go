package bench

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/avila-analytics/avila/aggregator/governance"
)

// erasureSubjects is how many subjects the erasure figure erases; it
// reports their median.
const erasureSubjects = 5

// erasures erases a few typical subjects of the dashboard site (a visitor
// with a session of 3 to 12 events on a packed day, 5 to 20 days ago) the
// way `avila gdpr erase` does, and records the median time: events rows
// deleted and the subject's slices cut out of its packs, sessions deleted,
// the rollup and session rollup cells it touched corrected, tombstone and
// audit row, one transaction each.
func (r *run) erasures(ctx context.Context, ds dataset) error {
	site := r.st.sites[siteDashboard]
	now := time.Now()
	rows, err := r.st.db.Query(ctx, `SELECT visitor_id, events FROM sessions
		WHERE site_id = $1 AND ts >= $2 AND ts < $3 AND events BETWEEN 3 AND 12
		ORDER BY ts LIMIT $4`, int32(site.ID), now.AddDate(0, 0, -20), now.AddDate(0, 0, -5), erasureSubjects)
	if err != nil {
		return fmt.Errorf("bench: erasure subjects: %w", err)
	}
	type subject struct {
		Visitor int64
		Events  int32
	}
	subjects, err := pgx.CollectRows(rows, pgx.RowToStructByPos[subject])
	if err != nil {
		return fmt.Errorf("bench: erasure subjects: %w", err)
	}
	if len(subjects) == 0 {
		return fmt.Errorf("bench: erasure: no session of 3 to 12 events 5 to 20 days ago on site %d", site.ID)
	}
	svc := &governance.Service{Store: r.st.store}
	var took []float64
	for _, s := range subjects {
		start := time.Now()
		out, err := svc.Erase(ctx, governance.Subject{Site: site.ID, Identity: governance.ClientID, Key: uint64(s.Visitor)}, "bench")
		if err != nil {
			return fmt.Errorf("bench: %w", err)
		}
		d := time.Since(start)
		took = append(took, ms(d))
		steps := make([]any, 0, 2*len(out.Steps))
		for k, v := range out.Steps {
			steps = append(steps, k+"_ms", ms(v))
		}
		r.log.Info("erasure", append([]any{"events", ds.events, "subject_events", out.Events, "sessions", out.Sessions,
			"rollup_days", len(out.RollupDays), "pack_rows", out.PackRows, "sketches_kept", out.Sketches.Kept,
			"sketches_sparse", out.Sketches.Sparse, "sketches_dense", out.Sketches.Dense, "sketches_recomputed", out.Sketches.Recomputed,
			"ms", ms(d)}, steps...)...)
	}
	r.set("gdpr_erase_ms_"+ds.key, Percentile(took, 50))
	return nil
}
