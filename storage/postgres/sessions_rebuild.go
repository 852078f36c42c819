package postgres

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/avila-analytics/avila/protocol"
)

// RebuildSessions recomputes a site's sessions rows, and the session_start
// and first_visit events the write stage derives (rebuildDerivedEvents),
// from its events, for
// events that reached the events table without the write stage (bulk loads,
// imports): one row per visitor and session id, as the write stage writes it.
// Two differences, as events do not keep everything the write stage saw: a
// session is a new user's when it holds a first visit (flag or event) or is
// the first of its visitor id, whatever session count the sender gave; and
// its traffic source is the one its session-start event carries (GA4's _ss,
// which gtag.js sets on a session's first hit), none without one. Like
// RebuildRollups it runs in one transaction holding the site's row lock,
// which a derivation waits for.
func (s *Store) RebuildSessions(ctx context.Context, site uint32) error {
	return s.rebuildSessionsTx(ctx, site, true)
}

// RebuildSessionsBeforeRollups is RebuildSessions for a RebuildRollups that
// follows it (avila rebuild runs both): it leaves the session rollups to
// RebuildRollups, which recomputes them from the same sessions, so their
// rows are written once, not twice (a second rewrite in its own
// transaction leaves the first one's rows dead in the table's file, twice
// its size until vacuumed space is reused). Until RebuildRollups commits,
// the site's session rollups cover no day before tomorrow, so session
// reports read the rebuilt sessions table.
func (s *Store) RebuildSessionsBeforeRollups(ctx context.Context, site uint32) error {
	return s.rebuildSessionsTx(ctx, site, false)
}

// rebuildSessionsTx runs rebuildSessions in a transaction of its own.
func (s *Store) rebuildSessionsTx(ctx context.Context, site uint32, sessionRollups bool) error {
	tx, err := s.pool.Begin(ctx)
	if err != nil {
		return fmt.Errorf("postgres: rebuild sessions of site %d: begin: %w", site, err)
	}
	defer tx.Rollback(context.WithoutCancel(ctx)) // no-op after Commit
	if err := rebuildSessions(ctx, tx, int32(site), sessionRollups); err != nil {
		return fmt.Errorf("postgres: rebuild sessions of site %d: %w", site, err)
	}
	if err := tx.Commit(ctx); err != nil {
		return fmt.Errorf("postgres: rebuild sessions of site %d: commit: %w", site, err)
	}
	return nil
}

