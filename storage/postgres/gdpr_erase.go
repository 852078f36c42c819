package postgres

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
)

// TombstoneTTL is how long an erased subject's late events are dropped:
// the 72 hours GA4 lets a Measurement Protocol event be dated back, which
// also bounds what an agent may still hold queued (agent/collect).
const TombstoneTTL = 72 * time.Hour

// Erased is what EraseSubject removed.
type Erased struct {
	Events      int64       // events rows and packed events
	PackRows    int64       // event_packs rows rewritten
	Sessions    int64       // sessions rows
	RollupDays  []time.Time // local days whose rollups were rebuilt
	SessionDays []time.Time // local days whose session rollups were rebuilt
	Until       time.Time   // the tombstone's end
	Audit       AuditRow
	// Steps is how long each step took ("find", "events", "packs",
	// "sessions", "rollups", "session_rollups", "commit"), for the
	// benchmark's log.
	Steps map[string]time.Duration
}

// erasePacksSQL is the statement that rewrites the event_packs rows of
// site $1 on the UTC days $3 holding any of the keys $2 without those keys'
// events, keeping each row's key and order (a row left empty goes), and
// returns the times of the events removed. cols are the table's array
// columns (packColumns): every one is rewritten, so columns later
// migrations add are kept in step. An array left empty by a migration that
// added it stays empty. One statement: the rows' old and new versions never
// coexist.
func erasePacksSQL(cols []string) string {
	q := make([]string, len(cols))
	hx, aggs := make([]string, len(cols)), make([]string, len(cols))
	for i, c := range cols {
		q[i] = pgx.Identifier{c}.Sanitize()
		hx[i] = "h." + q[i]
		aggs[i] = "COALESCE(array_agg(" + q[i] + " ORDER BY ord) FILTER (WHERE " + q[i] + " IS NOT NULL), '{}')"
	}
	list := strings.Join(q, ", ")
	return `WITH
	hit AS (DELETE FROM event_packs p WHERE p.site_id = $1 AND p.day = ANY($3) AND p.visitor_id && $2 RETURNING p.*),
	u AS (SELECT h.site_id, h.day, h.part, x.* FROM hit h
		CROSS JOIN LATERAL unnest(` + strings.Join(hx, ", ") + `) WITH ORDINALITY AS x(` + list + `, ord)),
	kept AS (INSERT INTO event_packs (site_id, day, part, events, ` + list + `)
		SELECT site_id, day, part, count(*), ` + strings.Join(aggs, ", ") + `
		FROM u WHERE NOT (visitor_id = ANY($2)) GROUP BY site_id, day, part
		RETURNING 1)
	SELECT ts, (SELECT count(*) FROM hit) FROM u WHERE visitor_id = ANY($2)`
}

// packColumns lists event_packs' array columns in table order, from the
// catalog.
func packColumns(ctx context.Context, tx pgx.Tx) ([]string, error) {
	rows, err := tx.Query(ctx, `SELECT a.attname FROM pg_attribute a JOIN pg_type t ON t.oid = a.atttypid
		WHERE a.attrelid = 'event_packs'::regclass AND a.attnum > 0 AND NOT a.attisdropped AND t.typcategory = 'A'
		ORDER BY a.attnum`)
	if err != nil {
		return nil, fmt.Errorf("pack columns: %w", err)
	}
	cols, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, fmt.Errorf("pack columns: %w", err)
	}
	if !slices.Contains(cols, "ts") || !slices.Contains(cols, "visitor_id") {
		return nil, fmt.Errorf("BUG: event_packs lacks ts or visitor_id arrays: %v", cols)
	}
	return cols, nil
}

// subjectTables are tables later migrations may add that hold rows of a
// visitor key (site_id, visitor_id); an erasure deletes the subject's rows
// from those that exist.
var subjectTables = []string{"known_users", "event_commerce", "event_items"}

