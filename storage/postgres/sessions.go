package postgres

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/avila-analytics/avila/aggregator/sessions"
	"github.com/avila-analytics/avila/protocol"
	"github.com/jackc/pgx/v5"
)

// SessionFlagNew in sessions.flags marks a new user's session (GA4
// newVsReturning "new"); the other bits are the events' protocol flags.
const SessionFlagNew int16 = 1 << 7

// firstVisitName is the event GA4 logs on a client's first visit.
const firstVisitName = "first_visit"

// SetSessionCache replaces the cache of visitors' latest sessions (by
// default in process memory) with c, e.g. Redis shared by the cluster. The
// cache is only an accelerator: sessions are looked up in the database
// whenever it misses or fails.
func (s *Store) SetSessionCache(c sessions.Cache) { s.sessCache = c }

// sessionRow is one sessions row to insert, or to add to when the session
// was committed before.
type sessionRow struct {
	site                         int32
	ts, last                     time.Time
	visitor, id                  int64
	events, pageViews, keyEvents int32
	engage                       int64
	flags                        int16
	landing, exit                int32
	first                        *[numDimKinds]int32 // the first event's dims ids
	client                       int32               // the first event's client profile id
	traffic                      [numDimKinds]int32  // attribution ids at the traffic kinds
	trafficProfile               int32               // their traffic profile id
	firstSource                  int32
}

// sessionColumns is the sessions column list of upsertSessions.
var sessionColumns = []string{"site_id", "ts", "visitor_id", "session_id", "last_ts", "events", "page_views",
	"key_events", "engagement_ms", "flags", "page_id", "exit_page_id",
	"host_id", "referrer_id", "client_id", "traffic_id", "first_source_id"}

// assignSessions gives the batch's events their sessions: from the cache
// for visitors it covers, else from the sessions committed in the database.
// It runs in the batch's transaction, after lockVisitors.
func (s *Store) assignSessions(ctx context.Context, tx pgx.Tx, events []protocol.Event) (sessions.Assignment, map[sessions.Key][]sessions.Session, error) {
	if len(events) == 0 {
		return sessions.Assignment{}, nil, nil
	}
	var keys []sessions.Key
	seen := make(map[sessions.Key]bool)
	lo, hi := events[0].TimeMicros, events[0].TimeMicros
	for i := range events {
		e := &events[i]
		k := sessions.Key{Site: e.Site, Visitor: e.Visitor}
		if !seen[k] {
			seen[k] = true
			keys = append(keys, k)
		}
		lo, hi = min(lo, e.TimeMicros), max(hi, e.TimeMicros)
	}
	cached, err := s.sessCache.Get(ctx, keys)
	if err != nil {
		s.logSessionCache("get", err)
		cached = nil
	}
	covered := make(map[sessions.Key]bool, len(cached))
	for k := range cached {
		covered[k] = true
	}
	for i := range events {
		e := &events[i]
		k := sessions.Key{Site: e.Site, Visitor: e.Visitor}
		if covered[k] && !sessions.CacheCovers(cached[k], e.SessionID, e.TimeMicros) {
			covered[k] = false
		}
	}
	known := make(map[sessions.Key][]sessions.Session, len(keys))
	var sites []int32
	var visitors []int64
	for _, k := range keys {
		if covered[k] {
			known[k] = []sessions.Session{cached[k]}
			continue
		}
		sites, visitors = append(sites, int32(k.Site)), append(visitors, int64(k.Visitor))
	}
	if len(sites) > 0 {
		from := time.UnixMicro(lo).Add(-sessions.Lookback)
		to := time.UnixMicro(hi).Add(sessions.Timeout)
		rows, err := tx.Query(ctx, `SELECT s.site_id, s.visitor_id, s.session_id, s.ts, s.last_ts, s.first_source_id
			FROM sessions s JOIN unnest($1::integer[], $2::bigint[]) AS k(site_id, visitor_id) USING (site_id, visitor_id)
			WHERE s.ts >= $3 AND s.ts <= $4`, sites, visitors, from, to)
		if err != nil {
			return sessions.Assignment{}, nil, fmt.Errorf("look up sessions: %w", err)
		}
		for rows.Next() {
			var site int32
			var visitor, id int64
			var ts, last time.Time
			var firstSource int32
			if err := rows.Scan(&site, &visitor, &id, &ts, &last, &firstSource); err != nil {
				rows.Close()
				return sessions.Assignment{}, nil, fmt.Errorf("look up sessions: %w", err)
			}
			k := sessions.Key{Site: uint32(site), Visitor: uint64(visitor)}
			known[k] = append(known[k], sessions.Session{ID: id, Start: ts.UnixMicro(), Last: last.UnixMicro(), FirstSource: firstSource})
		}
		if err := rows.Err(); err != nil {
			return sessions.Assignment{}, nil, fmt.Errorf("look up sessions: %w", err)
		}
	}
	return sessions.Assign(events, known), known, nil
}

