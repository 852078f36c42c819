package query

import (
	"strconv"
	"strings"
	"time"
)

// Row kinds in the report statement's result (its "part" column). One
// statement returns the page of rows and every summary, so the grouped
// result is computed once (a CTE used several times is materialized).
const (
	partRow      = 0 // a report row; pos is its 1-based position in the full order
	partRowCount = 1 // one row; pos holds the number of grouped rows (rowCount)
	partTotal    = 2 // one per date range with events: metrics over all its events
	partMax      = 3 // one per date range with rows: the largest value of each metric
	partMin      = 4 // one per date range with rows: the smallest value of each metric
)

// reportSQL is a report statement and its arguments. Parameters:
//
//	$1 site id, $2 site time zone, $3/$4 the earliest start and latest end
//	of all ranges (so the planner prunes partitions and the BRIN index
//	applies), $5/$6/$7 the ranges as parallel arrays (index, start, end),
//	$8 limit, $9 offset.
type reportSQL struct {
	text string
	args []any
}

// buildSQL writes the statement for p. Columns: part, pos, k0 (date range
// index), k1..kN (dimensions), m0..mM (metrics); see the part constants.
func buildSQL(p *plan) reportSQL {
	var b strings.Builder
	b.Grow(1024)
	nk, nm := len(p.dims)+1, len(p.metrics)

	// r carries the time zone beside the ranges so that $2 is typed even in
	// statements without a date dimension.
	b.WriteString("WITH r AS (SELECT r.*, $2::text AS tz FROM unnest($5::int[], $6::timestamptz[], $7::timestamptz[]) AS r(idx, lo, hi)),\ng AS (SELECT r.idx AS k0")
	for i, d := range p.dims {
		b.WriteString(", ")
		b.WriteString(d.expr)
		b.WriteString(" AS k")
		b.WriteString(strconv.Itoa(i + 1))
	}
	for i, m := range p.metrics {
		b.WriteString(", ")
		b.WriteString(m.expr)
		b.WriteString(" AS m")
		b.WriteString(strconv.Itoa(i))
	}
	writeFrom(&b, p.dims)
	b.WriteString(" GROUP BY 1")
	for i := 2; i <= nk; i++ {
		b.WriteString(", ")
		b.WriteString(strconv.Itoa(i))
	}
	if !p.keepEmpty && nm > 0 {
		// GA4 drops rows whose metrics are all zero unless keepEmptyRows.
		b.WriteString(" HAVING ")
		for i, m := range p.metrics {
			if i > 0 {
				b.WriteString(" OR ")
			}
			b.WriteString(m.expr)
			b.WriteString(" <> 0")
		}
	}
	b.WriteString("),\ns AS (SELECT g.*, row_number() OVER (ORDER BY ")
	writeOrder(&b, p)
	b.WriteString(") AS pos FROM g)\n")

	b.WriteString("SELECT 0 AS part, pos, k0")
	writeColumns(&b, "k", 1, nk, "")
	writeColumns(&b, "m", 0, nm, "")
	b.WriteString(" FROM s WHERE pos > $9::bigint AND pos <= $9::bigint + $8::bigint\n")

	b.WriteString("UNION ALL SELECT 1, count(*), NULL")
	writeNulls(&b, nk-1, "text")
	writeNulls(&b, nm, "bigint")
	b.WriteString(" FROM g\n")

	if nm > 0 && p.totals {
		// Totals come from the events, not from summing rows: a distinct
		// count over a range is not the sum of its rows' distinct counts.
		b.WriteString("UNION ALL SELECT 2, 0, r.idx")
		writeNulls(&b, nk-1, "text")
		for _, m := range p.metrics {
			b.WriteString(", ")
			b.WriteString(m.expr)
		}
		writeFrom(&b, nil)
		b.WriteString(" GROUP BY r.idx\n")
	}
	for _, agg := range []struct {
		on   bool
		part string
		fn   string
	}{{p.maximums, "3", "max"}, {p.minimums, "4", "min"}} {
		if nm == 0 || !agg.on {
			continue
		}
		b.WriteString("UNION ALL SELECT ")
		b.WriteString(agg.part)
		b.WriteString(", 0, k0")
		writeNulls(&b, nk-1, "text")
		writeColumns(&b, "m", 0, nm, agg.fn)
		b.WriteString(" FROM g GROUP BY k0\n")
	}
	b.WriteString("ORDER BY part, pos")

	return reportSQL{text: b.String(), args: sqlArgs(p)}
}