func rebuildSessions(ctx context.Context, tx pgx.Tx, site int32, sessionRollups bool) error {
	loc, err := lockSite(ctx, tx, site)
	if err != nil {
		return err
	}
	ids := map[string]int32{pageViewName: -1, firstVisitName: -1} // -1 matches no name_id
	rows, err := tx.Query(ctx, "SELECT value, id FROM dims WHERE site_id = $1 AND kind = $2 AND value = ANY($3)",
		site, DimEventName, []string{pageViewName, firstVisitName})
	if err != nil {
		return fmt.Errorf("event name ids: %w", err)
	}
	for rows.Next() {
		var name string
		var id int32
		if err := rows.Scan(&name, &id); err != nil {
			rows.Close()
			return fmt.Errorf("event name ids: %w", err)
		}
		ids[name] = id
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("event name ids: %w", err)
	}
	if err := rebuildDerivedEvents(ctx, tx, site); err != nil {
		return err
	}
	if _, err := tx.Exec(ctx, "DELETE FROM sessions WHERE site_id = $1", site); err != nil {
		return fmt.Errorf("delete sessions: %w", err)
	}
	_, err = tx.Exec(ctx, rebuildSessionsSQL, site, ids[pageViewName], ids[firstVisitName],
		int16(protocol.FlagKeyEvent), int16(protocol.FlagFirstVisit), SessionFlagNew)
	if err != nil {
		return fmt.Errorf("insert sessions: %w", err)
	}
	// A known user's first source is the one the derivation kept (its first
	// session may be gone by retention), else its first session's here,
	// kept for the derivations after.
	if _, err := tx.Exec(ctx, `UPDATE known_users k SET first_source_id = f.first_source_id
		FROM (SELECT DISTINCT ON (visitor_id) visitor_id, first_source_id FROM sessions WHERE site_id = $1
		      ORDER BY visitor_id, ts, session_id) f
		WHERE k.site_id = $1 AND k.visitor_id = f.visitor_id AND k.first_source_id = 0 AND f.first_source_id <> 0`, site); err != nil {
		return fmt.Errorf("first sources of known users: %w", err)
	}
	if _, err := tx.Exec(ctx, `UPDATE sessions s SET first_source_id = k.first_source_id FROM known_users k
		WHERE s.site_id = $1 AND k.site_id = $1 AND k.visitor_id = s.visitor_id AND k.first_source_id <> 0
		AND s.first_source_id <> k.first_source_id`, site); err != nil {
		return fmt.Errorf("first sources of sessions: %w", err)
	}
	if !sessionRollups {
		// Days from tomorrow on, as for a site whose session rollups
		// began now (migration 010): derivations keep adding theirs.
		if _, err := tx.Exec(ctx, "UPDATE sites SET session_rollups_from = (now() AT TIME ZONE time_zone)::date + 1 WHERE id = $1", site); err != nil {
			return fmt.Errorf("session rollups left to rebuild: %w", err)
		}
		return nil
	}
	return rebuildSessionRollups(ctx, tx, site, loc)
}

// rebuildSessionRollups recomputes the site's session_rollups rows from its
// sessions rows, in tx (which holds the site's row lock), and marks every
// day covered; loc is the site's time zone. A session's visitor is active
// in them as its events tell (readSessionActivity), read for the sessions
// that began in sessionRollupChunk days at a time; the cells of sessions
// not active on the days rollup_user_days keeps go into the rows'
// session_cells.
func rebuildSessionRollups(ctx context.Context, tx pgx.Tx, site int32, loc *time.Location) error {
	if _, err := tx.Exec(ctx, "DELETE FROM session_rollups WHERE site_id = $1", site); err != nil {
		return fmt.Errorf("delete session rollups: %w", err)
	}
	if _, err := tx.Exec(ctx, "UPDATE rollup_user_days SET session_cells = NULL WHERE site_id = $1 AND session_cells IS NOT NULL", site); err != nil {
		return fmt.Errorf("clear session cells: %w", err)
	}
	var first, last *time.Time
	if err := tx.QueryRow(ctx, "SELECT min(ts), max(ts) FROM sessions WHERE site_id = $1", site).Scan(&first, &last); err != nil {
		return fmt.Errorf("session span: %w", err)
	}
	agg := make(sessionRollupAgg)
	keepFrom := int32(userDaysFrom(time.Now(), loc).Unix() / 86400)
	pending := map[userDay]map[int64]struct{}{}
	if first != nil && last != nil {
		y, m, d := first.In(loc).Date()
		for lo := time.Date(y, m, d, 0, 0, 0, 0, loc); !lo.After(*last); lo = lo.AddDate(0, 0, sessionRollupChunk) {
			hi := lo.AddDate(0, 0, sessionRollupChunk)
			act, err := readSessionActivity(ctx, tx, site, loc, lo, sessionEventsEnd(hi, loc), nil, true, keepFrom)
			if err != nil {
				return err
			}
			act.pending = pending
			if err := aggregateSessions(ctx, tx, agg, loc, act, "s.ts >= $2 AND s.ts < $3", site, lo, hi); err != nil {
				return fmt.Errorf("read sessions: %w", err)
			}
		}
	}
	if err := storeRollupRounds(ctx, tx, slices.SortedFunc(maps.Keys(agg), compareRollupKeys), agg, nil); err != nil {
		return err
	}
	if err := writeSessionCells(ctx, tx, site, pending); err != nil {
		return err
	}
	if _, err := tx.Exec(ctx, "UPDATE sites SET session_rollups_from = '-infinity' WHERE id = $1", site); err != nil {
		return fmt.Errorf("mark session rollups: %w", err)
	}
	return nil
}

