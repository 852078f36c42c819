package postgres

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
)

// Settled UTC days' events are packed into event_packs (migration 013):
// one row per site, day and part of parallel arrays, read through
// EventsIn together with the events table.

// EventsIn is a subquery of the events of site with lo <= ts < hi (SQL
// expressions: placeholders or literals), columns cols (EventColumns
// names, in that order in its rows), from the events table and the packs.
// The packs keep each column but site_id as an array, and a read array is
// a whole column decompressed, so it unnests only the arrays of cols (and
// ts, which bounds the rows): a 30-day scan of two columns takes a quarter
// of the time of one of all twelve. The day bounds prune the packs by
// their key.
func EventsIn(site, lo, hi string, cols []string) string {
	rows, packs, elems := inTimeRange(site, lo, hi)
	return eventsWhere(cols, rows, packs, elems)
}

// inTimeRange are the conditions of a site's rows with lo <= ts < hi in
// a table of rows and its packs (UTC days of parallel arrays): rows, on
// the table's columns; packs, on the packs "p", whose days are pruned by
// their key; elems, on the unnested columns "u".
func inTimeRange(site, lo, hi string) (rows, packs, elems string) {
	return "site_id = " + site + " AND ts >= " + lo + " AND ts < " + hi,
		"p.site_id = " + site + " AND p.day >= (" + lo + "::timestamptz AT TIME ZONE 'UTC')::date AND p.day <= (" + hi + "::timestamptz AT TIME ZONE 'UTC')::date",
		"u.ts >= " + lo + " AND u.ts < " + hi
}

// eventsWhere is EventsIn with its conditions given: rows, on the events
// table's columns; packs, on event_packs "p" (its key and arrays, to prune
// rows before they are unnested); elems, on the unnested columns "u" (those
// of cols, and ts).
func eventsWhere(cols []string, rows, packs, elems string) string {
	arrays, names := []string{"p.ts"}, []string{"ts"}
	packCols := make([]string, len(cols))
	for i, c := range cols {
		switch c {
		case "site_id":
			packCols[i] = "p.site_id"
		case "ts":
			packCols[i] = "u.ts"
		case "commerce_id":
			// Packs written before migration 015 have an empty array.
			packCols[i] = "COALESCE(u.commerce_id, 0) AS commerce_id"
			arrays, names = append(arrays, "p."+c), append(names, c)
		default:
			packCols[i] = "u." + c
			arrays, names = append(arrays, "p."+c), append(names, c)
		}
	}
	return "(SELECT " + strings.Join(cols, ", ") + " FROM events WHERE " + rows +
		" UNION ALL SELECT " + strings.Join(packCols, ", ") +
		" FROM event_packs p CROSS JOIN LATERAL unnest(" + strings.Join(arrays, ", ") + ") AS u(" + strings.Join(names, ", ") + ")" +
		" WHERE " + packs + " AND " + elems + ")"
}

// packSettle is how long after its UTC day ended a day's events are left
// in the events table: as long as a Measurement Protocol event may be
// dated back (mpMaxPast in agent/collect), so late events of a packed day
// are the exception (an agent that could not ship for longer).
const packSettle = 72 * time.Hour

// packPartEvents is the most events in one event_packs row: a row is read
// whole (its arrays are compressed), so this bounds what a report over a
// few minutes of the day decompresses and what a pass holds in memory per
// row. Late events of a day join the day's last part while it holds fewer
// than half as many, so a trickle of late events does not make a row per
// pass. SetPackPartEvents changes it for a store, for tests.
const packPartEvents = 65536

// SetPackBudget sets the time after which a PackEvents or PackItems run
// stops once it has moved a day (default packEventsBudget); for tests.
func (s *Store) SetPackBudget(d time.Duration) {
	s.packMu.Lock()
	defer s.packMu.Unlock()
	s.packBudget = d
}

// SetPackPartEvents sets the most events in one event_packs row that
// PackEvents writes from now on (default 65536); for tests that want
// several parts of a small day.
func (s *Store) SetPackPartEvents(n int) {
	s.packMu.Lock()
	defer s.packMu.Unlock()
	s.packPart = n
}

