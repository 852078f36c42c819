package postgres

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
)

// Retention is how long a site keeps its data; 0 keeps it for ever.
type Retention struct {
	// EventsDays bounds raw events (events, event_packs): UTC days that
	// ended more than EventsDays days before today go.
	EventsDays int
	// AggregatesMonths bounds sessions and rollups (rollup_days,
	// rollup_packs, session_rollups): days before today's date that many
	// months back go, in the site's time zone (sessions by UTC day).
	AggregatesMonths int
}

// Default retention of a new site (migration 017's column defaults).
const (
	DefaultRetainEventsDays       = 400
	DefaultRetainAggregatesMonths = 26
)

// maxRetainEventsDays and maxRetainAggregatesMonths bound what a site may
// ask for (about 100 years), so a typo cannot overflow date arithmetic.
const (
	maxRetainEventsDays       = 36500
	maxRetainAggregatesMonths = 1200
)

// ErrBadRetention: a Retention value is out of range.
var ErrBadRetention = errors.New("bad retention")

func (r Retention) check() error {
	if r.EventsDays < 0 || r.EventsDays > maxRetainEventsDays {
		return fmt.Errorf("events retention %d days: want 0 (for ever) to %d: %w", r.EventsDays, maxRetainEventsDays, ErrBadRetention)
	}
	if r.AggregatesMonths < 0 || r.AggregatesMonths > maxRetainAggregatesMonths {
		return fmt.Errorf("aggregates retention %d months: want 0 (for ever) to %d: %w", r.AggregatesMonths, maxRetainAggregatesMonths, ErrBadRetention)
	}
	return nil
}

// SiteRetention returns a site's retention, or ErrNotFound.
func (s *Store) SiteRetention(ctx context.Context, site uint32) (Retention, error) {
	var r Retention
	err := s.pool.QueryRow(ctx, "SELECT retain_events_days, retain_aggregates_months FROM sites WHERE id = $1", int32(site)).
		Scan(&r.EventsDays, &r.AggregatesMonths)
	if errors.Is(err, pgx.ErrNoRows) {
		return r, fmt.Errorf("postgres: site %d retention: %w", site, ErrNotFound)
	}
	if err != nil {
		return r, fmt.Errorf("postgres: site %d retention: %w", site, err)
	}
	return r, nil
}

// SetSiteRetention sets a site's retention; the next retention run applies
// it. ErrNotFound for an unknown site, ErrBadRetention for a value out of
// range.
func (s *Store) SetSiteRetention(ctx context.Context, site uint32, r Retention) error {
	if err := r.check(); err != nil {
		return fmt.Errorf("postgres: site %d retention: %w", site, err)
	}
	tag, err := s.pool.Exec(ctx, "UPDATE sites SET retain_events_days = $2, retain_aggregates_months = $3 WHERE id = $1",
		int32(site), r.EventsDays, r.AggregatesMonths)
	if err != nil {
		return fmt.Errorf("postgres: site %d retention: %w", site, err)
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("postgres: site %d retention: %w", site, ErrNotFound)
	}
	return nil
}

// SiteRetained is what one retention run removed (or, dry, would remove)
// of one site.
type SiteRetained struct {
	Site             uint32
	Retention        Retention
	EventsBefore     time.Time // raw events with ts before this go (zero: kept for ever)
	AggregatesBefore time.Time // local day: rollups of days before it go, sessions starting before it (UTC day)
	Events           int64     // events rows and packed events
	EventPacks       int64     // event_packs rows
	Items            int64     // event_items rows and packed items
	ItemPacks        int64     // item_packs rows
	Sessions         int64
	RollupRows       int64 // rollup_days and rollup_packs rows
	SessionRollups   int64 // session_rollups rows
	// Quarantined counts the staged rows in quarantine (staged_quarantine)
	// staged before EventsBefore: their events would be past retention
	// once derived, and they hold personal data as events do.
	Quarantined int64
}

// RetentionRun is the outcome of RunRetention.
type RetentionRun struct {
	DryRun     bool
	Sites      []SiteRetained
	Partitions []string // events, event_items and sessions partitions dropped (or that would be)
}

