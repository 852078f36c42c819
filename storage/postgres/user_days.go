package postgres

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/avila-analytics/avila/protocol"
)

// GA4 counts an event's user as active when the user was active at some
// point of the event's (property-local) calendar day (BigQuery export's
// is_active_user), before the event or after it: activeUsers by eventName
// or pagePath counts the users who triggered the value on a day on which
// they were active. A user is active on a day when one of its events of
// the day is (eventActive). rollup_user_days (migration 025) keeps, per
// site, local day and visitor, whether the visitor is active that day and,
// while it is not, the cells its events of the day went into: the
// derivation that makes it active puts it into those cells' active
// sketches then, in the transaction that writes the event that makes it
// so, so a user activated by a later derivation (a page viewed before the
// engagement, the session_start GA4 adds) is in every cell of its day.
//
// Session reports follow the same rule (migration 028): a session's user
// counts as active in the session's session_rollups cells (keyed by the
// local day the session began) when the user is active on a day on which
// the session has an event: GA4's is_active_user over the events of the
// sessions with that source, landing page … While the user-day is not
// active, its row's session_cells remember the cells of the sessions with
// an event that day, and the derivation that makes it active adds the
// user to their active sketches as it does for the events' cells.

// userDaysKept is how many local days before today rollup_user_days
// keeps: the days an event may still reach, being dated up to 72 hours
// back (packSettle, the Measurement Protocol's limit; GA4 drops later
// ones), and a day more for the zones. A later event of an older day finds
// no row: it counts as the first of its user's day, and the events of that
// day stored before it stay out of active sketches it would add them to
// until a rebuild. Rebuilds and PackRollups keep the rows to this bound.
const userDaysKept = 4

// userDaysFrom is the first local day (UTC midnight) rollup_user_days
// keeps at now in loc.
func userDaysFrom(now time.Time, loc *time.Location) time.Time {
	y, m, d := now.In(loc).Date()
	return time.Date(y, m, d-userDaysKept, 0, 0, 0, 0, time.UTC)
}

// pruneUserDays deletes the user-days no event may reach any more
// (userDaysKept).
func (s *Store) pruneUserDays(ctx context.Context, now time.Time) error {
	if _, err := s.pool.Exec(ctx, `DELETE FROM rollup_user_days u USING sites s
		WHERE s.id = u.site_id AND u.day < ($1::timestamptz AT TIME ZONE s.time_zone)::date - $2::int`, now, userDaysKept); err != nil {
		return fmt.Errorf("prune user days: %w", err)
	}
	return nil
}

// eventActiveFlags are the event flags that make an event's user active.
const eventActiveFlags = protocol.FlagEngaged | protocol.FlagFirstVisit

// eventActive reports whether row makes its visitor active on its local
// day: an engaged session's flag (seg), a first visit, engagement time.
func eventActive(row *EventRow) bool {
	return uint8(row.Flags)&eventActiveFlags != 0 || row.Engage > 0
}

// activeEventSQL is eventActive over an events row "e".
var activeEventSQL = "(e.flags & " + strconv.Itoa(int(eventActiveFlags)) + " <> 0 OR e.engagement_ms > 0)"

// userDay is a visitor's local day (days since 1970-01-01).
type userDay struct {
	visitor int64
	day     int32
}

// cellRef is a cell's kind and dims id as one rollup_user_days.cells
// element; the day is the row's.
func cellRef(k rollupKey) int64 { return int64(k.kind)<<32 | int64(uint32(k.dim)) }

// cellOfRef is the key of the cell ref names on day of site.
func cellOfRef(site, day int32, ref int64) rollupKey {
	return rollupKey{site: site, kind: int32(int16(ref >> 32)), day: day, dim: int32(uint32(ref))}
}

// sessionCellRef is a session_rollups cell as one rollup_user_days
// session_cells element of the row of day: the cell's day (its session's
// start, on or before day) as the days before day, its kind and dims id.
func sessionCellRef(k rollupKey, day int32) int64 {
	return int64(day-k.day)<<48 | int64(uint16(k.kind))<<32 | int64(uint32(k.dim))
}

// sessionCellOfRef is the key of the session_rollups cell ref names in
// the row of day of site.
func sessionCellOfRef(site, day int32, ref int64) rollupKey {
	return rollupKey{site: site, kind: int32(int16(uint16(ref >> 32))), day: day - int32(ref>>48), dim: int32(uint32(ref))}
}

// addEventCells adds the cells row goes into on its day and hour to set.
func addEventCells(set map[int64]struct{}, row *EventRow, day, hour int32) {
	dims := slotDims(row, hour)
	for j := visitorSlots; j < len(rollupSlotKinds); j++ {
		set[cellRef(rollupKey{site: row.Site, kind: rollupSlotKinds[j], day: day, dim: dims[j]})] = struct{}{}
	}
}

