package query

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgtype"

	"github.com/avila-analytics/avila/storage/postgres"
)

// rollupSums are a report's counters summed per date range and rollup
// dim_id, in Go: the "pre" step of buildRollupSQL without sketches, time
// dimensions or filter. Reading a packed day's arrays and adding them here
// costs a fraction of unnesting and grouping them in SQL (top pages over
// 30 days add some 40,000 values at a million events), and the statement
// then names and groups the few thousand dim_ids only.
type rollupSums []rollupSum

// rollupSum is one date range's and dim_id's summed counters.
type rollupSum struct {
	rng, dim int32
	c        rollupCell
}

// daySpan is a date range's local days [lo, hi), as UTC midnights.
type daySpan struct{ lo, hi time.Time }

func (s daySpan) holds(day time.Time) bool { return !day.Before(s.lo) && day.Before(s.hi) }

// daySpans are p's date ranges as local days, with the earliest first day
// and the latest end of them all.
func daySpans(p *plan) (spans []daySpan, lo, hi time.Time) {
	spans = make([]daySpan, len(p.ranges))
	for i, r := range p.ranges {
		spans[i] = daySpan{localDay(p, r.lo), localDay(p, r.hi)}
		if i == 0 || spans[i].lo.Before(lo) {
			lo = spans[i].lo
		}
		if i == 0 || spans[i].hi.After(hi) {
			hi = spans[i].hi
		}
	}
	return spans, lo, hi
}

// localDay is the local date of t in p's time zone, as UTC midnight (how
// pgx reads a date).
func localDay(p *plan, t time.Time) time.Time {
	y, m, d := t.In(p.site.loc).Date()
	return time.Date(y, m, d, 0, 0, 0, 0, time.UTC)
}

// sumRollups reads the counters of rp's kind over p's ranges from
// rollup_packs and rollup_days and sums them per range and dim_id.
func sumRollups(ctx context.Context, db querier, p *plan, rp rollupPlan) (rollupSums, error) {
	spans, lo, hi := daySpans(p)
	// A day's packed arrays and its rollup_days rows (today, yesterday,
	// late events) come as rows of the same shape; counters no metric of
	// p reads come as NULL (each array read costs its detoasting and
	// decoding).
	used := countersUsed(p)
	packCols, dayCols := "", ""
	for i, c := range eventCounters {
		if used&(1<<i) != 0 {
			packCols += ", " + c
			dayCols += ", array_agg(" + c + ")"
		} else {
			packCols += ", NULL::" + counterArrayType[i]
			dayCols += ", NULL::" + counterArrayType[i]
		}
	}
	// Amounts: a pack's flat array, a day's rows' arrays one after
	// another (a row without amounts as NULLs), read flat.
	if rp.amounts {
		packCols += ", amounts"
		dayCols += ", array_agg(COALESCE(amounts, array_fill(NULL::float8, ARRAY[" + strconv.Itoa(postgres.NumAmounts) + "])))"
	} else {
		packCols += ", NULL::float8[]"
		dayCols += ", NULL::float8[]"
	}
	res, err := db.Query(ctx, `SELECT day, dim_ids`+packCols+` FROM rollup_packs
			WHERE site_id = $1 AND kind = $2 AND day >= $3 AND day < $4
		UNION ALL
		SELECT day, array_agg(dim_id)`+dayCols+` FROM rollup_days
			WHERE site_id = $1 AND kind = $2 AND day >= $3 AND day < $4 GROUP BY day`,
		int32(p.site.id), int16(rp.kind), lo, hi)
	if err != nil {
		return nil, fmt.Errorf("query: sum rollups: %w", err)
	}
	defer res.Close()
	type key struct{ rng, dim int32 }
	at := make(map[key]int)
	var s rollupSums
	var (
		day                          time.Time
		dims, events, views, keyEvts []int32
		engaged                      []int64
		amounts                      pgtype.FlatArray[*float64]
	)
	const slots = postgres.NumAmounts
	for res.Next() {
		if err := res.Scan(&day, &dims, &events, &views, &keyEvts, &engaged, &amounts); err != nil {
			return nil, fmt.Errorf("query: sum rollups: %w", err)
		}
		n := len(dims)
		if amounts != nil && len(amounts) != n*slots {
			return nil, fmt.Errorf("query: sum rollups: BUG: rollups of %s have %d amounts for %d cells", day.Format(time.DateOnly), len(amounts), n)
		}
		// Counters not read are all zero.
		events, views, keyEvts, engaged = orZeros(events, n), orZeros(views, n), orZeros(keyEvts, n), orZeros(engaged, n)
		if len(events) != n || len(views) != n || len(keyEvts) != n || len(engaged) != n {
			return nil, fmt.Errorf("query: sum rollups: BUG: rollups of %s have arrays of unequal lengths", day.Format(time.DateOnly))
		}
		for r, sp := range spans {
			if !sp.holds(day) {
				continue
			}
			for j, dim := range dims {
				k := key{int32(r), dim}
				i, ok := at[k]
				if !ok {
					i = len(s)
					at[k] = i
					s = append(s, rollupSum{rng: int32(r), dim: dim})
				}
				c := &s[i].c
				c.events += int64(events[j])
				c.views += int64(views[j])
				c.keyEvents += int64(keyEvts[j])
				c.engageMs += engaged[j]
				if amounts != nil {
					for a, v := range amounts[j*slots : (j+1)*slots] {
						if v != nil {
							c.amounts[a] += *v
						}
					}
				}
			}
		}
	}
	if err := res.Err(); err != nil {
		return nil, fmt.Errorf("query: sum rollups: %w", err)
	}
	return s, nil
}

