package postgres

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
)

// Reading a few dim_ids' sketches out of the packs (a report's page of
// ten pages out of thousands) needs each wanted cell's position in its
// pack's arrays. PostgreSQL finds a value in an array by comparing every
// element through the type's equality function: array_position over a
// day's two thousand dim_ids, once per wanted dim_id and day, cost more
// of the statement than reading the sketches. The dim_ids of each pack
// are read first (small arrays; a report that summed the same cells'
// counters kept them, RollupsOf.Packs) and the positions found in Go by
// binary search (a pack's dim_ids ascend); the second statement
// subscripts the sketch arrays at those positions. A pack rewritten between the two
// statements (packing, an erasure, a rebuild) gets a new row version:
// each pack row carries its xmin, and the second statement's rows must
// show the versions the positions were found in, or the read starts
// again (after pickAttempts, it finds the positions in SQL, in one
// statement).

// PackDims are the dim_ids of the packs of one RollupsOf as a read of
// their counters met them, each with its row's version. The zero value
// is empty; a nil *PackDims keeps nothing.
type PackDims struct {
	of   RollupsOf // Packs nil
	days map[time.Time]packDims
}

// packDims are one pack row version's dim_ids.
type packDims struct {
	xmin string
	dims []int32
}

// keep records the dim_ids of of's pack of day at row version xmin (dims,
// which the caller leaves unchanged).
func (pd *PackDims) keep(of RollupsOf, day time.Time, xmin string, dims []int32) {
	if pd == nil {
		return
	}
	of.Packs = nil
	if pd.days == nil || pd.of != of {
		pd.of, pd.days = of, make(map[time.Time]packDims)
	}
	pd.days[day] = packDims{xmin: xmin, dims: dims}
}

// of are the packs kept for of; ok is false when none were.
func (pd *PackDims) packsOf(of RollupsOf) (map[time.Time]packDims, bool) {
	if pd == nil || pd.days == nil {
		return nil, false
	}
	of.Packs = nil
	return pd.days, pd.of == of
}

// pickAttempts bounds the two-statement reads that met a rewritten pack.
const pickAttempts = 3

// packPositions are the positions (1-based, ascending) of the wanted
// dim_ids in one pack row version.
type packPositions struct {
	xmin string
	pos  []int32
	dims []int32 // the dim_ids at pos
}

// pickedDay is one day's picked cells, read in full before any is given.
type pickedDay struct {
	day  time.Time
	dims []int32
	sks  [][][]byte
}

// pickRollupSketches is ReadRollupSketches for a few dim_ids (ids).
func pickRollupSketches(ctx context.Context, db Querier, of RollupsOf, ids []int32, reads, sketches int, add func(day time.Time, dim int32, sks [][]byte)) error {
	if !slices.IsSorted(ids) {
		ids = slices.Sorted(slices.Values(ids))
	}
	ids = slices.Compact(ids)
	for attempt := range pickAttempts {
		// The first attempt takes the dim_ids the counters' read kept
		// (of.Packs), if any.
		kept, ok := of.Packs.packsOf(of)
		if attempt > 0 || !ok {
			var err error
			if kept, err = readPackDims(ctx, db, of); err != nil {
				return err
			}
		}
		days, ok, err := pickSplit(ctx, db, of, ids, kept, reads, sketches)
		if err != nil {
			return err
		}
		if ok {
			for _, d := range days {
				sc := newSketchScan(reads, sketches, nil)
				sc.day, sc.dims, sc.sks = d.day, d.dims, d.sks
				if err := sc.give(add); err != nil {
					return err
				}
			}
			return nil
		}
	}
	return searchRollupSketches(ctx, db, of, ids, reads, sketches, add)
}

// ConcurrentQuerier is a Querier that may run statements of one caller
// at once when ConcurrentQueries says so: a pool, not one connection (a
// transaction's).
type ConcurrentQuerier interface {
	Querier
	ConcurrentQueries() bool
}

// concurrent reports whether db runs statements at once: a pool, or a
// ConcurrentQuerier that says so.
func concurrent(db Querier) bool {
	if _, ok := db.(*pgxpool.Pool); ok {
		return true
	}
	c, ok := db.(ConcurrentQuerier)
	return ok && c.ConcurrentQueries()
}

// halves splits of's days into two halves to read at once, on two
// connections: ok is false when db runs one statement at a time
// (concurrent) or of spans less than two days.
func halves(db Querier, of RollupsOf) (h [2]RollupsOf, ok bool) {
	days := int(of.Hi.Sub(of.Lo).Hours()/24 + 0.5)
	if days < 2 || !concurrent(db) {
		return h, false
	}
	mid := of.Lo.AddDate(0, 0, days/2)
	h = [2]RollupsOf{of, of}
	h[0].Hi, h[1].Lo = mid, mid
	return h, true
}