// packEventDaysPerRun and packEventsBudget bound one PackEvents call (it
// stops after the day that ends past the budget), so a backlog (days
// stored before packing existed, a bulk import) drains over several runs
// instead of holding up one, or an aggregator's start-up. The budget
// bounds a run's own moves: a run that has moved no day yet goes on
// past it (it spent the time waiting on another packer's locks, whose
// days it then found moved), so that 0 still means no settled day is
// left.
const (
	packEventDaysPerRun = 30
	packEventsBudget    = 10 * time.Second
)

// packEventsSQL moves every event of the UTC day [$2, $3) into event_packs
// ($1 is the day): per site, the events table's rows and, when the day's
// last part is smaller than $4 events, that part's events, sorted by
// (session_id, ts) and cut into parts of $5 events, numbered on from the
// day's last part (which they replace when merged). One statement, so one
// snapshot: a row is either moved or left for the next pass, never both.
const packEventsSQL = `WITH
	moved AS (DELETE FROM events WHERE ts >= $2 AND ts < $3 RETURNING *),
	sites AS (SELECT DISTINCT site_id FROM moved),
	last AS (SELECT DISTINCT ON (p.site_id) p.site_id, p.part, p.events < $4 AS merge
		FROM event_packs p JOIN sites s ON s.site_id = p.site_id
		WHERE p.day = $1 ORDER BY p.site_id, p.part DESC),
	merged AS (DELETE FROM event_packs p USING last l
		WHERE p.site_id = l.site_id AND p.day = $1 AND p.part = l.part AND l.merge RETURNING p.*),
	todo AS (
		SELECT m.ts, m.visitor_id, m.session_id, m.site_id, m.name_id, m.referrer_id, m.content_id,
		       m.client_id, m.traffic_id, m.engagement_ms, m.flags, m.params, m.commerce_id FROM moved m
		UNION ALL
		SELECT u.ts, u.visitor_id, u.session_id, o.site_id, u.name_id, u.referrer_id, u.content_id,
		       u.client_id, u.traffic_id, u.engagement_ms, u.flags, u.params, COALESCE(u.commerce_id, 0)
		FROM merged o CROSS JOIN LATERAL unnest(o.ts, o.visitor_id, o.session_id, o.name_id, o.referrer_id,
			o.content_id, o.client_id, o.traffic_id, o.engagement_ms, o.flags, o.params, o.commerce_id)
			AS u(ts, visitor_id, session_id, name_id, referrer_id, content_id, client_id, traffic_id,
			     engagement_ms, flags, params, commerce_id)),
	numbered AS (SELECT r.*, (row_number() OVER (PARTITION BY r.site_id ORDER BY r.session_id, r.ts) - 1) / $5 AS chunk
		FROM todo r)
INSERT INTO event_packs (site_id, day, part, events, ts, visitor_id, session_id, name_id, referrer_id,
	content_id, client_id, traffic_id, engagement_ms, flags, params, commerce_id)
SELECT n.site_id, $1, COALESCE(CASE WHEN l.merge THEN l.part ELSE l.part + 1 END, 0) + n.chunk, count(*),
	array_agg(n.ts ORDER BY n.session_id, n.ts), array_agg(n.visitor_id ORDER BY n.session_id, n.ts),
	array_agg(n.session_id ORDER BY n.session_id, n.ts), array_agg(n.name_id ORDER BY n.session_id, n.ts),
	array_agg(n.referrer_id ORDER BY n.session_id, n.ts), array_agg(n.content_id ORDER BY n.session_id, n.ts),
	array_agg(n.client_id ORDER BY n.session_id, n.ts), array_agg(n.traffic_id ORDER BY n.session_id, n.ts),
	array_agg(n.engagement_ms ORDER BY n.session_id, n.ts), array_agg(n.flags ORDER BY n.session_id, n.ts),
	array_agg(n.params ORDER BY n.session_id, n.ts), array_agg(n.commerce_id ORDER BY n.session_id, n.ts)
FROM numbered n LEFT JOIN last l ON l.site_id = n.site_id
GROUP BY n.site_id, n.chunk, l.part, l.merge`

// PackEvents moves the events of settled UTC days (ended more than 72
// hours before now) from their events partitions into event_packs, one day
// per transaction, oldest first, at most packEventDaysPerRun days and
// about packEventsBudget of work, then vacuums each emptied partition so
// its pages go back to the file system. It returns how many days had
// events to move: 0 means none is left at now. Readers see each event
// once throughout: a day's move commits at once. Batches are not held up:
// a late event written while its day is packed stays in the events table
// for the next pass.
func (s *Store) PackEvents(ctx context.Context, now time.Time) (int, error) {
	return s.packSettled(ctx, now, "events", "events_p", PartitionName, "event_packs", packEventsSQL)
}