// sessionRollupChunk is how many local days of session starts a rebuild
// of session rollups reads at a time (with sessionDaysAfter more of
// events), bounding what it holds of the sessions' activity.
const sessionRollupChunk = 28

// rebuildSessionsSQL aggregates a site's events ($1) by visitor and session
// into sessions rows. $2 and $3 are the page_view and first_visit name ids,
// $4 and $5 the key event and first visit flags, $6 SessionFlagNew.
var rebuildSessionsSQL = `
WITH ev AS (
	SELECT e.visitor_id, e.session_id, e.ts, e.name_id, e.flags, e.engagement_ms, e.referrer_id,
	       e.client_id, e.traffic_id, COALESCE(c.host_id, 0) AS host_id, COALESCE(c.page_id, 0) AS page_id
	FROM ` + EventsIn("$1", "'-infinity'", "'infinity'", EventColumns) + ` e LEFT JOIN content_profiles c ON c.id = e.content_id
	WHERE e.site_id = $1
), s AS (
	SELECT visitor_id, session_id, min(ts) AS ts, max(ts) AS last_ts, count(*)::integer AS events,
	       count(*) FILTER (WHERE name_id = $2)::integer AS page_views,
	       count(*) FILTER (WHERE flags & $4 <> 0)::integer AS key_events,
	       sum(engagement_ms)::bigint AS engagement_ms,
	       (bit_or(flags) & 255)::smallint AS flags, -- the protocol's flags, not EventFlagDerived
	       bool_or(flags & $5 <> 0 OR name_id = $3) AS first_visit,
	       (array_agg(page_id ORDER BY ts) FILTER (WHERE name_id = $2 AND page_id <> 0))[1] AS landing,
	       (array_agg(page_id ORDER BY ts DESC) FILTER (WHERE name_id = $2 AND page_id <> 0))[1] AS exit,
	       (array_agg(host_id ORDER BY ts))[1] AS host_id,
	       (array_agg(referrer_id ORDER BY ts))[1] AS referrer_id,
	       (array_agg(client_id ORDER BY ts))[1] AS client_id,
	       (array_agg(traffic_id ORDER BY ts) FILTER (WHERE traffic_id <> 0))[1] AS traffic_id
	FROM ev GROUP BY visitor_id, session_id
)
INSERT INTO sessions (site_id, ts, visitor_id, session_id, last_ts, events, page_views, key_events, engagement_ms,
	flags, page_id, exit_page_id, host_id, referrer_id, client_id, traffic_id, first_source_id)
SELECT $1, s.ts, s.visitor_id, s.session_id, s.last_ts, s.events, s.page_views, s.key_events, s.engagement_ms,
       s.flags | CASE WHEN s.first_visit OR row_number() OVER w = 1 THEN $6::smallint ELSE 0::smallint END,
       COALESCE(s.landing, 0), COALESCE(s.exit, 0), s.host_id, s.referrer_id, s.client_id, COALESCE(s.traffic_id, 0),
       first_value(COALESCE(t.source_id, 0)) OVER w
FROM s
LEFT JOIN traffic_profiles t ON t.id = s.traffic_id
WINDOW w AS (PARTITION BY s.visitor_id ORDER BY s.ts, s.session_id)`

// sessionStartName is the event GA4 adds to every session.
const sessionStartName = "session_start"

