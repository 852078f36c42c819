package postgres

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
)

// SessionFlagNew in sessions.flags marks a new user's session (GA4
// newVsReturning "new"); the other bits are the events' protocol flags.
const SessionFlagNew int16 = 1 << 7

// SessionRef is what sessionization needs to know of a stored session.
type SessionRef struct {
	Visitor, ID int64
	Start, Last time.Time // its first event (part of the key, never changes) and its latest
	FirstSource int32     // dims id of the source of the visitor's first session
}

// SessionRow is one sessions row to insert, or to add to when the session
// was stored before (same site, visitor, id and start).
type SessionRow struct {
	Site                         int32
	TS, Last                     time.Time
	Visitor, ID                  int64
	Events, PageViews, KeyEvents int32
	Engage                       int64
	Flags                        int16
	Landing, Exit                int32               // dims ids of the first and last page_view's path (0: none in these events)
	First                        *[numDimKinds]int32 // the first event's dims ids (host, referrer)
	Client                       int32               // the first event's client profile id
	TrafficProfile               int32               // the session's traffic profile id
	FirstSource                  int32               // dims id of the source of the visitor's first session
}

// sessionColumns is the sessions column list of upsertSessions.
var sessionColumns = []string{"site_id", "ts", "visitor_id", "session_id", "last_ts", "events", "page_views",
	"key_events", "engagement_ms", "flags", "page_id", "exit_page_id",
	"host_id", "referrer_id", "client_id", "traffic_id", "first_source_id"}

// LookupSessions returns the stored sessions of the visitors of the
// transaction's site that started between from and to.
func (d *DeriveTx) LookupSessions(ctx context.Context, visitors []int64, from, to time.Time) ([]SessionRef, error) {
	if len(visitors) == 0 {
		return nil, nil
	}
	rows, err := d.tx.Query(ctx, `SELECT s.visitor_id, s.session_id, s.ts, s.last_ts, s.first_source_id
		FROM sessions s JOIN `+visitorsZip+` AS k USING (visitor_id)
		WHERE s.site_id = $1 AND s.ts >= $3 AND s.ts <= $4`, int32(d.site), visitors, from, to)
	if err != nil {
		return nil, fmt.Errorf("postgres: derive site %d: look up sessions: %w", d.site, err)
	}
	out, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (SessionRef, error) {
		var r SessionRef
		return r, row.Scan(&r.Visitor, &r.ID, &r.Start, &r.Last, &r.FirstSource)
	})
	if err != nil {
		return nil, fmt.Errorf("postgres: derive site %d: look up sessions: %w", d.site, err)
	}
	return out, nil
}

// sessionArrays are the rows at the indexes pick as parallel arrays: in
// sessionColumns order, or the first updateSessionColumns of them for
// update (the key and what an update changes).
func sessionArrays(rows []SessionRow, pick []int32, update bool) []any {
	n := len(pick)
	site, visitor, id := make([]int32, n), make([]int64, n), make([]int64, n)
	ts, last := make([]time.Time, n), make([]time.Time, n)
	events, pv, ke := make([]int32, n), make([]int32, n), make([]int32, n)
	engage, flags := make([]int64, n), make([]int16, n)
	nids := 7 // landing and exit page, host, referrer, client and traffic profiles, first source
	if update {
		nids = 2 // landing and exit page
	}
	ids := make([][]int32, nids)
	for i := range ids {
		ids[i] = make([]int32, n)
	}
	for i, j := range pick {
		r := &rows[j]
		site[i], ts[i], visitor[i], id[i], last[i] = r.Site, r.TS, r.Visitor, r.ID, r.Last
		events[i], pv[i], ke[i], engage[i], flags[i] = r.Events, r.PageViews, r.KeyEvents, r.Engage, r.Flags
		ids[0][i], ids[1][i] = r.Landing, r.Exit
		if !update {
			ids[2][i], ids[3][i] = r.First[DimHost-1], r.First[DimReferrer-1]
			ids[4][i], ids[5][i], ids[6][i] = r.Client, r.TrafficProfile, r.FirstSource
		}
	}
	out := []any{site, ts, visitor, id, last, events, pv, ke, engage, flags}
	for _, a := range ids {
		out = append(out, a)
	}
	return out
}

