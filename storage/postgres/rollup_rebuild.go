package postgres

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
)

// RebuildRollups recomputes a site's rollups from its events (rollup_packs
// for closed days, rollup_days for today and yesterday) and
// marks its rollups complete from its first day on, for events that reached
// the events table without the write stage (bulk loads, imports) and for sites
// created before rollups existed. It runs in one transaction holding the
// site's row lock, which a derivation waits for, so no event is counted twice
// or missed; derivations of the site wait until it commits. Memory stays
// bounded: one local day of events is aggregated at a time.
func (s *Store) RebuildRollups(ctx context.Context, site uint32) error {
	tx, err := s.Pool.Begin(ctx)
	if err != nil {
		return fmt.Errorf("postgres: rebuild rollups of site %d: begin: %w", site, err)
	}
	defer tx.Rollback(context.WithoutCancel(ctx)) // no-op after Commit
	if err := rebuildRollups(ctx, tx, int32(site)); err != nil {
		return fmt.Errorf("postgres: rebuild rollups of site %d: %w", site, err)
	}
	if err := tx.Commit(ctx); err != nil {
		return fmt.Errorf("postgres: rebuild rollups of site %d: commit: %w", site, err)
	}
	return nil
}

func rebuildRollups(ctx context.Context, tx pgx.Tx, site int32) error {
	loc, err := lockSite(ctx, tx, site)
	if err != nil {
		return err
	}
	for _, table := range []string{"rollup_days", "rollup_packs"} {
		if _, err := tx.Exec(ctx, "DELETE FROM "+table+" WHERE site_id = $1", site); err != nil {
			return fmt.Errorf("delete rollups: %w", err)
		}
	}
	packBefore := packedBefore(time.Now(), loc)
	var first, last *time.Time
	if err := tx.QueryRow(ctx, `SELECT min(lo), max(hi) FROM (
		SELECT min(ts) AS lo, max(ts) AS hi FROM events WHERE site_id = $1
		UNION ALL
		SELECT min(day)::timestamp AT TIME ZONE 'UTC', (max(day) + 1)::timestamp AT TIME ZONE 'UTC' - interval '1 microsecond'
		FROM event_packs WHERE site_id = $1) s`, site).Scan(&first, &last); err != nil {
		return fmt.Errorf("event span: %w", err)
	}
	pageView, err := pageViewID(ctx, tx, site)
	if err != nil {
		return err
	}
	if first != nil && last != nil {
		y, m, d := first.In(loc).Date()
		for day := time.Date(y, m, d, 0, 0, 0, 0, loc); !day.After(*last); day = day.AddDate(0, 0, 1) {
			if err := rebuildDay(ctx, tx, site, loc, pageView, day, day.AddDate(0, 0, 1), packBefore); err != nil {
				return err
			}
		}
	}
	if _, err := tx.Exec(ctx, "UPDATE sites SET rollups_from = '-infinity', hour_rollups_from = '-infinity' WHERE id = $1", site); err != nil {
		return fmt.Errorf("mark complete: %w", err)
	}
	return nil
}

// lockSite locks the site's row FOR UPDATE, which batches of the site
// (siteZones, FOR SHARE) wait for, and returns its time zone; ErrNotFound
// without a row.
func lockSite(ctx context.Context, tx pgx.Tx, site int32) (*time.Location, error) {
	var zone string
	err := tx.QueryRow(ctx, "SELECT time_zone FROM sites WHERE id = $1 FOR UPDATE", site).Scan(&zone)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("lock site: %w", err)
	}
	loc, err := time.LoadLocation(zone)
	if err != nil {
		return nil, fmt.Errorf("time zone %q: %w", zone, err)
	}
	return loc, nil
}

