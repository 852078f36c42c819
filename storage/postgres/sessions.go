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

// sessionArrays are the rows as parallel arrays, in sessionColumns order.
func sessionArrays(rows []SessionRow) []any {
	n := len(rows)
	site, visitor, id := make([]int32, n), make([]int64, n), make([]int64, n)
	ts, last := make([]time.Time, n), make([]time.Time, n)
	events, pv, ke := make([]int32, n), make([]int32, n), make([]int32, n)
	engage, flags := make([]int64, n), make([]int16, n)
	ids := make([][]int32, 7) // landing and exit page, host, referrer, client and traffic profiles, first source
	for i := range ids {
		ids[i] = make([]int32, n)
	}
	for i, r := range rows {
		site[i], ts[i], visitor[i], id[i], last[i] = r.Site, r.TS, r.Visitor, r.ID, r.Last
		events[i], pv[i], ke[i], engage[i], flags[i] = r.Events, r.PageViews, r.KeyEvents, r.Engage, r.Flags
		ids[0][i], ids[1][i], ids[2][i], ids[3][i] = r.Landing, r.Exit, r.First[DimHost-1], r.First[DimReferrer-1]
		ids[4][i], ids[5][i], ids[6][i] = r.Client, r.TrafficProfile, r.FirstSource
	}
	out := []any{site, ts, visitor, id, last, events, pv, ke, engage, flags}
	for _, a := range ids {
		out = append(out, a)
	}
	return out
}

// upsertSessionsSQL inserts sessions and adds to the ones committed before.
// Rows go in key order so that batches touching the same sessions lock them
// in one order and never deadlock. A session's start, landing page and
// first event's dimensions stay as first written; its exit page is the
// last page_view of the derivation holding its latest event.
//
// It returns every row written (sessionStateColumns and the session id).
var upsertSessionsSQL = func() string {
	types := []string{"integer", "timestamptz", "bigint", "bigint", "timestamptz", "integer", "integer",
		"integer", "bigint", "smallint"}
	for len(types) < len(sessionColumns) {
		types = append(types, "integer")
	}
	cols := make([]arrayColumn, len(sessionColumns))
	for i, c := range sessionColumns {
		cols[i] = arrayColumn{name: c, typ: types[i]}
	}
	q := "WITH i AS " + zipArrays(1, cols, "") + `,
	u AS (INSERT INTO sessions (` + strings.Join(sessionColumns, ", ") + `) SELECT * FROM i ORDER BY 1, 3, 4, 2
		ON CONFLICT (site_id, visitor_id, session_id, ts) DO UPDATE SET
		last_ts = greatest(sessions.last_ts, excluded.last_ts),
		events = sessions.events + excluded.events,
		page_views = sessions.page_views + excluded.page_views,
		key_events = sessions.key_events + excluded.key_events,
		engagement_ms = sessions.engagement_ms + excluded.engagement_ms,
		flags = sessions.flags | excluded.flags,
		page_id = CASE WHEN sessions.page_id = 0 THEN excluded.page_id ELSE sessions.page_id END,
		exit_page_id = CASE WHEN excluded.exit_page_id <> 0 AND excluded.last_ts >= sessions.last_ts
			THEN excluded.exit_page_id ELSE sessions.exit_page_id END
		RETURNING session_id, ` + sessionStateColumns + `, client_id, traffic_id, page_id)
	SELECT u.session_id, u.traffic_id, u.page_id, ` + sessionStateSelect("u") + ` FROM u ` + sessionDimsJoins("u")
	return q
}()

