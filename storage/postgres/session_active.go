package postgres

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"time"

	"github.com/jackc/pgx/v5"
)

// A session's visitor counts as active in session rollups when it is
// active on a local day on which the session has an event (user_days.go).
// The derivation knows it from rollup_user_days; rebuilds and erasures,
// which read sessions rows, tell it from the events (sessionActivity).

// sessionDaysAfter is how many local days after the sessions it reads
// began their events are read to tell the sessions' activity: a session
// goes on only while its events come within 30 minutes of each other, or
// join it by session id up to 72 hours late, so a later event of a session
// lasting into a fifth day is not read (documented limit).
const sessionDaysAfter = 4

// sessionActivity tells which sessions count their visitor as active.
type sessionActivity struct {
	// active: the session (visitor, session id) has an event on a day on
	// which its visitor is active.
	active map[[2]int64]bool
	// days are the local days from keepFrom on of the events of sessions
	// not active, and pending, when not nil, collects the cells of those
	// sessions by user-day (aggregateSessions): a rebuild's
	// rollup_user_days.session_cells.
	days     map[[2]int64][]int32
	keepFrom int32
	pending  map[userDay]map[int64]struct{}
}

// of is whether st (session id sid) counts its visitor as active; with
// pending it remembers the cells of a session that does not.
func (a *sessionActivity) of(st *sessionState, sid int64, loc *time.Location) bool {
	k := [2]int64{st.visitor, sid}
	if a.active[k] || st.active() {
		return true
	}
	if a.pending != nil {
		for _, d := range a.days[k] {
			u := userDay{st.visitor, d}
			set := a.pending[u]
			if set == nil {
				set = make(map[int64]struct{})
				a.pending[u] = set
			}
			var cells [sessionCellsRoom]rollupKey
			for _, c := range st.appendCells(cells[:0], loc) {
				set[sessionCellRef(c, d)] = struct{}{}
			}
		}
	}
	return false
}

// readSessionActivity reads the activity of the sessions of site with
// events in [lo, hi) (whole local days of loc), of visitors only when not
// nil; with keep it collects the days from keepFrom for pending cells.
func readSessionActivity(ctx context.Context, tx pgx.Tx, site int32, loc *time.Location, lo, hi time.Time, visitors []int64, keep bool, keepFrom int32) (*sessionActivity, error) {
	cols := []string{"site_id", "ts", "visitor_id", "session_id", "engagement_ms", "flags"}
	src, where, args := EventsIn("$1", "$2", "$3", cols), "TRUE", []any{site, lo, hi, loc.String()}
	if visitors != nil {
		// A few visitors (an erasure's competitors): their packed events
		// are read by position, not by unnesting the days' packs.
		slots, err := visitorPackSlots(ctx, tx, site, visitors, lo, hi)
		if err != nil {
			return nil, fmt.Errorf("session activity: %w", err)
		}
		src = eventsAt(cols, "site_id = $1 AND ts >= $2 AND ts < $3 AND visitor_id = ANY($5)", "$6::date[], $7::int[], $8::int[]")
		where, args = "e.ts >= $2 AND e.ts < $3", append(args, visitors, slots.days, slots.parts, slots.pos)
	}
	dayExpr := "(e.ts AT TIME ZONE $4::text)::date"
	res, err := tx.Query(ctx, `SELECT visitor_id, session_id, day, bool_or(da) FROM (
		SELECT e.visitor_id, e.session_id, `+dayExpr+` AS day,
			bool_or(`+activeEventSQL+`) OVER (PARTITION BY e.visitor_id, `+dayExpr+`) AS da
		FROM `+src+` e
		WHERE `+where+`) x GROUP BY 1, 2, 3`, args...)
	if err != nil {
		return nil, fmt.Errorf("session activity: %w", err)
	}
	a := &sessionActivity{active: map[[2]int64]bool{}, keepFrom: keepFrom}
	if keep {
		a.days, a.pending = map[[2]int64][]int32{}, map[userDay]map[int64]struct{}{}
	}
	var (
		k      [2]int64
		date   time.Time
		active bool
	)
	if _, err := pgx.ForEachRow(res, []any{&k[0], &k[1], &date, &active}, func() error {
		if active {
			a.active[k] = true
		} else if day := int32(date.Unix() / 86400); keep && day >= keepFrom {
			a.days[k] = append(a.days[k], day)
		}
		return nil
	}); err != nil {
		return nil, fmt.Errorf("session activity: %w", err)
	}
	return a, nil
}

// sessionEventsEnd is the end of the events read for the activity of
// sessions that began before hi (sessionDaysAfter).
func sessionEventsEnd(hi time.Time, loc *time.Location) time.Time {
	return hi.In(loc).AddDate(0, 0, sessionDaysAfter)
}

// writeSessionCells stores pending (a rebuild's session cells of user-days
// not active) in rollup_user_days: a row without one is inserted with no
// event cells.
func writeSessionCells(ctx context.Context, tx pgx.Tx, site int32, pending map[userDay]map[int64]struct{}) error {
	if len(pending) == 0 {
		return nil
	}
	dates, visitors, cells := make([]time.Time, 0, len(pending)), make([]int64, 0, len(pending)), make([]string, 0, len(pending))
	for k, set := range pending {
		dates, visitors, cells = append(dates, dayDate(k.day)), append(visitors, k.visitor), append(cells, cellsText(slices.Collect(maps.Keys(set))))
	}
	if _, err := tx.Exec(ctx, `INSERT INTO rollup_user_days (site_id, day, visitor_id, cells, session_cells)
		SELECT $1, day, visitor_id, '{}', sessions::int8[] FROM unnest($2::date[], $3::int8[], $4::text[]) AS u(day, visitor_id, sessions)
		ON CONFLICT (site_id, day, visitor_id) DO UPDATE SET session_cells = EXCLUDED.session_cells`,
		site, dates, visitors, cells); err != nil {
		return fmt.Errorf("write session cells: %w", err)
	}
	return nil
}

// visitorPackSlots are the positions of visitors' events in the site's
// packs of the UTC days [lo, hi] touches (a position outside [lo, hi) is
// for the reader's time bounds to drop): array_positions per visitor on
// the rows holding any of them, so a few visitors cost a scan of each
// row's visitor_id array, not an unnested row per packed event.
func visitorPackSlots(ctx context.Context, tx pgx.Tx, site int32, visitors []int64, lo, hi time.Time) (packSlots, error) {
	var slots packSlots
	if len(visitors) == 0 {
		return slots, nil
	}
	rows, err := tx.Query(ctx, `SELECT p.day, p.part, x.i FROM event_packs p
		CROSS JOIN (SELECT DISTINCT id FROM unnest($2::bigint[]) AS u(id)) v
		CROSS JOIN LATERAL unnest(array_positions(p.visitor_id, v.id)) AS x(i)
		WHERE p.site_id = $1 AND p.day >= ($3::timestamptz AT TIME ZONE 'UTC')::date AND p.day <= ($4::timestamptz AT TIME ZONE 'UTC')::date
			AND p.visitor_id && $2`, site, visitors, lo, hi)
	if err != nil {
		return slots, fmt.Errorf("packed events of %d visitors: %w", len(visitors), err)
	}
	var (
		day       time.Time
		part, pos int32
	)
	if _, err := pgx.ForEachRow(rows, []any{&day, &part, &pos}, func() error {
		slots.add(day, part, pos)
		return nil
	}); err != nil {
		return slots, fmt.Errorf("packed events of %d visitors: %w", len(visitors), err)
	}
	return slots, nil
}