func (s *Store) logSessionCache(op string, err error) {
	if n, ok := s.sessLog.Allow(time.Now()); ok {
		s.log.Warn("session cache unavailable; looking sessions up in the database", "op", op, "err", err, "suppressed", n)
	}
}

// visitorLockBuckets is the number of visitor locks per site: a batch
// holds at most this many (PostgreSQL's shared lock table has room for
// about max_locks_per_transaction × max_connections locks in all, 6400 by
// default, so one lock per visitor would run it out under load).
const visitorLockBuckets = 256

// lockVisitors takes the transaction locks of the batch's visitors:
// advisory, on site and a bucket of the visitor id (the two-key form, apart
// from the store's other advisory locks), in one sorted order so batches
// never deadlock over them. Visitors sharing a bucket wait for each other,
// so concurrent batches of one site mostly take turns from here to commit.
func lockVisitors(ctx context.Context, tx pgx.Tx, events []protocol.Event) error {
	type key struct{ site, bucket int32 }
	seen := make(map[key]bool)
	var keys []key
	for i := range events {
		v := events[i].Visitor
		k := key{int32(events[i].Site), int32((v ^ v>>32) % visitorLockBuckets)}
		if !seen[k] {
			seen[k] = true
			keys = append(keys, k)
		}
	}
	if len(keys) == 0 {
		return nil
	}
	slices.SortFunc(keys, func(a, b key) int { return cmp.Or(cmp.Compare(a.site, b.site), cmp.Compare(a.bucket, b.bucket)) })
	sites, buckets := make([]int32, len(keys)), make([]int32, len(keys))
	for i, k := range keys {
		sites[i], buckets[i] = k.site, k.bucket
	}
	// unnest yields the arrays in order, and the aggregate calls the
	// function row by row: the locks are taken in the sorted order.
	if _, err := tx.Exec(ctx, "SELECT count(pg_advisory_xact_lock(s, v)) FROM unnest($1::integer[], $2::integer[]) AS k(s, v)",
		sites, buckets); err != nil {
		return fmt.Errorf("lock visitors: %w", err)
	}
	return nil
}

// batchTraffic holds the traffic source ids of each distinct (site, page,
// referrer) of a batch: any event may turn out to start a session.
type batchTraffic struct {
	pairs    []trafficPair
	ids      [][numDimKinds]int32 // by pair: ids at the traffic kinds; not grown once filled
	profiles []int32              // by pair: traffic profile id
	of       []int32              // by event: index into pairs
}

type trafficPair struct {
	site           uint32
	path, referrer string
}

func newBatchTraffic(events []protocol.Event) *batchTraffic {
	t := &batchTraffic{of: make([]int32, len(events))}
	index := make(map[trafficPair]int32)
	for i := range events {
		p := trafficPair{events[i].Site, events[i].Path, events[i].Referrer}
		j, ok := index[p]
		if !ok {
			j = int32(len(t.pairs))
			index[p] = j
			t.pairs = append(t.pairs, p)
		}
		t.of[i] = j
	}
	t.ids = make([][numDimKinds]int32, len(t.pairs))
	return t
}

// sessionRows builds the rows of the assigned sessions from the batch's
// event rows (dims resolved) and the traffic ids of their first events. A
// session that starts in the batch gets its traffic source on its first
// event row too, as a sender's session_start has it, so event reports and
// RebuildSessions find it whoever cut the session.
func sessionRows(events []protocol.Event, rows []eventRow, as *sessions.Assignment, tr *batchTraffic) []sessionRow {
	out := make([]sessionRow, len(as.Sessions))
	for i := range as.Sessions {
		a := &as.Sessions[i]
		r := &out[i]
		first := &rows[a.Events[0]]
		r.site, r.visitor, r.id = first.site, first.visitor, a.ID
		r.ts, r.last = time.UnixMicro(a.Start).UTC(), time.UnixMicro(a.Last).UTC()
		r.first, r.client = &first.dims, first.client
		r.traffic, r.trafficProfile = tr.ids[tr.of[a.Events[0]]], tr.profiles[tr.of[a.Events[0]]]
		if !a.Existing && first.traffic == 0 {
			first.traffic = r.trafficProfile
			for _, k := range TrafficProfile.Kinds {
				first.dims[k-1] = r.traffic[k-1]
			}
		}
		newUser, returning := false, false
		for _, ei := range a.Events {
			e, row := &events[ei], &rows[ei]
			r.events++
			r.engage += int64(row.engage)
			r.flags |= int16(e.Flags)
			if e.Flags&protocol.FlagKeyEvent != 0 {
				r.keyEvents++
			}
			if row.pageView {
				r.pageViews++
				if r.landing == 0 {
					r.landing = row.dims[DimPagePath-1]
				}
				if row.dims[DimPagePath-1] != 0 {
					r.exit = row.dims[DimPagePath-1]
				}
			}
			if e.Flags&protocol.FlagFirstVisit != 0 || e.Name == firstVisitName || e.SessionNum == 1 {
				newUser = true
			}
			if e.SessionNum > 1 {
				returning = true
			}
		}
		// Without the sender's word (first visit, session count), a
		// visitor id's first session is a new user's.
		if newUser || (!a.Existing && !returning && !a.Prior) {
			r.flags |= SessionFlagNew
		}
		switch {
		case a.FirstSourceOf >= 0: // an earlier session of this batch
			r.firstSource = out[a.FirstSourceOf].firstSource
		case !a.Prior && !a.Existing:
			r.firstSource = r.traffic[DimSource-1]
		default:
			r.firstSource = a.FirstSource
		}
	}
	return out
}