// EraseSubject removes every stored row of the subject keys on site — events
// rows and packed events (their packs rewritten), sessions — rebuilds the
// rollups and session rollups of the local days they touched from what
// remains, and records a tombstone so the derivation drops the keys' events
// arriving until TombstoneTTL from now. Reports afterwards equal reports over
// data that never held the subject. One transaction, holding the site's row
// lock (derivations and rebuilds of the site wait) and the pack tables'
// write locks (the upkeep's packing waits), with the audit row: it commits
// whole or not at all. Keys nobody stored erase nothing but still leave a
// tombstone.
func (s *Store) EraseSubject(ctx context.Context, site uint32, keys []uint64, audit AuditEntry) (Erased, error) {
	var out Erased
	k := subjectKeys(keys)
	if len(k) == 0 {
		return out, fmt.Errorf("postgres: erase on site %d: no subject key", site)
	}
	tx, err := s.pool.Begin(ctx)
	if err != nil {
		return out, fmt.Errorf("postgres: erase on site %d: begin: %w", site, err)
	}
	defer tx.Rollback(context.WithoutCancel(ctx)) // no-op after Commit
	if out, err = eraseSubject(ctx, tx, int32(site), k); err != nil {
		return out, fmt.Errorf("postgres: erase on site %d: %w", site, err)
	}
	if audit.Detail == nil {
		audit.Detail = map[string]any{}
	}
	audit.Site = site
	audit.Detail["events"], audit.Detail["sessions"], audit.Detail["pack_rows"] = out.Events, out.Sessions, out.PackRows
	audit.Detail["rollup_days"], audit.Detail["session_rollup_days"] = len(out.RollupDays), len(out.SessionDays)
	audit.Detail["tombstone_until"] = out.Until.Format(time.RFC3339)
	if out.Audit, err = appendAudit(ctx, tx, audit); err != nil {
		return out, fmt.Errorf("postgres: erase on site %d: audit: %w", site, err)
	}
	start := time.Now()
	if err := tx.Commit(ctx); err != nil {
		return out, fmt.Errorf("postgres: erase on site %d: commit: %w", site, err)
	}
	out.Steps["commit"] = time.Since(start)
	s.logAudit(ctx, out.Audit)
	return out, nil
}