// sessionArrayColumns are sessionColumns with their SQL types.
var sessionArrayColumns = func() []arrayColumn {
	types := []string{"integer", "timestamptz", "bigint", "bigint", "timestamptz", "integer", "integer",
		"integer", "bigint", "smallint"}
	cols := make([]arrayColumn, len(sessionColumns))
	for i, c := range sessionColumns {
		cols[i] = arrayColumn{name: c, typ: "integer"}
		if i < len(types) {
			cols[i].typ = types[i]
		}
	}
	return cols
}()

// updateSessionColumns is how many of sessionColumns, from the first, an
// update of stored sessions takes: the key and what it changes.
const updateSessionColumns = 12

// sessionsWritten is the select list of what the statements writing
// sessions return of each row (the session id, its traffic profile and
// landing page, sessionStateColumns and the dims), from the rows u their
// RETURNING gives.
var sessionsWritten = `SELECT u.session_id, u.traffic_id, u.page_id, ` + sessionStateSelect("u") + ` FROM u ` + sessionDimsJoins("u")

// insertSessionsSQL inserts sessions none of which is stored, in key order
// (upsertSessions read the stored ones just before). A session stored
// meanwhile all the same fails it on the primary key, and with it the
// derivation, which a later one repeats; none is: only the derivation
// holding the site's lock writes its sessions.
var insertSessionsSQL = "WITH i AS " + zipArrays(1, sessionArrayColumns, "") + `,
	u AS (INSERT INTO sessions (` + strings.Join(sessionColumns, ", ") + `) SELECT * FROM i ORDER BY 1, 3, 4, 2
		RETURNING session_id, ` + sessionStateColumns + `, client_id, traffic_id, page_id)
	` + sessionsWritten

// updateSessionsSQL adds rows to the stored sessions of the same keys
// (distinct): a session's start, landing page and first event's
// dimensions stay as first written; its exit page is the last page_view
// of the derivation holding its latest event. $13 and $14 bound the
// keys' starts, as in sessionsBeforeSQL (startBounds). It
// returns each row written: the session id, its landing page and
// sessionStateColumns. The dims of its profiles, which an update leaves
// as they were, are upsertSessions' to add (sessionProfileDims):
// joined here, they were looked up row by row, since the planner
// expects one row of a join on four columns.
//
// Before, one INSERT … ON CONFLICT DO UPDATE inserted and added: for each
// stored session it probed the primary key for the insert, then locked
// the row (a WAL record) and updated it. The derivation is the only
// writer of the site's sessions, so upsertSessions knows which are stored
// and updates those alone.
var updateSessionsSQL = "WITH i AS " + zipArrays(1, sessionArrayColumns[:updateSessionColumns], "") + `
	UPDATE sessions s SET
		last_ts = greatest(s.last_ts, i.last_ts),
		events = s.events + i.events,
		page_views = s.page_views + i.page_views,
		key_events = s.key_events + i.key_events,
		engagement_ms = s.engagement_ms + i.engagement_ms,
		flags = s.flags | i.flags,
		page_id = CASE WHEN s.page_id = 0 THEN i.page_id ELSE s.page_id END,
		exit_page_id = CASE WHEN i.exit_page_id <> 0 AND i.last_ts >= s.last_ts
			THEN i.exit_page_id ELSE s.exit_page_id END
	FROM i
	WHERE s.site_id = i.site_id AND s.visitor_id = i.visitor_id AND s.session_id = i.session_id AND s.ts = i.ts
		AND s.ts >= $13 AND s.ts <= $14
	RETURNING s.session_id, s.page_id, s.` + strings.ReplaceAll(sessionStateColumns, ", ", ", s.")

// sessionProfiles are the profiles holding SessionRollupKinds' dims.
var sessionProfiles = [2]*Profile{ClientProfile, TrafficProfile}

// sessionProfileDims are, for each of sessionProfiles, the statement
// reading the dims ids of SessionRollupKinds its rows with the ids $1
// hold (sql: the id, then the profile's kinds in SessionRollupKinds
// order), how many dims it reads (cols), and where SessionRollupKinds[i]
// is among them (at[i]; -1: a kind of the other profile).
var sessionProfileDims = func() (out [2]struct {
	sql  string
	cols int
	at   []int
}) {
	for i, p := range sessionProfiles {
		names := []string{"id"}
		at := make([]int, len(SessionRollupKinds))
		for j, k := range SessionRollupKinds {
			at[j] = -1
			if ProfileOf(k) == p {
				at[j] = len(names) - 1
				names = append(names, DimColumns[k])
			}
		}
		out[i].sql = "SELECT " + strings.Join(names, ", ") + " FROM " + p.Table + " WHERE id = ANY($1)"
		out[i].cols, out[i].at = len(names)-1, at
	}
	return out
}()