// counterArrayType is the array type of each of eventCounters.
var counterArrayType = []string{"int[]", "int[]", "int[]", "int8[]"}

// metricCounters are the rollup_days counters (bits by eventCounters) each
// rollup metric reads; user counts read none.
var metricCounters = map[string]int{
	"eventCount": 1 << 0, "screenPageViews": 1 << 1, "keyEvents": 1 << 2, "userEngagementDuration": 1 << 3,
	"eventCountPerUser": 1 << 0, "totalUsers": 0, "activeUsers": 0, "newUsers": 0,
}

// countersUsed are the counters p's metrics read (all for a metric not
// listed in metricCounters; none for one of the amounts).
func countersUsed(p *plan) int {
	used := 0
	for _, m := range p.metrics {
		if readsAmounts(m.name) {
			continue
		}
		c, ok := metricCounters[m.name]
		if !ok {
			c = 1<<len(eventCounters) - 1
		}
		used |= c
	}
	return used
}

// orZeros is a, or n zeros when a was not read (NULL).
func orZeros[T int32 | int64](a []T, n int) []T {
	if a == nil {
		return make([]T, n)
	}
	return a
}

// presummable reports whether buildRollupSQL sums p's rollup rows per
// dim_id before naming them ("pre"): a dictionary dimension, no sketches,
// no time dimension of a day, no filter, every dim_id.
func presummable(p *plan, rp rollupPlan, only []int32) bool {
	return rp.sketches == 0 && p.dimFilter == nil && rp.column != "" && only == nil && !slices.ContainsFunc(p.dims, isDayDim)
}

// isDayDim reports whether d is a time dimension of a rollup day.
func isDayDim(d *dimDef) bool {
	_, ok := rollupDayExprs[d.name]
	return ok
}