func eraseSubject(ctx context.Context, tx pgx.Tx, site int32, keys []int64) (Erased, error) {
	out := Erased{Steps: map[string]time.Duration{}}
	last := time.Now()
	step := func(name string) {
		now := time.Now()
		out.Steps[name] += now.Sub(last)
		last = now
	}
	loc, err := lockSite(ctx, tx, site)
	if err != nil {
		return out, err
	}
	// The upkeep packs events and rollups on its own; it waits for this
	// transaction (and this one for a pass in progress), so no row moves
	// between tables while it is read here.
	if _, err := tx.Exec(ctx, "LOCK TABLE event_packs, rollup_packs IN SHARE ROW EXCLUSIVE MODE"); err != nil {
		return out, fmt.Errorf("lock packs: %w", err)
	}
	step("lock")
	days, err := subjectPackDays(ctx, tx, site, keys)
	if err != nil {
		return out, err
	}
	step("find")
	eventDays := map[time.Time]bool{}
	addDay := func(set map[time.Time]bool, ts time.Time) {
		y, m, d := ts.In(loc).Date()
		set[time.Date(y, m, d, 0, 0, 0, 0, time.UTC)] = true
	}
	collect := func(sql string, args ...any) (int64, error) {
		rows, err := tx.Query(ctx, sql, args...)
		if err != nil {
			return 0, err
		}
		defer rows.Close()
		var n int64
		for rows.Next() {
			var ts time.Time
			var packs int64
			dest := []any{&ts}
			if len(rows.FieldDescriptions()) == 2 {
				dest = append(dest, &packs)
			}
			if err := rows.Scan(dest...); err != nil {
				return n, err
			}
			out.PackRows = max(out.PackRows, packs)
			addDay(eventDays, ts)
			n++
		}
		return n, rows.Err()
	}
	n, err := collect("DELETE FROM events WHERE site_id = $1 AND visitor_id = ANY($2) RETURNING ts", site, keys)
	if err != nil {
		return out, fmt.Errorf("delete events: %w", err)
	}
	out.Events += n
	step("events")
	if len(days) > 0 {
		cols, err := packColumns(ctx, tx)
		if err != nil {
			return out, err
		}
		n, err := collect(erasePacksSQL(cols), site, keys, days)
		if err != nil {
			return out, fmt.Errorf("rewrite packs: %w", err)
		}
		out.Events += n
	}
	step("packs")
	sessionDays := map[time.Time]bool{}
	rows, err := tx.Query(ctx, "DELETE FROM sessions WHERE site_id = $1 AND visitor_id = ANY($2) RETURNING ts", site, keys)
	if err != nil {
		return out, fmt.Errorf("delete sessions: %w", err)
	}
	starts, err := pgx.CollectRows(rows, pgx.RowTo[time.Time])
	if err != nil {
		return out, fmt.Errorf("delete sessions: %w", err)
	}
	for _, ts := range starts {
		addDay(sessionDays, ts)
	}
	out.Sessions = int64(len(starts))
	// Before event_items below: it takes item_packs as a packing pass does.
	if _, err := eraseSubjectItemPacks(ctx, tx, site, keys); err != nil {
		return out, err
	}
	// Rows of the subject in the tables the schema has of those (the keys
	// a site has seen, so the subject comes back as a new user; ecommerce
	// rows and items).
	for _, table := range subjectTables {
		var exists bool
		if err := tx.QueryRow(ctx, "SELECT to_regclass($1) IS NOT NULL", table).Scan(&exists); err != nil {
			return out, fmt.Errorf("%s: %w", table, err)
		}
		if !exists {
			continue
		}
		// table is one of subjectTables, never input.
		if _, err := tx.Exec(ctx, "DELETE FROM "+table+" WHERE site_id = $1 AND visitor_id = ANY($2)", site, keys); err != nil {
			return out, fmt.Errorf("delete from %s: %w", table, err)
		}
	}
	step("sessions")
	out.RollupDays = slices.SortedFunc(maps.Keys(eventDays), time.Time.Compare)
	out.SessionDays = slices.SortedFunc(maps.Keys(sessionDays), time.Time.Compare)
	if err := rebuildRollupDays(ctx, tx, site, loc, out.RollupDays); err != nil {
		return out, err
	}
	step("rollups")
	if err := rebuildSessionRollupDays(ctx, tx, site, loc, out.SessionDays); err != nil {
		return out, err
	}
	step("session_rollups")
	// Late events of these keys are dropped by the derivation until then.
	if err := tx.QueryRow(ctx, `INSERT INTO gdpr_tombstones (site_id, key, until)
		SELECT $1, k, now() + $3::interval FROM unnest($2::bigint[]) k
		ON CONFLICT (site_id, key) DO UPDATE SET until = EXCLUDED.until
		RETURNING until`, site, keys, TombstoneTTL).Scan(&out.Until); err != nil {
		return out, fmt.Errorf("tombstone: %w", err)
	}
	out.Until = out.Until.UTC()
	// A node keeping the site's recent sessions in memory drops them at
	// its next derivation (the generation moved).
	if _, err := tx.Exec(ctx, "UPDATE derive_state SET gen = gen + 1 WHERE site_id = $1", site); err != nil {
		return out, fmt.Errorf("bump derive generation: %w", err)
	}
	return out, nil
}

// rebuildRollupDays recomputes the site's rollups (daily, hourly, packed or
// not) of the local days from the events that remain, in tx, which holds
// the site's row lock.
func rebuildRollupDays(ctx context.Context, tx pgx.Tx, site int32, loc *time.Location, days []time.Time) error {
	if len(days) == 0 {
		return nil
	}
	for _, table := range []string{"rollup_days", "rollup_packs"} {
		if _, err := tx.Exec(ctx, "DELETE FROM "+table+" WHERE site_id = $1 AND day = ANY($2)", site, days); err != nil {
			return fmt.Errorf("delete rollups: %w", err)
		}
	}
	var pageView int32
	err := tx.QueryRow(ctx, "SELECT id FROM dims WHERE site_id = $1 AND kind = $2 AND value = $3", site, DimEventName, pageViewName).Scan(&pageView)
	if err != nil && !errors.Is(err, pgx.ErrNoRows) {
		return fmt.Errorf("page_view id: %w", err)
	}
	packBefore := packedBefore(time.Now(), loc)
	for _, d := range days {
		lo := time.Date(d.Year(), d.Month(), d.Day(), 0, 0, 0, 0, loc)
		if err := rebuildDay(ctx, tx, site, loc, pageView, lo, lo.AddDate(0, 0, 1), packBefore); err != nil {
			return err
		}
	}
	return nil
}