// sessionsBeforeSQL reads the counters, last_ts and flags of the stored
// sessions among the keys $1..$4 (site, visitor, session id, start), and
// their client and traffic profiles (which no update changes). It runs
// before their writes, in the same transaction: only the derivation
// holding the site's lock writes its sessions, so these are the values
// the writes change, and the keys it finds are the ones to update, the
// others the ones to insert. (One statement joining the upsert's rows
// with the old ones was planned as a nested loop over both, quadratic in
// the sessions of a derivation.) $5 and $6 bound the keys' starts, the
// start of the earliest's UTC day and the end of the latest's
// (startBounds): the planner cannot bound s.ts by the array's values, and
// without them every partition of sessions (one a day, months of them)
// is probed for every key.
var sessionsBeforeSQL = `SELECT s.visitor_id, s.session_id, s.ts, s.last_ts, s.events, s.page_views, s.key_events, s.engagement_ms, s.flags, s.page_id,
		s.client_id, s.traffic_id
	FROM ` + sessionKeysZip + ` AS k
	JOIN sessions s USING (site_id, visitor_id, session_id, ts)
	WHERE s.ts >= $5 AND s.ts <= $6`

// The rows of the derivation's arrays from $2 (zipArrays): visitors
// (LookupSessions); users and their first events' times (AddKnownUsers);
// users and their first sources (SetFirstSources).
var (
	visitorsZip         = zipArrays(2, arrayColumns("visitor_id bigint"), "")
	usersFirstSeenZip   = zipArrays(2, arrayColumns("v bigint, t timestamptz"), "")
	usersFirstSourceZip = zipArrays(2, arrayColumns("v bigint, s integer"), "")
)

// sessionKeysZip is the rows of the session keys $1..$4 of sessionsBeforeSQL.
var sessionKeysZip = zipArrays(1, arrayColumns("site_id integer, visitor_id bigint, session_id bigint, ts timestamptz"), "")

// sessionKey identifies a sessions row of one site.
type sessionKey struct {
	visitor, id, start int64 // start in Unix microseconds
}

// SessionChanges are the sessions an UpsertSessions wrote, with their
// values after and before it, for WriteEvents.
type SessionChanges []sessionChange

// UpsertSessions inserts rows into sessions, or adds them to the rows
// stored before, and returns each session's values after and before.
// With a CellScratch (UseCells), the changes are in its arrays, valid
// until the next UpsertSessions of a derivation using it: pass them to
// the chunk's AddEvents or WriteEvents before.
func (d *DeriveTx) UpsertSessions(ctx context.Context, rows []SessionRow) (SessionChanges, error) {
	if len(rows) == 0 {
		return nil, nil
	}
	var sc *sessionScratch
	if d.scratch != nil {
		sc = &d.scratch.sessions
	}
	c, err := upsertSessions(ctx, d.tx, rows, sc)
	if err != nil {
		return nil, fmt.Errorf("postgres: derive site %d: %w", d.site, err)
	}
	return c, nil
}

// sessionScratch holds the arrays and map of an upsertSessions (the
// states before, their index and client profiles, the changes and their
// dims ids), emptied, for the next to reuse: they hold states of sessions
// only (no strings), and a chunk's changes are done with once its rollups
// were added.
type sessionScratch struct {
	befores []sessionState
	before  map[sessionKey]int
	clients []int32
	changes []sessionChange
	dims    []int32
}

// maxKeptSessions bounds the sessions whose arrays a sessionScratch keeps
// (some 250 bytes a session).
const maxKeptSessions = 1 << 15

// take returns the scratch, emptied, for rows sessions (new arrays for a
// nil sc).
func (sc *sessionScratch) take(rows int) sessionScratch {
	if sc == nil || sc.before == nil {
		return sessionScratch{before: make(map[sessionKey]int, rows), changes: make([]sessionChange, 0, rows),
			dims: make([]int32, 0, rows*len(SessionRollupKinds))}
	}
	clear(sc.before)
	return sessionScratch{befores: sc.befores[:0], before: sc.before, clients: sc.clients[:0],
		changes: slices.Grow(sc.changes[:0], rows), dims: slices.Grow(sc.dims[:0], rows*len(SessionRollupKinds))}
}

// keep holds the arrays and map of an upsertSessions for the next, unless
// they are past maxKeptSessions.
func (sc *sessionScratch) keep(w sessionScratch) {
	if sc == nil {
		return
	}
	if cap(w.changes) > maxKeptSessions || cap(w.befores) > maxKeptSessions || len(w.before) > maxKeptSessions {
		*sc = sessionScratch{}
		return
	}
	*sc = w
}