// pickSplit is pickOnce over of's days in two halves read at once, on two
// connections, when db allows it (concurrent) and of spans two days or
// more: PostgreSQL detoasts each pack's sketch arrays whole to take a few
// of their sketches, the better part of a report of ten groups over a
// month, and two backends do it on two cores. Each day is read whole by
// one statement (its pack or its rows, in that statement's snapshot, as
// one statement reads them); the days come in the halves' order.
func pickSplit(ctx context.Context, db Querier, of RollupsOf, ids []int32, kept map[time.Time]packDims, reads, sketches int) ([]pickedDay, bool, error) {
	split, ok := halves(db, of)
	if !ok {
		return pickOnce(ctx, db, of, ids, kept, reads, sketches)
	}
	var (
		got  [2][]pickedDay
		oks  [2]bool
		errs [2]error
		wg   sync.WaitGroup
	)
	for h := range split {
		part := make(map[time.Time]packDims)
		for day, pd := range kept {
			if !day.Before(split[h].Lo) && day.Before(split[h].Hi) {
				part[day] = pd
			}
		}
		wg.Go(func() { got[h], oks[h], errs[h] = pickOnce(ctx, db, split[h], ids, part, reads, sketches) })
	}
	wg.Wait()
	if err := errors.Join(errs[:]...); err != nil {
		return nil, false, err
	}
	return append(got[0], got[1]...), oks[0] && oks[1], nil
}

// readPackDims reads the dim_ids of of's packs with their row versions.
func readPackDims(ctx context.Context, db Querier, of RollupsOf) (map[time.Time]packDims, error) {
	res, err := db.Query(ctx, `SELECT day, version, dim_ids FROM `+rollupPacks+` p WHERE site_id = $1 AND kind = $2 AND day >= $3 AND day < $4`,
		of.Site, int16(of.Kind), of.Lo, of.Hi)
	if err != nil {
		return nil, fmt.Errorf("postgres: read rollup sketches: dim_ids: %w", err)
	}
	defer res.Close()
	out := make(map[time.Time]packDims)
	for res.Next() {
		var (
			day time.Time
			pd  packDims
		)
		if err := res.Scan(&day, &pd.xmin, &pd.dims); err != nil {
			return nil, fmt.Errorf("postgres: read rollup sketches: dim_ids: %w", err)
		}
		out[day] = pd
	}
	if err := res.Err(); err != nil {
		return nil, fmt.Errorf("postgres: read rollup sketches: dim_ids: %w", err)
	}
	return out, nil
}