// retentionLockKey makes retention runs exclusive across processes
// ("avla_ret"): the jobs' leader and `avila retention run` never overlap.
const retentionLockKey = int64(0x61766c615f726574)

// RunRetention removes, per site, what is older than its retention: raw
// events rows and packs, sessions, rollups and session rollups, each site
// in one transaction holding its row lock (as a rebuild does: derivations of
// the site wait). Days whose rollups go are then read from whatever events
// remain (sites.rollups_from and session_rollups_from move past them), so a
// report over any range equals the same report over the data that remains.
// Partitions of days no site keeps any more are dropped whole. With dryRun
// it counts what would go and changes nothing. The run appends one audit
// row per site that lost data (actor names who ran it).
func (s *Store) RunRetention(ctx context.Context, now time.Time, dryRun bool, actor string) (RetentionRun, error) {
	run := RetentionRun{DryRun: dryRun}
	conn, err := s.pool.Acquire(ctx)
	if err != nil {
		return run, fmt.Errorf("postgres: retention: %w", err)
	}
	defer conn.Release()
	if _, err := conn.Exec(ctx, "SELECT pg_advisory_lock($1)", retentionLockKey); err != nil {
		return run, fmt.Errorf("postgres: retention: lock: %w", err)
	}
	defer func() {
		if _, err := conn.Exec(context.WithoutCancel(ctx), "SELECT pg_advisory_unlock($1)", retentionLockKey); err != nil {
			conn.Conn().Close(context.WithoutCancel(ctx))
		}
	}()
	rows, err := s.pool.Query(ctx, "SELECT id, time_zone, retain_events_days, retain_aggregates_months FROM sites ORDER BY id")
	if err != nil {
		return run, fmt.Errorf("postgres: retention: list sites: %w", err)
	}
	type siteRet struct {
		id   int32
		zone string
		r    Retention
	}
	sites, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (siteRet, error) {
		var x siteRet
		err := r.Scan(&x.id, &x.zone, &x.r.EventsDays, &x.r.AggregatesMonths)
		return x, err
	})
	if err != nil {
		return run, fmt.Errorf("postgres: retention: list sites: %w", err)
	}
	// The oldest day any site keeps, per table: partitions before it go.
	var keepEvents, keepSessions time.Time
	forEverEvents, forEverSessions := len(sites) == 0, len(sites) == 0
	for _, x := range sites {
		loc, err := time.LoadLocation(x.zone)
		if err != nil {
			return run, fmt.Errorf("postgres: retention: site %d: time zone %q: %w", x.id, x.zone, err)
		}
		sr := SiteRetained{Site: uint32(x.id), Retention: x.r}
		if x.r.EventsDays > 0 {
			sr.EventsBefore = utcDay(now).AddDate(0, 0, -x.r.EventsDays)
			if keepEvents.IsZero() || sr.EventsBefore.Before(keepEvents) {
				keepEvents = sr.EventsBefore
			}
		} else {
			forEverEvents = true
		}
		if x.r.AggregatesMonths > 0 {
			y, m, d := now.In(loc).Date()
			sr.AggregatesBefore = time.Date(y, m, d, 0, 0, 0, 0, time.UTC).AddDate(0, -x.r.AggregatesMonths, 0)
			if keepSessions.IsZero() || sr.AggregatesBefore.Before(keepSessions) {
				keepSessions = sr.AggregatesBefore
			}
		} else {
			forEverSessions = true
		}
		if sr.EventsBefore.IsZero() && sr.AggregatesBefore.IsZero() {
			continue
		}
		if err := s.retainSite(ctx, &sr, dryRun, actor); err != nil {
			return run, err
		}
		run.Sites = append(run.Sites, sr)
	}
	var drop []string
	if !forEverEvents {
		names, err := s.partitionsBefore(ctx, "events", PartitionName(keepEvents))
		if err != nil {
			return run, err
		}
		drop = append(drop, names...)
		// Item rows are dropped with their events' days.
		if names, err = s.partitionsBefore(ctx, "event_items", ItemsPartitionName(keepEvents)); err != nil {
			return run, err
		}
		drop = append(drop, names...)
	}
	if !forEverSessions {
		names, err := s.partitionsBefore(ctx, "sessions", SessionsPartitionName(keepSessions))
		if err != nil {
			return run, err
		}
		drop = append(drop, names...)
	}
	run.Partitions = drop
	if dryRun || len(drop) == 0 {
		return run, nil
	}
	for _, name := range drop {
		// Names come from the catalog and match events_pYYYYMMDD,
		// event_items_pYYYYMMDD or sessions_pYYYYMMDD; quoted anyway.
		if _, err := s.pool.Exec(ctx, "DROP TABLE IF EXISTS "+pgx.Identifier{name}.Sanitize()); err != nil {
			return run, fmt.Errorf("postgres: retention: drop %s: %w", name, err)
		}
	}
	s.forgetPartitions()
	if _, err := s.AppendAudit(ctx, AuditEntry{Actor: actor, Action: "retention.drop_partitions",
		Detail: map[string]any{"partitions": drop}}); err != nil {
		return run, err
	}
	return run, nil
}