// sessionsBeforeSQL reads the counters, last_ts and flags of the stored
// sessions among the keys $1..$4 (site, visitor, session id, start). It
// runs before the upsert, in the same transaction: only the derivation
// holding the site's lock writes its sessions, so these are the values
// the upsert changes. (One statement joining the upsert's rows with the
// old ones was planned as a nested loop over both, quadratic in the
// sessions of a derivation.) $5 and $6 are the earliest and latest start
// among the keys: the planner cannot bound s.ts by the array's values, and
// without them every partition of sessions (one a day, months of them)
// is probed for every key.
var sessionsBeforeSQL = `SELECT s.visitor_id, s.session_id, s.ts, s.last_ts, s.events, s.page_views, s.key_events, s.engagement_ms, s.flags, s.page_id
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
// states before, their index, the changes and their dims ids), emptied,
// for the next to reuse: they hold states of sessions only (no strings),
// and a chunk's changes are done with once its rollups were added.
type sessionScratch struct {
	befores []sessionState
	before  map[sessionKey]int
	changes []sessionChange
	dims    []int32
}

// maxKeptSessions bounds the sessions whose arrays a sessionScratch keeps
// (some 250 bytes a session).
const maxKeptSessions = 1 << 15

// take returns the scratch's arrays, emptied, for rows sessions (new
// ones for a nil sc).
func (sc *sessionScratch) take(rows int) (befores []sessionState, before map[sessionKey]int, changes []sessionChange, dims []int32) {
	if sc == nil || sc.before == nil {
		return nil, make(map[sessionKey]int, rows), make([]sessionChange, 0, rows), make([]int32, 0, rows*len(SessionRollupKinds))
	}
	clear(sc.before)
	return sc.befores[:0], sc.before, slices.Grow(sc.changes[:0], rows), slices.Grow(sc.dims[:0], rows*len(SessionRollupKinds))
}

// keep holds the arrays and map of an upsertSessions for the next, unless
// they are past maxKeptSessions.
func (sc *sessionScratch) keep(befores []sessionState, before map[sessionKey]int, changes []sessionChange, dims []int32) {
	if sc == nil {
		return
	}
	if cap(changes) > maxKeptSessions || cap(befores) > maxKeptSessions || len(before) > maxKeptSessions {
		*sc = sessionScratch{}
		return
	}
	sc.befores, sc.before, sc.changes, sc.dims = befores, before, changes, dims
}

func upsertSessions(ctx context.Context, tx pgx.Tx, rows []SessionRow, sc *sessionScratch) (SessionChanges, error) {
	n := len(rows)
	sites, visitors, ids, starts := make([]int32, n), make([]int64, n), make([]int64, n), make([]time.Time, n)
	first, last := rows[0].TS, rows[0].TS
	for i := range rows {
		sites[i], visitors[i], ids[i], starts[i] = rows[i].Site, rows[i].Visitor, rows[i].ID, rows[i].TS
		if rows[i].TS.Before(first) {
			first = rows[i].TS
		}
		if rows[i].TS.After(last) {
			last = rows[i].TS
		}
	}
	b := &pgx.Batch{}
	b.Queue(sessionsBeforeSQL, sites, visitors, ids, starts, first, last)
	b.Queue(upsertSessionsSQL, sessionArrays(rows)...)
	br := tx.SendBatch(ctx, b)
	defer br.Close()
	res, err := br.Query()
	if err != nil {
		return nil, fmt.Errorf("read sessions before upsert: %w", err)
	}
	// Rows are scanned into variables made once (fresh ones would escape
	// to the heap, row after row); the states before go into one array,
	// the map holds their indexes (map values this large would be an
	// allocation each).
	befores, before, changes, dims := sc.take(len(rows))
	var (
		k  sessionKey
		ts time.Time
		o  sessionState
	)
	dest := []any{&k.visitor, &k.id, &ts, &o.last, &o.events, &o.pageViews, &o.keyEvents, &o.engage, &o.flags, &o.landing}
	for res.Next() {
		if err := res.Scan(dest...); err != nil {
			res.Close()
			return nil, fmt.Errorf("read sessions before upsert: %w", err)
		}
		k.start = ts.UnixMicro()
		before[k] = len(befores)
		befores = append(befores, o)
	}
	res.Close()
	if err := res.Err(); err != nil {
		return nil, fmt.Errorf("read sessions before upsert: %w", err)
	}
	if res, err = br.Query(); err != nil {
		return nil, fmt.Errorf("upsert sessions: %w", err)
	}
	defer res.Close()
	// The rows' dims ids in one array (the upsert returns a row per row
	// given); a slice taken stays valid when an append moves the array.
	var c sessionChange
	dest = append([]any{&c.id, &c.now.traffic, &c.now.landing}, c.now.scanDest()...)
	scanned := c.now.dims
	for res.Next() {
		if err := res.Scan(dest...); err != nil {
			return nil, fmt.Errorf("upsert sessions: %w", err)
		}
		ch := c
		start := len(dims)
		dims = append(dims, scanned...)
		ch.now.dims = dims[start:len(dims):len(dims)]
		if j, ok := before[sessionKey{ch.now.visitor, ch.id, ch.now.ts.UnixMicro()}]; ok {
			o := &befores[j] // the upsert returns each key once
			b := ch.now      // same key and dims
			b.last, b.events, b.pageViews, b.keyEvents, b.engage, b.flags = o.last, o.events, o.pageViews, o.keyEvents, o.engage, o.flags
			b.landing = o.landing
			*o = b
			ch.before = o
		}
		changes = append(changes, ch)
	}
	if err := res.Err(); err != nil {
		return nil, fmt.Errorf("upsert sessions: %w", err)
	}
	sc.keep(befores, before, changes, dims)
	return changes, nil
}

// EventFlagDerived in events.flags marks an event the write stage derived
// (session_start, first_visit), not one a sender sent; a rebuild deletes
// and derives them again. Above the protocol's 8 flag bits.
const EventFlagDerived int16 = 1 << 8

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
	ids, firsts := make([]int64, 0, len(users)), make([]time.Time, 0, len(users))
	for v, t := range users {
		ids, firsts = append(ids, int64(v)), append(firsts, time.UnixMicro(t).UTC())
	}
	// The SELECT of known_users reads the rows from before the INSERT:
	// those known before, with their first sources.
	rows, err := d.tx.Query(ctx, `WITH ins AS (INSERT INTO known_users (site_id, visitor_id, first_ts)
		SELECT $1, k.v, k.t FROM `+usersFirstSeenZip+` AS k ORDER BY 2
		ON CONFLICT DO NOTHING RETURNING visitor_id)
		SELECT visitor_id, 0 FROM ins
		UNION ALL SELECT visitor_id, first_source_id FROM known_users WHERE site_id = $1 AND visitor_id = ANY($2) AND first_source_id <> 0`,
		int32(d.site), ids, firsts)
	if err != nil {
		return nil, nil, fmt.Errorf("postgres: derive site %d: add known users: %w", d.site, err)
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
		return nil, nil, fmt.Errorf("postgres: derive site %d: add known users: %w", d.site, err)
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