func upsertSessions(ctx context.Context, tx pgx.Tx, rows []SessionRow, sc *sessionScratch) (SessionChanges, error) {
	n := len(rows)
	sites, visitors, ids, starts := make([]int32, n), make([]int64, n), make([]int64, n), make([]time.Time, n)
	first, last := rows[0].TS, rows[0].TS
	for i := range rows {
		sites[i], visitors[i], ids[i], starts[i] = rows[i].Site, rows[i].Visitor, rows[i].ID, rows[i].TS
		first, last = earlierTime(first, rows[i].TS), laterTime(last, rows[i].TS)
	}
	first, last = startBounds(first, last)
	res, err := tx.Query(ctx, sessionsBeforeSQL, sites, visitors, ids, starts, first, last)
	if err != nil {
		return nil, fmt.Errorf("read sessions before upsert: %w", err)
	}
	// Rows are scanned into variables made once (fresh ones would escape
	// to the heap, row after row); the states before go into one array,
	// the map holds their indexes (map values this large would be an
	// allocation each).
	w := sc.take(len(rows))
	var (
		k      sessionKey
		ts     time.Time
		o      sessionState
		client int32
	)
	dest := []any{&k.visitor, &k.id, &ts, &o.last, &o.events, &o.pageViews, &o.keyEvents, &o.engage, &o.flags, &o.landing, &client, &o.traffic}
	for res.Next() {
		if err := res.Scan(dest...); err != nil {
			res.Close()
			return nil, fmt.Errorf("read sessions before upsert: %w", err)
		}
		k.start = ts.UnixMicro()
		w.before[k] = len(w.befores)
		w.befores, w.clients = append(w.befores, o), append(w.clients, client)
	}
	res.Close()
	if err := res.Err(); err != nil {
		return nil, fmt.Errorf("read sessions before upsert: %w", err)
	}
	// The stored sessions are updated, the others inserted, in one round
	// trip, with the dims of the stored ones' profiles.
	var stored, fresh []int32
	var from, to time.Time
	for i := range rows {
		r := &rows[i]
		if _, ok := w.before[sessionKey{r.Visitor, r.ID, r.TS.UnixMicro()}]; !ok {
			fresh = append(fresh, int32(i))
			continue
		}
		if len(stored) == 0 {
			from, to = r.TS, r.TS
		}
		stored = append(stored, int32(i))
		from, to = earlierTime(from, r.TS), laterTime(to, r.TS)
	}
	b := &pgx.Batch{}
	var profileIDs [2][]int32 // by sessionProfiles
	if len(stored) > 0 {
		seen := [2]map[int32]bool{{0: true}, {0: true}}
		for j := range w.befores {
			for p, id := range [2]int32{w.clients[j], w.befores[j].traffic} {
				if !seen[p][id] {
					seen[p][id] = true
					profileIDs[p] = append(profileIDs[p], id)
				}
			}
		}
		for p, ids := range profileIDs {
			if len(ids) > 0 {
				b.Queue(sessionProfileDims[p].sql, ids)
			}
		}
		from, to = startBounds(from, to)
		b.Queue(updateSessionsSQL, append(sessionArrays(rows, stored, true), from, to)...)
	}
	if len(fresh) > 0 {
		b.Queue(insertSessionsSQL, sessionArrays(rows, fresh, false)...)
	}
	br := tx.SendBatch(ctx, b)
	defer br.Close()
	changes, err := w.scanWritten(br, profileIDs, len(stored), len(fresh))
	if err != nil {
		return nil, err
	}
	if err := br.Close(); err != nil {
		return nil, fmt.Errorf("upsert sessions: %w", err)
	}
	sc.keep(w)
	return changes, nil
}

