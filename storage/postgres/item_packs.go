package postgres

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
)

// Item-scoped rows are stored like events (migration 021): event_items is
// partitioned by UTC day (its partitions made and dropped with the
// events'), and settled days are packed into item_packs, one row per site,
// day and part of parallel arrays. ItemsIn reads both as one relation; every
// reader of item rows goes through it.

// ItemsIn is a subquery of the item rows of site with lo <= ts < hi (SQL
// expressions: placeholders or literals), columns cols (itemColumns names,
// in that order in its rows), from event_items and item_packs. As with
// EventsIn, only the arrays of cols (and ts) are unnested, and the day
// bounds prune the packs by their key.
func ItemsIn(site, lo, hi string, cols []string) string {
	rows, packs, elems := inTimeRange(site, lo, hi)
	return itemsWhere(cols, rows, packs, elems)
}

// ItemsOf is ItemsIn over the item rows of site whose visitor is one of
// visitors (an SQL expression of a bigint[]), whatever their time: a
// subject's items, for exports. The packs are pruned by their visitor_id
// arrays.
func ItemsOf(site, visitors string, cols []string) string {
	return itemsWhere(cols, "site_id = "+site+" AND visitor_id = ANY("+visitors+")",
		"p.site_id = "+site+" AND p.visitor_id && "+visitors, "u.visitor_id = ANY("+visitors+")")
}

// itemsWhere is the item rows of cols meeting rows (on event_items'
// columns) or, packed, packs (on item_packs "p") and elems (on the unnested
// columns "u": those of cols, ts and visitor_id).
func itemsWhere(cols []string, rows, packs, elems string) string {
	arrays, names := []string{"p.ts", "p.visitor_id"}, []string{"ts", "visitor_id"}
	packCols := make([]string, len(cols))
	for i, c := range cols {
		switch c {
		case "site_id":
			packCols[i] = "p.site_id"
		case "ts", "visitor_id":
			packCols[i] = "u." + c
		default:
			packCols[i] = "u." + c
			arrays, names = append(arrays, "p."+c), append(names, c)
		}
	}
	return "(SELECT " + strings.Join(cols, ", ") + " FROM event_items WHERE " + rows +
		" UNION ALL SELECT " + strings.Join(packCols, ", ") +
		" FROM item_packs p CROSS JOIN LATERAL unnest(" + strings.Join(arrays, ", ") + ") AS u(" + strings.Join(names, ", ") + ")" +
		" WHERE " + packs + " AND " + elems + ")"
}

// ItemColumns are event_items' columns, in table order.
func ItemColumns() []string { return append([]string(nil), itemColumns...) }

// ItemsPartitionName is the name of the event_items partition holding t's
// UTC day.
func ItemsPartitionName(t time.Time) string { return "event_items_p" + utcDay(t).Format("20060102") }

// packItemsSQL moves the item rows of the UTC day [$2, $3) into item_packs
// ($1 is the day), as packEventsSQL moves events: per site, the rows and,
// when the day's last part holds fewer than $4 items, that part's, sorted
// by (session_id, ts) and cut into parts of $5 items numbered on from the
// day's last part. One statement, so one snapshot.
var packItemsSQL = func() string {
	cols := itemColumns
	var moved, unpacked, aggs []string
	arrays := []string{}
	for _, c := range cols {
		moved = append(moved, "m."+c)
		if c == "site_id" {
			unpacked = append(unpacked, "o.site_id")
			continue
		}
		unpacked = append(unpacked, "u."+c)
		arrays = append(arrays, c)
		aggs = append(aggs, "array_agg(n."+c+" ORDER BY n.session_id, n.ts)")
	}
	return `WITH
	moved AS (DELETE FROM event_items WHERE ts >= $2 AND ts < $3 RETURNING *),
	sites AS (SELECT DISTINCT site_id FROM moved),
	last AS (SELECT DISTINCT ON (p.site_id) p.site_id, p.part, p.items < $4 AS merge
		FROM item_packs p JOIN sites s ON s.site_id = p.site_id
		WHERE p.day = $1 ORDER BY p.site_id, p.part DESC),
	merged AS (DELETE FROM item_packs p USING last l
		WHERE p.site_id = l.site_id AND p.day = $1 AND p.part = l.part AND l.merge RETURNING p.*),
	todo AS (
		SELECT ` + strings.Join(moved, ", ") + ` FROM moved m
		UNION ALL
		SELECT ` + strings.Join(unpacked, ", ") + `
		FROM merged o CROSS JOIN LATERAL unnest(o.` + strings.Join(arrays, ", o.") + `) AS u(` + strings.Join(arrays, ", ") + `)),
	numbered AS (SELECT r.*, (row_number() OVER (PARTITION BY r.site_id ORDER BY r.session_id, r.ts) - 1) / $5 AS chunk
		FROM todo r)
INSERT INTO item_packs (site_id, day, part, items, ` + strings.Join(arrays, ", ") + `)
SELECT n.site_id, $1, COALESCE(CASE WHEN l.merge THEN l.part ELSE l.part + 1 END, 0) + n.chunk, count(*),
	` + strings.Join(aggs, ", ") + `
FROM numbered n LEFT JOIN last l ON l.site_id = n.site_id
GROUP BY n.site_id, n.chunk, l.part, l.merge`
}()

