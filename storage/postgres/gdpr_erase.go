package postgres

import (
	"context"
	"fmt"
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
	RollupDays  []time.Time // local days whose rollups were corrected
	SessionDays []time.Time // local days whose session rollups were corrected
	Until       time.Time   // the tombstone's end
	// Quarantined counts the events taken out of quarantined staged rows
	// (staged_quarantine); Unsearched the quarantined rows of the site
	// that do not decode, which may hold the subject's events and stay.
	Quarantined, Unsearched int64
	Audit                   AuditRow
	// Sketches counts what the corrections did with the sketches of the
	// cells the subject touched.
	Sketches EraseSketches
	// Steps is how long each step took ("lock", "find", "read", which
	// deletes the events rows too, "packs", "sessions", "rollups",
	// "session_rollups", "commit"), for the benchmark's log.
	Steps map[string]time.Duration
}

// packHit is a pack row holding events of a subject, and their positions.
type packHit struct {
	Day    time.Time
	Part   int32
	Events int32
	Pos    []int32 // 1-based, ascending
	TS     []time.Time
}

// subjectPackHits returns the site's event_packs rows on the UTC days
// holding events of keys, with those events' positions and times, and
// locks them.
func subjectPackHits(ctx context.Context, tx pgx.Tx, site int32, keys []int64, days []time.Time) ([]packHit, error) {
	if len(days) == 0 {
		return nil, nil
	}
	rows, err := tx.Query(ctx, `SELECT p.day, p.part, p.events, x.pos, x.ts FROM event_packs p
		CROSS JOIN LATERAL (SELECT array_agg(i::int ORDER BY i) AS pos, array_agg(t ORDER BY i) AS ts
			FROM unnest(p.visitor_id, p.ts) WITH ORDINALITY AS u(v, t, i) WHERE v = ANY($2)) x
		WHERE p.site_id = $1 AND p.day = ANY($3) AND p.visitor_id && $2
		ORDER BY p.day, p.part FOR UPDATE OF p`, site, keys, days)
	if err != nil {
		return nil, fmt.Errorf("the subject's packs: %w", err)
	}
	hits, err := pgx.CollectRows(rows, pgx.RowToStructByPos[packHit])
	if err != nil {
		return nil, fmt.Errorf("the subject's packs: %w", err)
	}
	return hits, nil
}

// packSlots are positions of events in the site's pack rows, as the
// parallel arrays eventsAt reads: UTC days, parts, 1-based indexes.
type packSlots struct {
	days  []time.Time
	parts []int32
	pos   []int32
}

func (s *packSlots) add(day time.Time, part, pos int32) {
	s.days, s.parts, s.pos = append(s.days, day), append(s.parts, part), append(s.pos, pos)
}

// eventsAt is a subquery like EventsIn's of the events table's rows that
// meet rows and the packed events at slots (SQL of three parameters: the
// packSlots arrays), with columns cols; $1 is the site. A packed event is
// read by subscripting its row's arrays, not by unnesting them, so a few
// events of a large pack cost a few look-ups; each pack row's arrays are
// decompressed once (a slice of the whole array, in a lateral subquery
// kept apart by OFFSET 0), not once per event and column as a subscript
// of the stored array would.
func eventsAt(cols []string, rows, slots string) string {
	return eventsAtRows(cols, "SELECT "+strings.Join(cols, ", ")+" FROM events WHERE "+rows, slots)
}

// eventsAtRows is eventsAt with its events rows selected by rowsQuery
// (columns cols, in order).
func eventsAtRows(cols []string, rowsQuery, slots string) string {
	packCols := make([]string, len(cols))
	var arrays []string
	for i, c := range cols {
		switch c {
		case "site_id":
			packCols[i] = "p.site_id"
			continue
		case "commerce_id":
			// Packs written before migration 015 have an empty array.
			packCols[i] = "COALESCE(a.commerce_id[x.i], 0) AS commerce_id"
		default:
			packCols[i] = "a." + c + "[x.i] AS " + c
		}
		arrays = append(arrays, "p."+c+"[1:] AS "+c)
	}
	return "(" + rowsQuery +
		" UNION ALL SELECT " + strings.Join(packCols, ", ") +
		" FROM (SELECT day, part, array_agg(i) AS idx FROM unnest(" + slots + ") AS s(day, part, i) GROUP BY day, part) s" +
		" JOIN event_packs p ON p.site_id = $1 AND p.day = s.day AND p.part = s.part" +
		" CROSS JOIN LATERAL (SELECT " + strings.Join(arrays, ", ") + " OFFSET 0) a" +
		" CROSS JOIN LATERAL unnest(s.idx) AS x(i))"
}