// sessionArrays are the rows as parallel arrays, in sessionColumns order.
func sessionArrays(rows []sessionRow) []any {
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
		site[i], ts[i], visitor[i], id[i], last[i] = r.site, r.ts, r.visitor, r.id, r.last
		events[i], pv[i], ke[i], engage[i], flags[i] = r.events, r.pageViews, r.keyEvents, r.engage, r.flags
		ids[0][i], ids[1][i], ids[2][i], ids[3][i] = r.landing, r.exit, r.first[DimHost-1], r.first[DimReferrer-1]
		ids[4][i], ids[5][i], ids[6][i] = r.client, r.trafficProfile, r.firstSource
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
// last page_view of the batch holding its latest event.
//
// It returns every row written (sessionStateColumns) with the counters,
// last_ts and flags the row had before (NULL for a new row): the batch's
// visitor locks keep other writers out, so the statement's snapshot holds
// the values its upsert changes.
var upsertSessionsSQL = func() string {
	types := []string{"integer", "timestamptz", "bigint", "bigint", "timestamptz", "integer", "integer",
		"integer", "bigint", "smallint"}
	for len(types) < len(sessionColumns) {
		types = append(types, "integer")
	}
	q := "WITH i AS (SELECT * FROM unnest("
	for i, t := range types {
		if i > 0 {
			q += ", "
		}
		q += "$" + strconv.Itoa(i+1) + "::" + t + "[]"
	}
	q += ") AS i(" + strings.Join(sessionColumns, ", ") + `)),
	o AS (SELECT s.site_id, s.visitor_id, s.session_id, s.ts, s.last_ts, s.events, s.page_views, s.key_events,
		s.engagement_ms, s.flags FROM sessions s JOIN i USING (site_id, visitor_id, session_id, ts)),
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
		RETURNING session_id, ` + sessionStateColumns + `, client_id, traffic_id)
	SELECT ` + sessionStateSelect("u") + `, o.last_ts, o.events, o.page_views, o.key_events, o.engagement_ms, o.flags
	FROM u LEFT JOIN o USING (site_id, visitor_id, session_id, ts) ` + sessionDimsJoins("u")
	return q
}()

// writeSessions upserts the batch's sessions in its transaction and
// returns each session's values after and before the batch.
func writeSessions(ctx context.Context, tx pgx.Tx, rows []sessionRow) ([]sessionChange, error) {
	if len(rows) == 0 {
		return nil, nil
	}
	res, err := tx.Query(ctx, upsertSessionsSQL, sessionArrays(rows)...)
	if err != nil {
		return nil, fmt.Errorf("upsert sessions: %w", err)
	}
	defer res.Close()
	changes := make([]sessionChange, 0, len(rows))
	for res.Next() {
		var c sessionChange
		var last *time.Time
		var events, pageViews, keyEvents *int32
		var engage *int64
		var flags *int16
		dest := append(c.now.scanDest(), &last, &events, &pageViews, &keyEvents, &engage, &flags)
		if err := res.Scan(dest...); err != nil {
			return nil, fmt.Errorf("upsert sessions: %w", err)
		}
		if last != nil {
			b := c.now // same key and dims
			b.last, b.events, b.pageViews, b.keyEvents, b.engage, b.flags = *last, *events, *pageViews, *keyEvents, *engage, *flags
			c.before = &b
		}
		changes = append(changes, c)
	}
	if err := res.Err(); err != nil {
		return nil, fmt.Errorf("upsert sessions: %w", err)
	}
	return changes, nil
}

// cacheSessions records the visitors' latest sessions, just before the
// batch commits. A visitor whose batch only touched an older session keeps
// what the cache has.
func (s *Store) cacheSessions(ctx context.Context, rows []sessionRow, known map[sessions.Key][]sessions.Session) {
	latest := make(map[sessions.Key]sessions.Session, len(rows))
	for _, r := range rows {
		k := sessions.Key{Site: uint32(r.site), Visitor: uint64(r.visitor)}
		v := sessions.Session{ID: r.id, Start: r.ts.UnixMicro(), Last: r.last.UnixMicro(), FirstSource: r.firstSource}
		if old, ok := latest[k]; ok && old.Start > v.Start {
			continue
		}
		newer := false
		for _, o := range known[k] {
			if o.Start > v.Start {
				newer = true
			} else if o.Start == v.Start && o.ID == v.ID {
				v.Last = max(v.Last, o.Last)
			}
		}
		if !newer {
			latest[k] = v
		}
	}
	if err := s.sessCache.Put(ctx, latest); err != nil {
		s.logSessionCache("put", err)
	}
}