// packSettled is PackEvents and PackItems: it moves the rows of the
// settled days' partitions of parent (named prefix + YYYYMMDD, the last
// settled one partition(settled day)) into packs by stmt (see packDay),
// oldest first, and vacuums each partition after its move. A run ends
// after packEventDaysPerRun days that had rows to move or, once it moved
// one, after packEventsBudget. A partition whose file the vacuum could not truncate (a
// snapshot older than the move, such as a long report's or a concurrent
// ANALYZE's, still saw its rows) keeps a size, so it is listed and
// vacuumed again by the next run, but it counts neither as a day moved nor
// against the run's days: it neither ends a caller's "until 0" loop early
// nor holds up the days after it.
func (s *Store) packSettled(ctx context.Context, now time.Time, parent, prefix string, partition func(time.Time) string, packs, stmt string) (int, error) {
	start := time.Now()
	settled := utcDay(now.Add(-packSettle)).AddDate(0, 0, -1) // last day that ended before now - packSettle
	rows, err := s.pool.Query(ctx, `SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
		WHERE i.inhparent = $1::regclass AND c.relname <= $2 AND pg_relation_size(c.oid) > 0
		ORDER BY c.relname`, parent, partition(settled))
	if err != nil {
		return 0, fmt.Errorf("postgres: pack %s: list partitions: %w", parent, err)
	}
	names, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return 0, fmt.Errorf("postgres: pack %s: list partitions: %w", parent, err)
	}
	s.packMu.Lock()
	budget := s.packBudget
	s.packMu.Unlock()
	packed := 0
	for _, name := range names {
		if packed >= packEventDaysPerRun || (packed > 0 && time.Since(start) > budget) {
			break
		}
		day, err := time.Parse("20060102", strings.TrimPrefix(name, prefix))
		if err != nil {
			return packed, fmt.Errorf("postgres: pack %s: partition %s: %w", parent, name, err)
		}
		s.packMu.Lock()
		part := s.packPart
		s.packMu.Unlock()
		moved, err := s.packDay(ctx, packs, stmt, day, part)
		if err != nil {
			return packed, fmt.Errorf("postgres: pack %s of %s: %w", parent, day.Format(time.DateOnly), err)
		}
		if moved {
			packed++
		}
		// The partition's rows are dead once no snapshot sees them; VACUUM
		// then truncates its file (its pages are all empty). Not in the
		// transaction: VACUUM cannot run in one.
		if _, err := s.pool.Exec(ctx, "VACUUM "+pgx.Identifier{name}.Sanitize()); err != nil {
			return packed, fmt.Errorf("postgres: pack %s: vacuum %s: %w", parent, name, err)
		}
	}
	return packed, nil
}

// packDay moves the rows of the UTC day into packs, the pack table
// (event_packs, item_packs), by stmt (packEventsSQL, packItemsSQL: $1 and
// $2 the day, $3 the next, parts of at most part rows) in one transaction.
// It first takes packs in SHARE ROW EXCLUSIVE mode, which conflicts with
// itself: two passes (the upkeep of two nodes, a bulk load's own pass) or
// a pass and an erasure take turns, and the statement's snapshot, taken
// after the lock, sees the parts the other committed (else both would
// number their part 0).
func (s *Store) packDay(ctx context.Context, packs, stmt string, day time.Time, part int) (bool, error) {
	tx, err := s.pool.Begin(ctx)
	if err != nil {
		return false, fmt.Errorf("begin: %w", err)
	}
	defer tx.Rollback(context.WithoutCancel(ctx)) // no-op after Commit
	if _, err := tx.Exec(ctx, "LOCK TABLE "+pgx.Identifier{packs}.Sanitize()+" IN SHARE ROW EXCLUSIVE MODE"); err != nil {
		return false, fmt.Errorf("lock %s: %w", packs, err)
	}
	tag, err := tx.Exec(ctx, stmt, day, day, day.AddDate(0, 0, 1), part/2, part)
	if err != nil {
		return false, err
	}
	if err := tx.Commit(ctx); err != nil {
		return false, fmt.Errorf("commit: %w", err)
	}
	return tag.RowsAffected() > 0, nil
}
