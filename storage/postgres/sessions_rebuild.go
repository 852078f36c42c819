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

// RebuildSessions recomputes a site's sessions rows from its events, for
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
	tx, err := s.Pool.Begin(ctx)
	if err != nil {
		return fmt.Errorf("postgres: rebuild sessions of site %d: begin: %w", site, err)
	}
	defer tx.Rollback(context.WithoutCancel(ctx)) // no-op after Commit
	if err := rebuildSessions(ctx, tx, int32(site)); err != nil {
		return fmt.Errorf("postgres: rebuild sessions of site %d: %w", site, err)
	}
	if err := tx.Commit(ctx); err != nil {
		return fmt.Errorf("postgres: rebuild sessions of site %d: commit: %w", site, err)
	}
	return nil
}

func rebuildSessions(ctx context.Context, tx pgx.Tx, site int32) error {
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
	if _, err := tx.Exec(ctx, "DELETE FROM sessions WHERE site_id = $1", site); err != nil {
		return fmt.Errorf("delete sessions: %w", err)
	}
	_, err = tx.Exec(ctx, rebuildSessionsSQL, site, ids[pageViewName], ids[firstVisitName],
		int16(protocol.FlagKeyEvent), int16(protocol.FlagFirstVisit), SessionFlagNew)
	if err != nil {
		return fmt.Errorf("insert sessions: %w", err)
	}
	return rebuildSessionRollups(ctx, tx, site, loc)
}

// rebuildSessionRollups recomputes the site's session_rollups rows from its
// sessions rows, in tx (which holds the site's row lock), and marks every
// day covered; loc is the site's time zone.
func rebuildSessionRollups(ctx context.Context, tx pgx.Tx, site int32, loc *time.Location) error {
	if _, err := tx.Exec(ctx, "DELETE FROM session_rollups WHERE site_id = $1", site); err != nil {
		return fmt.Errorf("delete session rollups: %w", err)
	}
	rows, err := tx.Query(ctx, "SELECT "+sessionStateSelect("s")+" FROM sessions s"+sessionDimsJoins("s")+" WHERE s.site_id = $1", site)
	if err != nil {
		return fmt.Errorf("read sessions: %w", err)
	}
	agg := make(sessionRollupAgg)
	var st sessionState
	dest := st.scanDest()
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
	if err := storeRollupRounds(ctx, tx, slices.SortedFunc(maps.Keys(agg), compareRollupKeys), agg); err != nil {
		return err
	}
	if _, err := tx.Exec(ctx, "UPDATE sites SET session_rollups_from = '-infinity' WHERE id = $1", site); err != nil {
		return fmt.Errorf("mark session rollups: %w", err)
	}
	return nil
}

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