// userDayState is what a derivation knows of one user-day.
type userDayState struct {
	stored bool               // rollup_user_days has a row
	before bool               // active before this derivation (the row's cells are NULL)
	now    bool               // an event of this derivation makes it active
	cells  []int64            // the row's cells (not active before)
	added  map[int64]struct{} // cells of this derivation's events, while not active
	// sessions and sessAdded are the same of session_rollups cells
	// (sessionCellRef): the row's session_cells, and the cells of this
	// derivation's sessions with an event that day, while not active.
	sessions  []int64
	sessAdded map[int64]struct{}
}

func (s *userDayState) active() bool { return s.before || s.now }

// userDays are the user-days of a derivation's events.
type userDays map[userDay]*userDayState

// userDayKeysZip and userDayRowsZip are the rows of rollup_user_days'
// keys (readUserDays) and of its rows (userDays.write) from the arrays
// $2 on.
var (
	userDayKeysZip = zipArrays(2, arrayColumns("day date, visitor_id int8"), "")
	userDayRowsZip = zipArrays(2, arrayColumns("day date, visitor_id int8, cells text, sessions text"), "")
)

// readUserDays reads the stored state of the user-days of rows (events of
// site) and sets each row's DayActive: whether its visitor is active on
// its day, before this derivation or by one of its events.
func readUserDays(ctx context.Context, tx pgx.Tx, site uint32, rows []EventRow, hours *hourCache) (userDays, error) {
	days := make(userDays)
	// A visitor's events come in runs: a row of the previous row's
	// user-day takes its state without a look-up.
	var last userDay
	var s *userDayState
	for i := range rows {
		day, _ := hours.of(rows[i].TS)
		if k := (userDay{rows[i].Visitor, day}); s == nil || k != last {
			if s = days[k]; s == nil {
				s = new(userDayState)
				days[k] = s
			}
			last = k
		}
		s.now = s.now || eventActive(&rows[i])
	}
	if len(days) > 0 {
		dates, visitors := make([]time.Time, 0, len(days)), make([]int64, 0, len(days))
		for k := range days {
			dates, visitors = append(dates, dayDate(k.day)), append(visitors, k.visitor)
		}
		res, err := tx.Query(ctx, `SELECT d.day, d.visitor_id, d.cells IS NULL, d.cells, d.session_cells FROM rollup_user_days d
			JOIN `+userDayKeysZip+` AS u ON d.day = u.day AND d.visitor_id = u.visitor_id
			WHERE d.site_id = $1`, int32(site), dates, visitors)
		if err != nil {
			return nil, fmt.Errorf("read user days: %w", err)
		}
		var (
			date   time.Time
			k      userDay
			before bool
			cells  []int64
			sess   []int64
		)
		_, err = pgx.ForEachRow(res, []any{&date, &k.visitor, &before, &cells, &sess}, func() error {
			k.day = int32(date.Unix() / 86400)
			if s := days[k]; s != nil {
				s.stored, s.before, s.cells, s.sessions = true, before, slices.Clone(cells), slices.Clone(sess)
			}
			return nil
		})
		if err != nil {
			return nil, fmt.Errorf("read user days: %w", err)
		}
	}
	s = nil
	for i := range rows {
		r := &rows[i]
		day, hour := hours.of(r.TS)
		if k := (userDay{r.Visitor, day}); s == nil || k != last {
			s, last = days[k], k
		}
		r.DayActive = s.active()
		if !r.DayActive {
			if s.added == nil {
				s.added = make(map[int64]struct{})
			}
			addEventCells(s.added, r, day, hour)
		}
	}
	return days, nil
}

// activate puts the users this derivation makes active into the active
// sketches of the cells their earlier events of the day went into, and of
// the session_rollups cells of their earlier sessions with an event that
// day.
func (u userDays) activate(agg rollupAgg, sessions sessionRollupAgg, site int32) {
	for k, s := range u {
		if s.now && !s.before {
			h := VisitorHash(uint64(k.visitor))
			for _, ref := range s.cells {
				agg.addActive(cellOfRef(site, k.day, ref), h)
			}
			for _, ref := range s.sessions {
				sessions.addActive(sessionCellOfRef(site, k.day, ref), h)
			}
		}
	}
}