// partitionsBefore lists parent's day partitions named before name
// (names sort by day).
func (s *Store) partitionsBefore(ctx context.Context, parent, name string) ([]string, error) {
	rows, err := s.pool.Query(ctx, `SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
		WHERE i.inhparent = $1::regclass AND c.relname < $2 AND c.relname LIKE $3 ORDER BY c.relname`,
		parent, name, parent+`\_p%`)
	if err != nil {
		return nil, fmt.Errorf("postgres: retention: list %s partitions: %w", parent, err)
	}
	names, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, fmt.Errorf("postgres: retention: list %s partitions: %w", parent, err)
	}
	return names, nil
}

// retainSite removes (or counts) one site's data past its retention, in
// one transaction with the site's row locked and its audit row.
func (s *Store) retainSite(ctx context.Context, sr *SiteRetained, dryRun bool, actor string) error {
	tx, err := s.pool.Begin(ctx)
	if err != nil {
		return fmt.Errorf("postgres: retention of site %d: begin: %w", sr.Site, err)
	}
	defer tx.Rollback(context.WithoutCancel(ctx)) // no-op after Commit
	site := int32(sr.Site)
	if _, err := lockSite(ctx, tx, site); err != nil {
		return fmt.Errorf("postgres: retention of site %d: %w", sr.Site, err)
	}
	type step struct {
		count, del string
		arg        time.Time
		n          *int64
	}
	var steps []step
	if !sr.EventsBefore.IsZero() {
		steps = append(steps,
			step{"SELECT count(*) FROM events WHERE site_id = $1 AND ts < $2",
				"DELETE FROM events WHERE site_id = $1 AND ts < $2", sr.EventsBefore, &sr.Events},
			step{"SELECT COALESCE(sum(events), 0) FROM event_packs WHERE site_id = $1 AND day < $2",
				"", sr.EventsBefore, &sr.Events},
			step{"SELECT count(*) FROM event_packs WHERE site_id = $1 AND day < $2",
				"DELETE FROM event_packs WHERE site_id = $1 AND day < $2", sr.EventsBefore, &sr.EventPacks},
			step{"SELECT count(*) FROM event_items WHERE site_id = $1 AND ts < $2",
				"DELETE FROM event_items WHERE site_id = $1 AND ts < $2", sr.EventsBefore, &sr.Items},
			step{"SELECT COALESCE(sum(items), 0) FROM item_packs WHERE site_id = $1 AND day < $2",
				"", sr.EventsBefore, &sr.Items},
			step{"SELECT count(*) FROM item_packs WHERE site_id = $1 AND day < $2",
				"DELETE FROM item_packs WHERE site_id = $1 AND day < $2", sr.EventsBefore, &sr.ItemPacks},
			step{"SELECT count(*) FROM staged_quarantine WHERE site_id = $1 AND staged_at < $2",
				"DELETE FROM staged_quarantine WHERE site_id = $1 AND staged_at < $2", sr.EventsBefore, &sr.Quarantined})
	}
	if !sr.AggregatesBefore.IsZero() {
		steps = append(steps,
			step{"SELECT count(*) FROM sessions WHERE site_id = $1 AND ts < $2",
				"DELETE FROM sessions WHERE site_id = $1 AND ts < $2", sr.AggregatesBefore, &sr.Sessions},
			step{"SELECT count(*) FROM rollup_days WHERE site_id = $1 AND day < $2",
				"DELETE FROM rollup_days WHERE site_id = $1 AND day < $2", sr.AggregatesBefore, &sr.RollupRows},
			step{"SELECT count(*) FROM rollup_packs WHERE site_id = $1 AND day < $2",
				"DELETE FROM rollup_packs WHERE site_id = $1 AND day < $2", sr.AggregatesBefore, &sr.RollupRows},
			step{"SELECT count(*) FROM session_rollups WHERE site_id = $1 AND day < $2",
				"DELETE FROM session_rollups WHERE site_id = $1 AND day < $2", sr.AggregatesBefore, &sr.SessionRollups},
			// Which users were active on days whose rollups go (not counted
			// as rollup rows).
			step{"SELECT count(*) FROM rollup_user_days WHERE site_id = $1 AND day < $2",
				"DELETE FROM rollup_user_days WHERE site_id = $1 AND day < $2", sr.AggregatesBefore, new(int64)})
	}
	for _, st := range steps {
		var n int64
		if dryRun || st.del == "" {
			if err := tx.QueryRow(ctx, st.count, site, st.arg).Scan(&n); err != nil {
				return fmt.Errorf("postgres: retention of site %d: count: %w", sr.Site, err)
			}
		} else {
			tag, err := tx.Exec(ctx, st.del, site, st.arg)
			if err != nil {
				return fmt.Errorf("postgres: retention of site %d: delete: %w", sr.Site, err)
			}
			n = tag.RowsAffected()
		}
		*st.n += n
	}
	if dryRun {
		return nil
	}
	if !sr.AggregatesBefore.IsZero() {
		// Days before the cutoff have no rollups any more: reports read
		// them from the events that remain, if any.
		if _, err := tx.Exec(ctx, `UPDATE sites SET rollups_from = GREATEST(rollups_from, $2),
			hour_rollups_from = GREATEST(hour_rollups_from, $2),
			commerce_rollups_from = GREATEST(commerce_rollups_from, $2),
			traffic_rollups_from = GREATEST(traffic_rollups_from, $2),
			page_rollups_from = GREATEST(page_rollups_from, $2),
			session_rollups_from = GREATEST(session_rollups_from, $2) WHERE id = $1`, site, sr.AggregatesBefore); err != nil {
			return fmt.Errorf("postgres: retention of site %d: move rollup bounds: %w", sr.Site, err)
		}
	}
	var row AuditRow
	gone := sr.Events+sr.EventPacks+sr.Items+sr.ItemPacks+sr.Sessions+sr.RollupRows+sr.SessionRollups+sr.Quarantined > 0
	if gone {
		detail := map[string]any{"events": sr.Events, "event_packs": sr.EventPacks, "items": sr.Items, "item_packs": sr.ItemPacks,
			"sessions": sr.Sessions, "rollup_rows": sr.RollupRows, "session_rollups": sr.SessionRollups, "quarantined_rows": sr.Quarantined,
			"retain_events_days": sr.Retention.EventsDays, "retain_aggregates_months": sr.Retention.AggregatesMonths}
		if !sr.EventsBefore.IsZero() {
			detail["events_before"] = sr.EventsBefore.Format(time.DateOnly)
		}
		if !sr.AggregatesBefore.IsZero() {
			detail["aggregates_before"] = sr.AggregatesBefore.Format(time.DateOnly)
		}
		if row, err = appendAudit(ctx, tx, AuditEntry{Actor: actor, Action: "retention.run", Site: sr.Site, Detail: detail}); err != nil {
			return fmt.Errorf("postgres: retention of site %d: audit: %w", sr.Site, err)
		}
	}
	if err := tx.Commit(ctx); err != nil {
		return fmt.Errorf("postgres: retention of site %d: commit: %w", sr.Site, err)
	}
	if gone {
		s.logAudit(ctx, row)
	}
	return nil
}