// scanWritten reads the results of upsertSessions' batch: the dims of the
// stored sessions' profiles (a statement for each of profileIDs not
// empty), then the rows the update wrote (stored of them) and those the
// insert did (fresh), into w.changes, with the states before of the
// stored ones.
func (w *sessionScratch) scanWritten(br pgx.BatchResults, profileIDs [2][]int32, stored, fresh int) (SessionChanges, error) {
	// The dims of each profile read, by its id (sessionProfileDims).
	var profileDims [2]map[int32][]int32
	for p, ids := range profileIDs {
		if len(ids) == 0 {
			continue
		}
		profileDims[p] = make(map[int32][]int32, len(ids))
		var id int32
		vals := make([]int32, sessionProfileDims[p].cols)
		dest := []any{&id}
		for i := range vals {
			dest = append(dest, &vals[i])
		}
		res, err := br.Query()
		if err != nil {
			return nil, fmt.Errorf("read sessions' %s: %w", sessionProfiles[p].Table, err)
		}
		_, err = pgx.ForEachRow(res, dest, func() error {
			profileDims[p][id] = slices.Clone(vals)
			return nil
		})
		if err != nil {
			return nil, fmt.Errorf("read sessions' %s: %w", sessionProfiles[p].Table, err)
		}
	}
	var c sessionChange
	// The rows' dims ids in one array (the statements return a row per
	// row given); a slice taken stays valid when an append moves the
	// array.
	updated := []any{&c.id, &c.now.landing, &c.now.site, &c.now.visitor, &c.now.ts, &c.now.last, &c.now.events,
		&c.now.pageViews, &c.now.keyEvents, &c.now.engage, &c.now.flags}
	inserted := append([]any{&c.id, &c.now.traffic, &c.now.landing}, c.now.scanDest()...)
	scanned := c.now.dims
	for _, part := range []struct {
		what   string
		rows   int
		update bool
		dest   []any
	}{{"update sessions", stored, true, updated}, {"insert sessions", fresh, false, inserted}} {
		if part.rows == 0 {
			continue
		}
		res, err := br.Query()
		if err != nil {
			return nil, fmt.Errorf("%s: %w", part.what, err)
		}
		got := 0
		for res.Next() {
			if err := res.Scan(part.dest...); err != nil {
				res.Close()
				return nil, fmt.Errorf("%s: %w", part.what, err)
			}
			got++
			ch := c
			j, ok := w.before[sessionKey{ch.now.visitor, ch.id, ch.now.ts.UnixMicro()}]
			start := len(w.dims)
			if part.update {
				if !ok {
					res.Close()
					return nil, fmt.Errorf("%s: wrote session %d of visitor %d, which was not read", part.what, ch.id, ch.now.visitor)
				}
				ch.now.traffic = w.befores[j].traffic
				for i := range SessionRollupKinds {
					var d int32
					for p, client := range [2]int32{w.clients[j], ch.now.traffic} {
						if at := sessionProfileDims[p].at[i]; at >= 0 {
							if vals, found := profileDims[p][client]; found {
								d = vals[at]
							}
						}
					}
					w.dims = append(w.dims, d)
				}
			} else {
				w.dims = append(w.dims, scanned...)
			}
			ch.now.dims = w.dims[start:len(w.dims):len(w.dims)]
			if ok {
				o := &w.befores[j] // each statement returns each key once
				b := ch.now        // same key and dims
				b.last, b.events, b.pageViews, b.keyEvents, b.engage, b.flags = o.last, o.events, o.pageViews, o.keyEvents, o.engage, o.flags
				b.landing = o.landing
				*o = b
				ch.before = o
			}
			w.changes = append(w.changes, ch)
		}
		res.Close()
		if err := res.Err(); err != nil {
			return nil, fmt.Errorf("%s: %w", part.what, err)
		}
		if got != part.rows {
			// Another writer changed the sessions since they were read.
			return nil, fmt.Errorf("%s: wrote %d rows of %d", part.what, got, part.rows)
		}
	}
	return w.changes, nil
}

// startBounds are the bounds sessionsBeforeSQL and updateSessionsSQL take
// for the starts of their sessions, from first to last: the whole UTC
// days they fall on. They are there for partition pruning (sessions has a
// partition a day), which whole days give alike; bounds as narrow as the
// starts themselves also made the planner estimate the rows between
// them, and for sessions begun after the day's partition was last
// analyzed it estimated one (past the statistics' histogram). It then
// planned a nested loop with the arrays' unnest inside, unnested again
// for every session row: quadratic in the derivation's sessions
// (docs/architecture.md, Costs: "Why the figure was bistable"). Over
// whole days the estimate is the day's rows.
func startBounds(first, last time.Time) (from, to time.Time) {
	day := first.UTC().Truncate(24 * time.Hour)
	return day, last.UTC().Truncate(24 * time.Hour).Add(24*time.Hour - time.Microsecond)
}

// earlierTime is the earlier of a and b, laterTime the later.
func earlierTime(a, b time.Time) time.Time {
	if b.Before(a) {
		return b
	}
	return a
}