// pickSketches sets the raw sketches of rows, groups of a report without
// day dimensions read with their dim_ids (ids, ascending, all of them):
// each day's sketches of those dim_ids, from rollup_packs and rollup_days,
// go to the groups holding the dim_id in the ranges holding the day. Only
// the sketch columns rp reads are unnested, and nothing is grouped in SQL.
// With every, rows are all the report's groups: the packs are read whole
// instead of searched for each dim_id.
func pickSketches(ctx context.Context, db querier, p *plan, rp rollupPlan, rows []*rollupRow, ids []int32, every bool) error {
	spans, lo, hi := daySpans(p)
	type key struct{ rng, dim int32 }
	groups := make(map[key][]*rollupRow)
	for _, r := range rows {
		r.raw = new([3][][]byte)
		for i := range r.raw {
			if rp.reads()&(1<<i) != 0 {
				r.raw[i] = [][]byte{}
			}
		}
		for _, id := range r.ids {
			k := key{int32(r.rng), id}
			groups[k] = append(groups[k], r)
		}
	}
	// A pack's arrays are detoasted once (the concatenation in the
	// subquery, kept by OFFSET 0) and then indexed per wanted dim_id:
	// unnesting every value of every day to keep ten took most of the
	// statement.
	var cols, picks, copies, arrays []string
	for i, col := range sketchColumns {
		if rp.reads()&(1<<i) != 0 {
			cols = append(cols, "r."+col)
			picks = append(picks, "q."+col+"[x.i]")
			copies = append(copies, "p."+col+" || '{}'::bytea[] AS "+col)
			arrays = append(arrays, "p."+col)
		}
	}
	// add gives a day's sketches of dim (by rp's columns) to its groups.
	add := func(day time.Time, dim int32, sks [][]byte) {
		for rng, sp := range spans {
			if !sp.holds(day) {
				continue
			}
			for _, r := range groups[key{int32(rng), dim}] {
				j := 0
				for i := range r.raw {
					if r.raw[i] != nil {
						r.raw[i] = append(r.raw[i], slices.Clone(sks[j]))
						j++
					}
				}
			}
		}
	}
	var query string
	if every {
		// The packs' arrays whole, a day's rows aggregated into arrays of
		// the same shape: one row a day, unnested in Go (a row per value
		// and day cost more than merging them).
		aggs := make([]string, len(cols))
		for i, c := range cols {
			aggs[i] = "array_agg(" + c + ")"
		}
		query = `SELECT p.day, p.dim_ids, ` + strings.Join(arrays, ", ") + ` FROM rollup_packs p
				WHERE p.site_id = $1 AND p.kind = $2 AND p.day >= $3 AND p.day < $4
			UNION ALL
			SELECT r.day, array_agg(r.dim_id), ` + strings.Join(aggs, ", ") + ` FROM rollup_days r
				WHERE r.site_id = $1 AND r.kind = $2 AND r.day >= $3 AND r.day < $4 AND r.dim_id = ANY($5::int[]) GROUP BY r.day`
	} else {
		wrap := make([]string, len(cols))
		for i, c := range cols {
			wrap[i] = "ARRAY[s." + strings.TrimPrefix(c, "r.") + "]"
		}
		query = `SELECT s.day, ARRAY[s.dim_id], ` + strings.Join(wrap, ", ") + ` FROM (SELECT p.day, z.* FROM rollup_packs p, LATERAL (
				SELECT x.dim_id, ` + strings.Join(picks, ", ") + `
				FROM (SELECT p.dim_ids || '{}'::int[] AS dim_ids, ` + strings.Join(copies, ", ") + ` OFFSET 0) q,
					LATERAL (SELECT d AS dim_id, array_position(q.dim_ids, d) AS i FROM unnest($5::int[]) d) x
				WHERE x.i IS NOT NULL) z
				WHERE p.site_id = $1 AND p.kind = $2 AND p.day >= $3 AND p.day < $4
			UNION ALL
			SELECT r.day, r.dim_id, ` + strings.Join(cols, ", ") + ` FROM rollup_days r
				WHERE r.site_id = $1 AND r.kind = $2 AND r.day >= $3 AND r.day < $4 AND r.dim_id = ANY($5::int[])) s`
	}
	res, err := db.Query(ctx, query, int32(p.site.id), int16(rp.kind), lo, hi, ids)
	if err != nil {
		return fmt.Errorf("query: read rollup sketches: %w", err)
	}
	defer res.Close()
	var (
		day  time.Time
		dims []int32
		sks  = make([][][]byte, len(cols))
		one  = make([][]byte, len(cols))
		dest = []any{&day, &dims}
	)
	for i := range sks {
		dest = append(dest, &sks[i])
	}
	for res.Next() {
		if err := res.Scan(dest...); err != nil {
			return fmt.Errorf("query: read rollup sketches: %w", err)
		}
		for k, dim := range dims {
			for i := range sks {
				if k >= len(sks[i]) {
					return fmt.Errorf("query: read rollup sketches: %s holds %d dim_ids and %d sketches", day.Format(time.DateOnly), len(dims), len(sks[i]))
				}
				one[i] = sks[i][k]
			}
			add(day, dim, one)
		}
	}
	if err := res.Err(); err != nil {
		return fmt.Errorf("query: read rollup sketches: %w", err)
	}
	for _, r := range rows {
		rp.expandRaw(r.raw)
	}
	return nil
}