// PackItems moves the item rows of settled UTC days (as PackEvents: ended
// more than 72 hours before now) from their event_items partitions into
// item_packs, one day per transaction, oldest first, bounded per run like
// PackEvents (packSettled), then vacuums each emptied partition. It returns
// how many days had rows to move: 0 means none is left at now. Each day's
// transaction first takes item_packs in SHARE ROW EXCLUSIVE mode, which
// conflicts with itself and with an erasure (eraseSubjectItemPacks): two
// passes, or a pass and an erasure, take turns, and the statement's
// snapshot sees what the other committed.
func (s *Store) PackItems(ctx context.Context, now time.Time) (int, error) {
	return s.packSettled(ctx, now, "event_items", "event_items_p", ItemsPartitionName, "item_packs", packItemsSQL)
}

// eraseItemPacksSQL rewrites the item_packs rows of site $1 holding any of
// the keys $2 without those keys' items, keeping each row's key and order
// (a row left empty goes), and returns how many items it removed.
var eraseItemPacksSQL = func() string {
	var arrays, hx, aggs []string
	for _, c := range itemColumns {
		if c == "site_id" {
			continue
		}
		arrays = append(arrays, c)
		hx = append(hx, "h."+c)
		aggs = append(aggs, "array_agg("+c+" ORDER BY ord)")
	}
	list := strings.Join(arrays, ", ")
	return `WITH
	hit AS (DELETE FROM item_packs p WHERE p.site_id = $1 AND p.visitor_id && $2 RETURNING p.*),
	u AS (SELECT h.site_id, h.day, h.part, x.* FROM hit h
		CROSS JOIN LATERAL unnest(` + strings.Join(hx, ", ") + `) WITH ORDINALITY AS x(` + list + `, ord)),
	kept AS (INSERT INTO item_packs (site_id, day, part, items, ` + list + `)
		SELECT site_id, day, part, count(*), ` + strings.Join(aggs, ", ") + `
		FROM u WHERE NOT (visitor_id = ANY($2)) GROUP BY site_id, day, part
		RETURNING 1)
	SELECT count(*) FROM u WHERE visitor_id = ANY($2)`
}()

// eraseSubjectItemPacks cuts the subject keys' items out of the site's
// item_packs rows, in the erasure's transaction tx, and returns how many it
// removed. It takes item_packs as PackItems does, so no pass moves item
// rows while the erasure runs; call it before the erasure deletes from
// event_items (a pass holding the lock would otherwise wait on those rows
// while the erasure waits on the lock).
func eraseSubjectItemPacks(ctx context.Context, tx pgx.Tx, site int32, keys []int64) (int64, error) {
	if _, err := tx.Exec(ctx, "LOCK TABLE item_packs IN SHARE ROW EXCLUSIVE MODE"); err != nil {
		return 0, fmt.Errorf("lock item packs: %w", err)
	}
	var n int64
	if err := tx.QueryRow(ctx, eraseItemPacksSQL, site, keys).Scan(&n); err != nil {
		return 0, fmt.Errorf("rewrite item packs: %w", err)
	}
	return n, nil
}