// rebuildDay aggregates the site's events in [lo, hi) (one local day) into
// rollup rows, packed when the day is before packBefore.
func rebuildDay(ctx context.Context, tx pgx.Tx, site int32, loc *time.Location, pageView int32, lo, hi, packBefore time.Time) error {
	agg := make(rollupAgg)
	if err := aggregateRollups(ctx, tx, agg, loc, pageView,
		rollupEventsSQL(EventsIn("$1", "$2", "$3", rollupEventColumns()), "e.ts >= $2 AND e.ts < $3"), site, lo, hi); err != nil {
		return fmt.Errorf("read events of %s: %w", lo.Format(time.DateOnly), err)
	}
	if len(agg) == 0 {
		return nil
	}
	if y, m, d := lo.Date(); time.Date(y, m, d, 0, 0, 0, 0, time.UTC).Before(packBefore) {
		packs, err := agg.packs(site)
		if err != nil {
			return fmt.Errorf("pack rollups of %s: %w", lo.Format(time.DateOnly), err)
		}
		if err := writePacks(ctx, tx, site, packs); err != nil {
			return fmt.Errorf("pack rollups of %s: %w", lo.Format(time.DateOnly), err)
		}
		return nil
	}
	if err := agg.store(ctx, tx); err != nil {
		return fmt.Errorf("store rollups of %s: %w", lo.Format(time.DateOnly), err)
	}
	return nil
}

// rollupEventColumns are the events columns rollups count: EventsIn's
// columns for rollupEventsSQL.
func rollupEventColumns() []string {
	cols := []string{"site_id", "ts", "visitor_id", "engagement_ms", "flags"}
	for _, k := range RollupKinds {
		if ProfileOf(k) == nil {
			cols = append(cols, DimColumns[k])
		}
	}
	for _, p := range Profiles {
		cols = append(cols, p.Column)
	}
	return cols
}

// rollupDimExpr is the SQL expression of kind's dims id in rollupEventsSQL
// (kind 0 and RollupHour have none: "").
func rollupDimExpr(kind DimKind) string {
	if p := ProfileOf(kind); p != nil {
		return "COALESCE(" + p.Table + "." + RollupColumns[kind] + ", 0)"
	}
	if _, ok := RollupColumns[kind]; ok {
		return "e." + RollupColumns[kind]
	}
	return ""
}

// rollupEventsSQL selects what rollups count of the events of src (an
// EventsIn-like subquery with rollupEventColumns; $1 is the site) that meet
// where, joined to their profiles: the one reader of events for rollups,
// whether a day is rebuilt or an erasure corrects it (aggregateRollups).
func rollupEventsSQL(src, where string) string {
	cols := make([]string, len(RollupKinds))
	for i, k := range RollupKinds {
		cols[i] = rollupDimExpr(k)
	}
	return "SELECT e.ts, e.visitor_id, e.engagement_ms, e.flags, " + strings.Join(cols, ", ") +
		" FROM " + src + " e" + profileJoins() + " WHERE e.site_id = $1 AND " + where
}

// aggregateRollups adds the events that query (rollupEventsSQL) selects
// to agg, each visitor into the sketches at once (as a rebuild does).
func aggregateRollups(ctx context.Context, tx pgx.Tx, agg rollupAgg, loc *time.Location, pageView int32, query string, site int32, args ...any) error {
	rows, err := tx.Query(ctx, query, append([]any{site}, args...)...)
	if err != nil {
		return err
	}
	defer rows.Close()
	hours := &hourCache{loc: loc}
	r := EventRow{Site: site}
	dims := make([]int32, len(RollupKinds))
	nameAt := slices.Index(RollupKinds, DimEventName)
	dest := []any{&r.TS, &r.Visitor, &r.Engage, &r.Flags}
	for i := range dims {
		dest = append(dest, &dims[i])
	}
	for rows.Next() {
		if err := rows.Scan(dest...); err != nil {
			return err
		}
		for i, k := range RollupKinds {
			r.Dims[k-1] = dims[i]
		}
		r.PageView = pageView != 0 && dims[nameAt] == pageView
		agg.add(&r, hours, false)
	}
	return rows.Err()
}

// pageViewID is the site's dims id of page_view (0: none yet).
func pageViewID(ctx context.Context, tx pgx.Tx, site int32) (int32, error) {
	var id int32
	err := tx.QueryRow(ctx, "SELECT id FROM dims WHERE site_id = $1 AND kind = $2 AND value = $3", site, DimEventName, pageViewName).Scan(&id)
	if err != nil && !errors.Is(err, pgx.ErrNoRows) {
		return 0, fmt.Errorf("page_view id: %w", err)
	}
	return id, nil
}

// profileJoins joins events "e" to every profile table, aliased by its name.
func profileJoins() string {
	var b strings.Builder
	for _, p := range Profiles {
		b.WriteString(" LEFT JOIN " + p.Table + " ON " + p.Table + ".id = e." + p.Column)
	}
	return b.String()
}