// writeFrom writes FROM, the joins dims need and the WHERE clause. Only
// dictionary joins of the given dimensions are added; each at most once.
func writeFrom(b *strings.Builder, dims []*dimDef) {
	b.WriteString(" FROM events e JOIN r ON e.ts >= r.lo AND e.ts < r.hi")
	var done []*joinDef
	for _, d := range dims {
		if d.join == nil || containsJoin(done, d.join) {
			continue
		}
		done = append(done, d.join)
		b.WriteString(" LEFT JOIN dims ")
		b.WriteString(d.join.alias)
		b.WriteString(" ON ")
		b.WriteString(d.join.alias)
		b.WriteString(".id = e.")
		b.WriteString(d.join.column)
	}
	b.WriteString(" WHERE e.site_id = $1 AND e.ts >= $3 AND e.ts < $4")
}

func containsJoin(js []*joinDef, j *joinDef) bool {
	for _, x := range js {
		if x == j {
			return true
		}
	}
	return false
}

// writeOrder writes the window ordering: the request's orderBys, then (with
// none) the first metric descending, then every key ascending so the order
// is total and pages never overlap. Text compares by code point (COLLATE
// "C"), GA4's ALPHANUMERIC.
func writeOrder(b *strings.Builder, p *plan) {
	terms := p.order
	if len(terms) == 0 && len(p.metrics) > 0 {
		terms = []orderTerm{{metric: true, idx: 0, desc: true}}
	}
	for i := 0; i <= len(p.dims); i++ {
		terms = append(terms, orderTerm{idx: i})
	}
	for i, t := range terms {
		if i > 0 {
			b.WriteString(", ")
		}
		switch {
		case t.metric:
			b.WriteString("m" + strconv.Itoa(t.idx))
		case t.idx == 0:
			b.WriteString("k0")
		case t.fold:
			b.WriteString("lower(k" + strconv.Itoa(t.idx) + ") COLLATE \"C\"")
		default:
			b.WriteString("k" + strconv.Itoa(t.idx) + " COLLATE \"C\"")
		}
		if t.desc {
			b.WriteString(" DESC")
		}
	}
}

// writeColumns writes ", prefix<from>, …, prefix<to-1>", each wrapped in fn
// when fn is set.
func writeColumns(b *strings.Builder, prefix string, from, to int, fn string) {
	for i := from; i < to; i++ {
		b.WriteString(", ")
		if fn != "" {
			b.WriteString(fn + "(")
		}
		b.WriteString(prefix + strconv.Itoa(i))
		if fn != "" {
			b.WriteString(")")
		}
	}
}

func writeNulls(b *strings.Builder, n int, typ string) {
	for range n {
		b.WriteString(", NULL::" + typ)
	}
}

// sqlArgs binds p's values to the statement's parameters.
func sqlArgs(p *plan) []any {
	idx := make([]int32, len(p.ranges))
	lo := make([]time.Time, len(p.ranges))
	hi := make([]time.Time, len(p.ranges))
	minLo, maxHi := p.ranges[0].lo, p.ranges[0].hi
	for i, r := range p.ranges {
		idx[i], lo[i], hi[i] = int32(i), r.lo, r.hi
		if r.lo.Before(minLo) {
			minLo = r.lo
		}
		if r.hi.After(maxHi) {
			maxHi = r.hi
		}
	}
	return []any{int32(p.site.id), p.site.timeZone, minLo, maxHi, idx, lo, hi, p.limit, p.offset}
}