// rebuildDerivedEvents deletes the site's derived events (EventFlagDerived)
// from the events table and derives them again from the events, as the
// write stage does: a session_start on the first event of every session
// that holds no session_start, a first_visit on the first event of every
// new user's session (a first visit flag, or its visitor's first session)
// that holds no first_visit. Each copies its trigger's time, visitor,
// session, page, referrer and client profile; session_start carries the
// session's traffic profile. Days already packed (event_packs) keep the
// derived events they hold and get none added.
func rebuildDerivedEvents(ctx context.Context, tx pgx.Tx, site int32) error {
	if _, err := tx.Exec(ctx, "DELETE FROM events WHERE site_id = $1 AND flags & $2 <> 0", site, EventFlagDerived); err != nil {
		return fmt.Errorf("delete derived events: %w", err)
	}
	if _, err := tx.Exec(ctx, `INSERT INTO dims (site_id, kind, value)
		SELECT $1, $2, v FROM unnest($3::text[]) AS v ORDER BY 3 ON CONFLICT DO NOTHING`,
		site, DimEventName, []string{firstVisitName, sessionStartName}); err != nil {
		return fmt.Errorf("event name ids: %w", err)
	}
	_, err := tx.Exec(ctx, rebuildDerivedEventsSQL, site, DimEventName, int16(protocol.FlagSessionStart), int16(protocol.FlagFirstVisit),
		int16(protocol.FlagPersistent), EventFlagDerived)
	if err != nil {
		return fmt.Errorf("insert derived events: %w", err)
	}
	return nil
}

// rebuildDerivedEventsSQL: $1 site, $2 the event name kind, $3 … $6 the
// session start, first visit, persistent and derived flags.
var rebuildDerivedEventsSQL = `
WITH names AS (
	SELECT (SELECT id FROM dims WHERE site_id = $1 AND kind = $2 AND value = '` + sessionStartName + `') AS start_id,
	       (SELECT id FROM dims WHERE site_id = $1 AND kind = $2 AND value = '` + firstVisitName + `') AS first_id
), ev AS (
	SELECT * FROM ` + EventsIn("$1", "'-infinity'", "'infinity'", EventColumns) + ` e WHERE e.site_id = $1
), s AS (
	SELECT visitor_id, session_id,
	       (array_agg(referrer_id ORDER BY ts, name_id))[1] AS referrer_id,
	       (array_agg(content_id ORDER BY ts, name_id))[1] AS content_id,
	       (array_agg(client_id ORDER BY ts, name_id))[1] AS client_id,
	       (array_agg(flags ORDER BY ts, name_id))[1] AS flags,
	       (array_agg(traffic_id ORDER BY ts) FILTER (WHERE traffic_id <> 0))[1] AS traffic_id,
	       bool_or(name_id = (SELECT start_id FROM names)) AS has_start,
	       bool_or(name_id = (SELECT first_id FROM names)) AS has_first,
	       bool_or(flags & $4 <> 0 OR name_id = (SELECT first_id FROM names)) AS first_visit,
	       min(ts) AS ts
	FROM ev GROUP BY visitor_id, session_id
), n AS (
	SELECT s.*, row_number() OVER (PARTITION BY visitor_id ORDER BY ts, session_id) AS nth FROM s
), d AS (
	SELECT * FROM n
	WHERE EXISTS (SELECT 1 FROM events x WHERE x.site_id = $1 AND x.ts = n.ts AND x.visitor_id = n.visitor_id)
)
INSERT INTO events (ts, visitor_id, session_id, site_id, name_id, referrer_id, content_id, client_id, traffic_id,
	engagement_ms, flags, params)
SELECT d.ts, d.visitor_id, d.session_id, $1, (SELECT start_id FROM names), d.referrer_id, d.content_id,
       d.client_id, COALESCE(d.traffic_id, 0), 0, ($3 | (d.flags & $5) | $6)::smallint, ''::bytea
FROM d WHERE NOT d.has_start
UNION ALL
SELECT d.ts, d.visitor_id, d.session_id, $1, (SELECT first_id FROM names), d.referrer_id, d.content_id,
       d.client_id, 0, 0, ($4 | (d.flags & $5) | $6)::smallint, ''::bytea
FROM d WHERE NOT d.has_first AND (d.first_visit OR d.nth = 1)`