// pickOnce finds the positions of ids in the packs' dim_ids (kept, by
// day) and reads the sketches at those positions (and the rollup_days
// cells of ids); ok is false when a pack's version is not the one kept.
func pickOnce(ctx context.Context, db Querier, of RollupsOf, ids []int32, kept map[time.Time]packDims, reads, sketches int) (_ []pickedDay, ok bool, err error) {
	found := make(map[time.Time]packPositions, len(kept))
	var (
		posDays []time.Time
		pos     []int32
	)
	for day, pd := range kept {
		pp := packPositions{xmin: pd.xmin}
		pp.pos, pp.dims = positionsOf(pd.dims, ids)
		found[day] = pp
		for _, i := range pp.pos {
			posDays, pos = append(posDays, day), append(pos, i)
		}
	}

	var picks, copies, cols []string
	for i, col := range RollupSketchColumns {
		if reads&(1<<i) != 0 {
			picks = append(picks, "ARRAY(SELECT q."+col+"[w.i] FROM unnest(x.pos) WITH ORDINALITY AS w(i, o) ORDER BY w.o)")
			copies = append(copies, "CASE WHEN x.pos IS NOT NULL THEN p."+col+" || '{}'::bytea[] END AS "+col)
			cols = append(cols, "ARRAY[r."+col+"]")
		}
	}
	// A pack's arrays are detoasted once (the concatenation in the
	// subquery, kept by OFFSET 0), and only for days holding a wanted
	// dim_id; every pack row of the range comes with its version.
	res, err := db.Query(ctx, `SELECT p.day, p.version,
			ARRAY(SELECT q.dim_ids[w.i] FROM unnest(x.pos) WITH ORDINALITY AS w(i, o) ORDER BY w.o), `+strings.Join(picks, ", ")+`
		FROM `+rollupPacks+` p
			LEFT JOIN (SELECT u.day, array_agg(u.i ORDER BY u.i) AS pos FROM unnest($5::date[], $6::int[]) AS u(day, i) GROUP BY u.day) x
				ON x.day = p.day,
			LATERAL (SELECT CASE WHEN x.pos IS NOT NULL THEN p.dim_ids || '{}'::int[] END AS dim_ids, `+strings.Join(copies, ", ")+` OFFSET 0) q
		WHERE p.site_id = $1 AND p.kind = $2 AND p.day >= $3 AND p.day < $4
		UNION ALL
		SELECT r.day, NULL, ARRAY[r.dim_id], `+strings.Join(cols, ", ")+` FROM rollup_days r
			WHERE r.site_id = $1 AND r.kind = $2 AND r.day >= $3 AND r.day < $4 AND r.dim_id = ANY($7::int[])`,
		of.Site, int16(of.Kind), of.Lo, of.Hi, posDays, pos, ids)
	if err != nil {
		return nil, false, fmt.Errorf("postgres: read rollup sketches: %w", err)
	}
	defer res.Close()
	var (
		version *string
		out     []pickedDay
	)
	for res.Next() {
		// Fresh arrays per row: the rows are kept until all are read.
		sc := newSketchScan(reads, sketches, []any{&version})
		if err := res.Scan(sc.dest...); err != nil {
			return nil, false, fmt.Errorf("postgres: read rollup sketches: %w", err)
		}
		if version != nil { // a pack row
			pp, seen := found[sc.day]
			if !seen || pp.xmin != *version {
				return nil, false, nil
			}
			if !slices.Equal(sc.dims, pp.dims) {
				return nil, false, fmt.Errorf("postgres: read rollup sketches: BUG: pack of %s holds dim_ids %v at %v, not %v",
					sc.day.Format(time.DateOnly), sc.dims, pp.pos, pp.dims)
			}
		}
		if len(sc.dims) > 0 {
			out = append(out, pickedDay{day: sc.day, dims: sc.dims, sks: sc.sks})
		}
	}
	if err := res.Err(); err != nil {
		return nil, false, fmt.Errorf("postgres: read rollup sketches: %w", err)
	}
	return out, true, nil
}

// positionsOf are the positions (1-based, ascending) in dims of the
// values of ids (ascending, distinct) that dims holds, and those values
// in the order of the positions: by binary search when dims ascend, as
// packs store them, else by looking each of dims up in ids.
func positionsOf(dims, ids []int32) (pos, at []int32) {
	if slices.IsSorted(dims) {
		for _, id := range ids {
			if i, ok := slices.BinarySearch(dims, id); ok {
				pos, at = append(pos, int32(i+1)), append(at, id)
			}
		}
		return pos, at
	}
	for i, d := range dims {
		if _, ok := slices.BinarySearch(ids, d); ok {
			pos, at = append(pos, int32(i+1)), append(at, d)
		}
	}
	return pos, at
}

// searchRollupSketches is ReadRollupSketches for a few dim_ids in one
// statement, PostgreSQL finding their positions in each pack
// (array_position).
func searchRollupSketches(ctx context.Context, db Querier, of RollupsOf, ids []int32, reads, sketches int, add func(day time.Time, dim int32, sks [][]byte)) error {
	var cols, picks, copies, wrap []string
	for i, col := range RollupSketchColumns {
		if reads&(1<<i) != 0 {
			cols = append(cols, "r."+col)
			picks = append(picks, "q."+col+"[x.i]")
			copies = append(copies, "p."+col+" || '{}'::bytea[] AS "+col)
			wrap = append(wrap, "ARRAY[s."+col+"]")
		}
	}
	return scanSketchRows(ctx, db, reads, sketches, add, `SELECT s.day, ARRAY[s.dim_id], `+strings.Join(wrap, ", ")+` FROM (SELECT p.day, z.* FROM `+rollupPacks+` p, LATERAL (
				SELECT x.dim_id, `+strings.Join(picks, ", ")+`
				FROM (SELECT p.dim_ids || '{}'::int[] AS dim_ids, `+strings.Join(copies, ", ")+` OFFSET 0) q,
					LATERAL (SELECT d AS dim_id, array_position(q.dim_ids, d) AS i FROM unnest($5::int[]) d) x
				WHERE x.i IS NOT NULL) z
				WHERE p.site_id = $1 AND p.kind = $2 AND p.day >= $3 AND p.day < $4
			UNION ALL
			SELECT r.day, r.dim_id, `+strings.Join(cols, ", ")+` FROM rollup_days r
				WHERE r.site_id = $1 AND r.kind = $2 AND r.day >= $3 AND r.day < $4 AND r.dim_id = ANY($5::int[])) s`,
		of.Site, int16(of.Kind), of.Lo, of.Hi, ids)
}