// rebuildSessionRollupDays recomputes the site's session rollups of the
// local days from the sessions that remain, in tx (holding the site's row
// lock).
func rebuildSessionRollupDays(ctx context.Context, tx pgx.Tx, site int32, loc *time.Location, days []time.Time) error {
	if len(days) == 0 {
		return nil
	}
	if _, err := tx.Exec(ctx, "DELETE FROM session_rollups WHERE site_id = $1 AND day = ANY($2)", site, days); err != nil {
		return fmt.Errorf("delete session rollups: %w", err)
	}
	agg := make(sessionRollupAgg)
	var st sessionState
	dest := st.scanDest()
	for _, d := range days {
		lo := time.Date(d.Year(), d.Month(), d.Day(), 0, 0, 0, 0, loc)
		rows, err := tx.Query(ctx, "SELECT "+sessionStateSelect("s")+" FROM sessions s"+sessionDimsJoins("s")+
			" WHERE s.site_id = $1 AND s.ts >= $2 AND s.ts < $3", site, lo, lo.AddDate(0, 0, 1))
		if err != nil {
			return fmt.Errorf("read sessions: %w", err)
		}
		for rows.Next() {
			if err := rows.Scan(dest...); err != nil {
				rows.Close()
				return fmt.Errorf("read sessions: %w", err)
			}
			agg.add(&st, loc, 1)
		}
		if err := rows.Err(); err != nil {
			return fmt.Errorf("read sessions: %w", err)
		}
	}
	return storeRollupRounds(ctx, tx, slices.SortedFunc(maps.Keys(agg), compareRollupKeys), agg)
}

// Tombstones returns the site's subject keys whose late events are to be
// dropped now, read in the derivation's transaction (an erasure commits
// its tombstone with the erasure, while holding the site, so a
// derivation after it sees it).
func (d *DeriveTx) Tombstones(ctx context.Context) (map[uint64]bool, error) {
	rows, err := d.tx.Query(ctx, "SELECT key FROM gdpr_tombstones WHERE site_id = $1 AND until > now()", int32(d.site))
	if err != nil {
		return nil, fmt.Errorf("postgres: derive site %d: tombstones: %w", d.site, err)
	}
	keys, err := pgx.CollectRows(rows, pgx.RowTo[int64])
	if err != nil {
		return nil, fmt.Errorf("postgres: derive site %d: tombstones: %w", d.site, err)
	}
	if len(keys) == 0 {
		return nil, nil
	}
	out := make(map[uint64]bool, len(keys))
	for _, k := range keys {
		out[uint64(k)] = true
	}
	return out, nil
}

// ExpireTombstones deletes tombstones past their end; upkeep.
func (s *Store) ExpireTombstones(ctx context.Context) (int64, error) {
	tag, err := s.pool.Exec(ctx, "DELETE FROM gdpr_tombstones WHERE until <= now()")
	if err != nil {
		return 0, fmt.Errorf("postgres: expire tombstones: %w", err)
	}
	return tag.RowsAffected(), nil
}

// LiveTombstones returns every site's tombstoned keys that are still in
// force, for filters outside a derivation (realtime counts at staging).
func (s *Store) LiveTombstones(ctx context.Context) (map[uint32]map[uint64]bool, error) {
	rows, err := s.pool.Query(ctx, "SELECT site_id, key FROM gdpr_tombstones WHERE until > now()")
	if err != nil {
		return nil, fmt.Errorf("postgres: tombstones: %w", err)
	}
	defer rows.Close()
	out := map[uint32]map[uint64]bool{}
	for rows.Next() {
		var site int32
		var key int64
		if err := rows.Scan(&site, &key); err != nil {
			return nil, fmt.Errorf("postgres: tombstones: %w", err)
		}
		if out[uint32(site)] == nil {
			out[uint32(site)] = map[uint64]bool{}
		}
		out[uint32(site)][uint64(key)] = true
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("postgres: tombstones: %w", err)
	}
	return out, nil
}