// sessionActive reports whether the visitor of a session with events of
// this derivation on days is active on one of them, and otherwise
// remembers the session's cells in those user-days' sessAdded.
func (u userDays) sessionActive(visitor int64, days []int32, cells []rollupKey) bool {
	for _, d := range days {
		if s := u[userDay{visitor, d}]; s != nil && s.active() {
			return true
		}
	}
	for _, d := range days {
		s := u[userDay{visitor, d}]
		if s == nil {
			continue // days are days of the derivation's events, whose user-days are read
		}
		if s.sessAdded == nil {
			s.sessAdded = make(map[int64]struct{}, len(cells))
		}
		for _, k := range cells {
			s.sessAdded[sessionCellRef(k, d)] = struct{}{}
		}
	}
	return false
}

// union is refs and the elements of added not in refs, and whether there
// are any of those.
func union(refs []int64, added map[int64]struct{}) ([]int64, bool) {
	all := slices.Clone(refs)
	for ref := range added {
		if !slices.Contains(refs, ref) {
			all = append(all, ref)
		}
	}
	return all, len(all) > len(refs)
}

// write stores the user-days whose state changed: made active (cells
// NULL), or still not active with cells added.
func (u userDays) write(ctx context.Context, tx pgx.Tx, site int32) error {
	var (
		dates    []time.Time
		visitors []int64
		cells    []*string
		sessions []*string
	)
	for k, s := range u {
		var text, sessText *string
		switch {
		case s.before:
			continue
		case s.now:
		default:
			all, more := union(s.cells, s.added)
			allSess, moreSess := union(s.sessions, s.sessAdded)
			if s.stored && !more && !moreSess {
				continue
			}
			t := cellsText(all)
			text = &t
			if len(allSess) > 0 {
				t := cellsText(allSess)
				sessText = &t
			}
		}
		dates, visitors = append(dates, dayDate(k.day)), append(visitors, k.visitor)
		cells, sessions = append(cells, text), append(sessions, sessText)
	}
	if len(dates) == 0 {
		return nil
	}
	if _, err := tx.Exec(ctx, `INSERT INTO rollup_user_days (site_id, day, visitor_id, cells, session_cells)
		SELECT $1, day, visitor_id, cells::int8[], sessions::int8[]
		FROM `+userDayRowsZip+` AS u
		ON CONFLICT (site_id, day, visitor_id) DO UPDATE SET cells = EXCLUDED.cells, session_cells = EXCLUDED.session_cells`,
		site, dates, visitors, cells, sessions); err != nil {
		return fmt.Errorf("write user days: %w", err)
	}
	return nil
}

// cellsText is refs as an int8[] literal, sorted.
func cellsText(refs []int64) string {
	slices.Sort(refs)
	var b strings.Builder
	b.Grow(2 + 12*len(refs))
	b.WriteByte('{')
	for i, r := range refs {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(strconv.FormatInt(r, 10))
	}
	b.WriteByte('}')
	return b.String()
}

// activeVisitors are the visitors of site active on the local day [lo, hi)
// by their events (a rebuild's, an erasure's: the events are the truth).
func activeVisitors(ctx context.Context, tx pgx.Tx, site int32, lo, hi time.Time) (map[int64]bool, error) {
	res, err := tx.Query(ctx, "SELECT DISTINCT e.visitor_id FROM "+
		EventsIn("$1", "$2", "$3", []string{"site_id", "ts", "visitor_id", "engagement_ms", "flags"})+" e WHERE "+activeEventSQL,
		site, lo, hi)
	if err != nil {
		return nil, fmt.Errorf("active visitors: %w", err)
	}
	out := map[int64]bool{}
	var v int64
	if _, err := pgx.ForEachRow(res, []any{&v}, func() error {
		out[v] = true
		return nil
	}); err != nil {
		return nil, fmt.Errorf("active visitors: %w", err)
	}
	return out, nil
}

// rebuiltDays collects a rebuild's user-days: the cells of the events of
// visitors not active on their day.
type rebuiltDays map[userDay]map[int64]struct{}

// writeUserDays stores the user-days of a rebuilt local day: active
// visitors with NULL cells, the others with the cells of their events.
func writeUserDays(ctx context.Context, tx pgx.Tx, site int32, day int32, active map[int64]bool, pending rebuiltDays) error {
	var (
		visitors []int64
		cells    []*string
	)
	for v := range active {
		visitors, cells = append(visitors, v), append(cells, nil)
	}
	for k, set := range pending {
		t := cellsText(slices.Collect(maps.Keys(set)))
		visitors, cells = append(visitors, k.visitor), append(cells, &t)
	}
	if len(visitors) == 0 {
		return nil
	}
	if _, err := tx.Exec(ctx, `INSERT INTO rollup_user_days (site_id, day, visitor_id, cells)
		SELECT $1, $2, visitor_id, cells::int8[] FROM unnest($3::int8[], $4::text[]) AS u(visitor_id, cells)`,
		site, dayDate(day), visitors, cells); err != nil {
		return fmt.Errorf("write user days: %w", err)
	}
	return nil
}