func laterTime(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}

// EventFlagDerived in events.flags marks an event the write stage derived
// (session_start, first_visit), not one a sender sent; a rebuild deletes
// and derives them again. Above the protocol's 8 flag bits.
const EventFlagDerived int16 = 1 << 8

// addKnownUsersSQL inserts the users $2 (first seen at $3) of site $1
// that known_users does not hold and returns them with a source of 0, and
// the others with their first sources, where not 0. Every statement of
// it reads the rows from before its INSERT: old is the users known
// before. Those are left out of the INSERT (the anti-join) rather than
// found again by its conflict check, which probed the primary key once
// for each (nearly every user of a derivation is known), and read by a
// join of the users rather than by visitor_id = ANY($2), which the planner
// estimated element by element at every derivation. A user inserted
// meanwhile all the same is skipped (ON CONFLICT DO NOTHING) and left
// out of the answer, as before; none is: only the derivation holding the
// site's lock writes its known users.
var addKnownUsersSQL = `WITH k AS ` + usersFirstSeenZip + `,
	old AS (SELECT u.visitor_id, u.first_source_id FROM known_users u JOIN k ON u.visitor_id = k.v WHERE u.site_id = $1),
	ins AS (INSERT INTO known_users (site_id, visitor_id, first_ts)
		SELECT $1, k.v, k.t FROM k WHERE NOT EXISTS (SELECT FROM old WHERE old.visitor_id = k.v) ORDER BY 2
		ON CONFLICT DO NOTHING RETURNING visitor_id)
	SELECT visitor_id, 0 FROM ins
	UNION ALL SELECT visitor_id, first_source_id FROM old WHERE first_source_id <> 0`

// AddKnownUsers records the site's persistent users (visitor key → the
// Unix microseconds of its earliest event here) in known_users and returns
// the ones that were not known before (added: their first visit is in
// this derivation) and, for those known before, the source of their first
// session where it is known (SetFirstSources). Only the derivation holding
// the site's lock writes them.
func (d *DeriveTx) AddKnownUsers(ctx context.Context, users map[uint64]int64) (added map[uint64]bool, sources map[uint64]int32, err error) {
	if len(users) == 0 {
		return nil, nil, nil
	}
	added, sources, err = d.addKnownUsersWith(ctx, addKnownUsersSQL, users)
	if err != nil {
		return nil, nil, fmt.Errorf("postgres: derive site %d: add known users: %w", d.site, err)
	}
	return added, sources, nil
}

// addKnownUsersWith is AddKnownUsers through the statement sql, whose
// parameters are the site, the users' keys and their first times, and
// whose rows are each user it did not add with its first source (0: the
// user was added).
func (d *DeriveTx) addKnownUsersWith(ctx context.Context, sql string, users map[uint64]int64) (added map[uint64]bool, sources map[uint64]int32, err error) {
	ids, firsts := make([]int64, 0, len(users)), make([]time.Time, 0, len(users))
	for v, t := range users {
		ids, firsts = append(ids, int64(v)), append(firsts, time.UnixMicro(t).UTC())
	}
	rows, err := d.tx.Query(ctx, sql, int32(d.site), ids, firsts)
	if err != nil {
		return nil, nil, err
	}
	added, sources = map[uint64]bool{}, map[uint64]int32{}
	var v int64
	var src int32
	_, err = pgx.ForEachRow(rows, []any{&v, &src}, func() error {
		if src == 0 {
			added[uint64(v)] = true
		} else {
			sources[uint64(v)] = src
		}
		return nil
	})
	if err != nil {
		return nil, nil, err
	}
	return added, sources, nil
}

// SetFirstSources records the source (dims id) of the first session of
// users AddKnownUsers added in this derivation.
func (d *DeriveTx) SetFirstSources(ctx context.Context, sources map[uint64]int32) error {
	if len(sources) == 0 {
		return nil
	}
	ids, srcs := make([]int64, 0, len(sources)), make([]int32, 0, len(sources))
	for v, s := range sources {
		ids, srcs = append(ids, int64(v)), append(srcs, s)
	}
	if _, err := d.tx.Exec(ctx, `UPDATE known_users k SET first_source_id = u.s
		FROM `+usersFirstSourceZip+` AS u WHERE k.site_id = $1 AND k.visitor_id = u.v AND k.first_source_id = 0`,
		int32(d.site), ids, srcs); err != nil {
		return fmt.Errorf("postgres: derive site %d: first sources of new users: %w", d.site, err)
	}
	return nil
}