// erasePacks removes the events of hits (subjectPackHits) from their
// event_packs rows: every array column (cols: packColumns, so columns later
// migrations add are kept in step) is cut to the slices around the
// subject's positions, which a pack's (session_id, ts) order keeps in a few
// runs. An array left empty by a migration that added it stays empty; a row
// left without events goes. It returns the times of the events removed.
func erasePacks(ctx context.Context, tx pgx.Tx, site int32, hits []packHit, cols []string) ([]time.Time, error) {
	var gone []time.Time
	var b pgx.Batch
	for _, h := range hits {
		gone = append(gone, h.TS...)
		if int(h.Events) == len(h.Pos) {
			b.Queue("DELETE FROM event_packs WHERE site_id = $1 AND day = $2 AND part = $3", site, h.Day, h.Part)
			continue
		}
		// Kept ranges [lo, hi] (1-based) between the removed positions.
		args := []any{site, h.Day, h.Part, h.Events - int32(len(h.Pos))}
		var cuts []string
		next := int32(1)
		for _, p := range append(h.Pos, h.Events+1) {
			if p > next {
				args = append(args, next, p-1)
				cuts = append(cuts, fmt.Sprintf("[$%d:$%d]", len(args)-1, len(args)))
			}
			next = p + 1
		}
		set := make([]string, len(cols))
		for i, c := range cols {
			q := pgx.Identifier{c}.Sanitize()
			parts := make([]string, len(cuts))
			for j, sl := range cuts {
				parts[j] = q + sl
			}
			set[i] = q + " = " + strings.Join(parts, " || ")
		}
		b.Queue("UPDATE event_packs SET events = $4, "+strings.Join(set, ", ")+" WHERE site_id = $1 AND day = $2 AND part = $3", args...)
	}
	if len(hits) > 0 {
		if err := tx.SendBatch(ctx, &b).Close(); err != nil {
			return nil, err
		}
	}
	return gone, nil
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
	if out.Quarantined > 0 || out.Unsearched > 0 {
		audit.Detail["quarantined_events"], audit.Detail["unsearched_quarantined_rows"] = out.Quarantined, out.Unsearched
	}
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
	// What the subject added to the rollups, aggregated from its own rows
	// by the rebuild's code, before they go.
	rd, err := newRollupReader(ctx, tx, site, loc)
	if err != nil {
		return out, err
	}
	if rd.traffic, err = sessionTrafficWhere(ctx, tx, "visitor_id = ANY($2)", site, keys); err != nil {
		return out, fmt.Errorf("read the subject's sessions: %w", err)
	}
	hits, err := subjectPackHits(ctx, tx, site, keys, days)
	if err != nil {
		return out, err
	}
	var slots packSlots
	for _, h := range hits {
		for _, i := range h.Pos {
			slots.add(h.Day, h.Part, i)
		}
	}
	events := make(rollupAgg)
	// All the subject's events: they tell on which days it was active. Its
	// events rows are deleted by the statement that reads them, so the
	// events table (no index by visitor) is scanned once; times are those
	// of all its events, rows and packed.
	cols := rollupEventColumns()
	src := eventsAtRows(cols, "SELECT "+strings.Join(cols, ", ")+" FROM gone", "$3::date[], $4::int[], $5::int[]")
	var times []time.Time
	rd.selfActive, rd.times = true, &times
	err = rd.events(ctx, tx, events, "WITH gone AS (DELETE FROM events WHERE site_id = $1 AND visitor_id = ANY($2) RETURNING "+
		strings.Join(cols, ", ")+") "+rollupEventsSQL(src, "TRUE"), keys, slots.days, slots.parts, slots.pos)
	rd.selfActive, rd.times = false, nil
	if err != nil {
		return out, fmt.Errorf("read and delete the subject's events: %w", err)
	}
	sessions := make(sessionRollupAgg)
	// The subject's sessions count it active as its events, all read, tell.
	if err := aggregateSessions(ctx, tx, sessions, loc, &sessionActivity{active: rd.activeSessions}, "s.visitor_id = ANY($2)", site, keys); err != nil {
		return out, fmt.Errorf("read the subject's sessions: %w", err)
	}
	step("read")
	if len(hits) > 0 {
		cols, err := packColumns(ctx, tx)
		if err != nil {
			return out, err
		}
		packed, err := erasePacks(ctx, tx, site, hits, cols)
		if err != nil {
			return out, fmt.Errorf("rewrite packs: %w", err)
		}
		if len(packed) > len(times) {
			return out, fmt.Errorf("BUG: %d packed events cut out, %d events read", len(packed), len(times))
		}
		out.PackRows = int64(len(hits))
	}
	out.Events = int64(len(times))
	step("packs")
	// The subject's user-days, with the cells they remember.
	if _, err := tx.Exec(ctx, "DELETE FROM rollup_user_days WHERE site_id = $1 AND visitor_id = ANY($2)", site, keys); err != nil {
		return out, fmt.Errorf("delete user days: %w", err)
	}
	tag, err := tx.Exec(ctx, "DELETE FROM sessions WHERE site_id = $1 AND visitor_id = ANY($2)", site, keys)
	if err != nil {
		return out, fmt.Errorf("delete sessions: %w", err)
	}
	out.Sessions = tag.RowsAffected()
	// The subject's items, found as eraseSubjectItems deletes them, go
	// into the item cells' share of the subject.
	if len(times) > 0 {
		if err := rd.items(ctx, tx, events, subjectItems(), keys, times); err != nil {
			return out, fmt.Errorf("read the subject's items: %w", err)
		}
	}
	// Before event_items below: it takes item_packs as a packing pass does.
	if _, err := eraseSubjectItemPacks(ctx, tx, site, keys); err != nil {
		return out, err
	}
	if err := eraseSubjectRows(ctx, tx, site, keys, times); err != nil {
		return out, err
	}
	step("sessions")
	if out.RollupDays, err = correctRollups(ctx, tx, rd, keys, events, &out.Sketches); err != nil {
		return out, err
	}
	step("rollups")
	if out.SessionDays, err = correctSessionRollups(ctx, tx, site, loc, keys, sessions, &out.Sketches); err != nil {
		return out, err
	}
	step("session_rollups")
	if out.Quarantined, out.Unsearched, err = eraseQuarantined(ctx, tx, site, keys); err != nil {
		return out, err
	}
	step("quarantine")
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

// eraseSubjectRows deletes the subject's rows from the tables of
// subjectTables the schema has: the keys a site has seen (so the subject
// comes back as a new user), ecommerce rows and items. times are the
// subject's events' times; items, stored with their event's time, are
// found through them (eraseSubjectItems).
func eraseSubjectRows(ctx context.Context, tx pgx.Tx, site int32, keys []int64, times []time.Time) error {
	for _, table := range subjectTables {
		var exists bool
		if err := tx.QueryRow(ctx, "SELECT to_regclass($1) IS NOT NULL", table).Scan(&exists); err != nil {
			return fmt.Errorf("%s: %w", table, err)
		}
		if !exists {
			continue
		}
		if table == "event_items" {
			if err := eraseSubjectItems(ctx, tx, site, keys, times); err != nil {
				return err
			}
			continue
		}
		// table is one of subjectTables, never input.
		if _, err := tx.Exec(ctx, "DELETE FROM "+table+" WHERE site_id = $1 AND visitor_id = ANY($2)", site, keys); err != nil {
			return fmt.Errorf("delete from %s: %w", table, err)
		}
	}
	return nil
}

// subjectItemsWhere finds the subject's event_items rows "i" ($2 the keys,
// $3 the times of their events).
const subjectItemsWhere = "i.ts = ANY($3) AND i.visitor_id = ANY($2)"

// subjectItems is the subject's item rows, packed or not ($1 the site, $2
// the keys, $3 the times of its events, whose items carry them): rows by the
// items' site and time, packs by their day and visitor_id arrays.
func subjectItems() string {
	return itemsWhere(rollupItemColumns, "site_id = $1 AND ts = ANY($3) AND visitor_id = ANY($2)",
		"p.site_id = $1 AND p.day IN (SELECT DISTINCT (t AT TIME ZONE 'UTC')::date FROM unnest($3::timestamptz[]) t) AND p.visitor_id && $2",
		"u.visitor_id = ANY($2) AND u.ts = ANY($3)")
}

// eraseSubjectItems deletes the subject's event_items rows: the items of
// its events, which carry their event's time (found by the table's site
// and time index) and visitor.
func eraseSubjectItems(ctx context.Context, tx pgx.Tx, site int32, keys []int64, times []time.Time) error {
	if len(times) == 0 {
		return nil
	}
	if _, err := tx.Exec(ctx, "DELETE FROM event_items i WHERE i.site_id = $1 AND "+subjectItemsWhere, site, keys, times); err != nil {
		return fmt.Errorf("delete from event_items: %w", err)
	}
	return nil
}

// Tombstones returns the site's subject keys whose late events are to be
// dropped now, read in the derivation's transaction (an erasure commits
// its tombstone with the erasure, while holding the site, so a
// derivation after it sees it): those whose tombstone was in force when
// the site's oldest staged row was staged, or is now. A staged row
// derived within seconds sees the tombstones in force now; one
// requeued from quarantine (staged_quarantine), staged before a
// tombstone ended, still sees it (ExpireTombstones keeps it).
func (d *DeriveTx) Tombstones(ctx context.Context) (SubjectKeys, error) {
	rows, err := d.tx.Query(ctx, `SELECT key FROM gdpr_tombstones WHERE site_id = $1
		AND until > LEAST(now(), (SELECT min(staged_at) FROM staged_events WHERE site_id = $1))`, int32(d.site))
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
	return subjectKeySet(keys), nil
}

// ExpireTombstones deletes tombstones past their end; upkeep. It keeps
// those of a site with a row staged or quarantined before the
// tombstone's end, which may hold the subject's events: the derivation
// that takes the row (requeued, for a quarantined one) drops them
// (Tombstones).
func (s *Store) ExpireTombstones(ctx context.Context) (int64, error) {
	tag, err := s.pool.Exec(ctx, `DELETE FROM gdpr_tombstones t WHERE until <= now()
		AND NOT EXISTS (SELECT 1 FROM staged_quarantine q WHERE q.site_id = t.site_id AND q.staged_at < t.until)
		AND NOT EXISTS (SELECT 1 FROM staged_events s WHERE s.site_id = t.site_id AND s.staged_at < t.until)`)
	if err != nil {
		return 0, fmt.Errorf("postgres: expire tombstones: %w", err)
	}
	return tag.RowsAffected(), nil
}

// LiveTombstones returns every site's tombstoned keys that are still in
// force, for filters outside a derivation (realtime counts at staging).
func (s *Store) LiveTombstones(ctx context.Context) (map[uint32]SubjectKeys, error) {
	rows, err := s.pool.Query(ctx, "SELECT site_id, key FROM gdpr_tombstones WHERE until > now()")
	if err != nil {
		return nil, fmt.Errorf("postgres: tombstones: %w", err)
	}
	defer rows.Close()
	out := map[uint32]SubjectKeys{}
	for rows.Next() {
		var site int32
		var key int64
		if err := rows.Scan(&site, &key); err != nil {
			return nil, fmt.Errorf("postgres: tombstones: %w", err)
		}
		if out[uint32(site)] == nil {
			out[uint32(site)] = SubjectKeys{}
		}
		out[uint32(site)][uint64(key)] = true
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("postgres: tombstones: %w", err)
	}
	return out, nil
}
