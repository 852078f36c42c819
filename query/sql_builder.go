package query

import (
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/avila-analytics/avila/storage/postgres"
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

// reportSQL is a report statement and its arguments. The first parameters
// are always:
//
//	$1 site id, $2 site time zone, $3/$4 the earliest start and latest end
//	of all ranges (so the planner prunes partitions and the BRIN index
//	applies), $5/$6/$7 the ranges as parallel arrays (index, start, end),
//	$8 limit, $9 offset.
//
// Filter values, custom parameter names and lookup tables follow, numbered
// in the order the statement uses them.
type reportSQL struct {
	text string
	args []any
}

// fixedArgs is the number of parameters every report statement has.
const fixedArgs = 9

// sqlWriter assembles a statement's text and its bound arguments. Only
// allowlisted SQL and fixed keywords are written; every value is bound.
type sqlWriter struct {
	strings.Builder
	args   []any
	shared map[string]string // placeholders bound once per statement, by key
	// rollup: expressions read a rollup_days row "e" (time dimensions from
	// its day, see rollupDayExprs) instead of an events row.
	rollup bool
	// rollupHour: the rollup rows are hourly (dim_id the hour), which
	// answer the hour dimensions too (rollupHourExprs).
	rollupHour bool
	// rollupTraffic: the rollup rows are RollupSessionTraffic's, whose
	// dim_id is a traffic profile (writeRollupJoins).
	rollupTraffic bool
	// sessions: expressions read a sessions row "e" (see schema.go).
	sessions bool
	// mixed: metrics aggregate per-session rows x (event-session reports).
	mixed bool
	// items: expressions read an event_items row "e" (commerce.go).
	items bool
	// commerce: a metric reads the event's event_commerce row, joined
	// through e.commerce_id.
	commerce bool
}

// metricExpr is the SQL of metric m over the statement's rows.
func (w *sqlWriter) metricExpr(m *metricDef) string {
	switch {
	case w.sessions:
		return m.sess
	case w.mixed:
		return m.mixed
	case w.items:
		return m.item
	case m.param != "":
		return keyEventsOf(w.bindShared("keyEvents:"+m.param, m.param))
	}
	return m.expr
}

// bind adds v as the next parameter and returns its placeholder.
func (w *sqlWriter) bind(v any) string {
	w.args = append(w.args, v)
	return "$" + strconv.Itoa(len(w.args))
}

// bindShared binds v once per statement under key; later calls with the
// same key return the same placeholder (for large constant tables).
func (w *sqlWriter) bindShared(key string, v any) string {
	if ph, ok := w.shared[key]; ok {
		return ph
	}
	if w.shared == nil {
		w.shared = make(map[string]string)
	}
	ph := w.bind(v)
	w.shared[key] = ph
	return ph
}

// dimExpr is the SQL of dimension d: its allowlisted expression, or for a
// custom dimension the parameter lookup with the name bound.
func (w *sqlWriter) dimExpr(d *dimDef) string {
	if x, ok := rollupDayExprs[d.name]; ok && w.rollup {
		return x
	}
	if x, ok := rollupHourExprs[d.name]; ok && w.rollupHour {
		return x
	}
	if w.sessions {
		return d.sess // validation admits only dimensions that have it
	}
	if w.items && d.item != "" {
		return d.item
	}
	if d.param == "" {
		return d.expr
	}
	// section is "ps" or "up", from lookupDimension, never from the request.
	return "COALESCE(event_param(e.params, '" + d.section + "', " + w.bind(d.param) + "::text), '" + notSet + "')"
}

// buildSQL writes the statement for p. Columns: part, pos, k0 (date range
// index), k1..kN (dimensions), m0..mM (metrics); see the part constants.
func buildSQL(p *plan) reportSQL {
	w := &sqlWriter{args: fixedArgValues(p), sessions: p.sessions, items: p.items}
	for _, m := range p.metrics {
		w.commerce = w.commerce || (!p.sessions && !p.items && readsCommerce(m.expr))
	}
	w.Grow(2048)
	nk, nm := len(p.dims)+1, len(p.metrics)

	// r carries the time zone beside the ranges so that $2 is typed even in
	// statements without a date dimension.
	w.WriteString("WITH r AS (SELECT r.*, $2::text AS tz FROM unnest($5::int[], $6::timestamptz[], $7::timestamptz[]) AS r(idx, lo, hi)),\n")
	w.writeNameTables(append(joinsOf(p.dims), p.dimFilter.joins()...))
	if p.mixed {
		w.writeMixedSessions(p)
		w.mixed = true
	}
	w.WriteString("g AS (SELECT ")
	if p.mixed {
		w.WriteString("k0")
		writeColumns(w, "k", 1, nk, "")
	} else {
		w.WriteString("r.idx AS k0")
		for i, d := range p.dims {
			w.WriteString(", ")
			w.WriteString(w.dimExpr(d))
			w.WriteString(" AS k")
			w.WriteString(strconv.Itoa(i + 1))
		}
	}
	for i, m := range p.metrics {
		w.WriteString(", ")
		w.WriteString(w.metricExpr(m))
		w.WriteString(" AS m")
		w.WriteString(strconv.Itoa(i))
	}
	if p.mixed {
		w.WriteString(" FROM x")
	} else {
		w.writeFrom(append(joinsOf(p.dims), p.dimFilter.joins()...), p.dimFilter)
	}
	w.WriteString(" GROUP BY 1")
	for i := 2; i <= nk; i++ {
		w.WriteString(", ")
		w.WriteString(strconv.Itoa(i))
	}
	var having []string
	if !p.keepEmpty && nm > 0 {
		// GA4 drops rows whose metrics are all zero unless keepEmptyRows.
		nonZero := make([]string, nm)
		for i, m := range p.metrics {
			nonZero[i] = w.metricExpr(m) + " <> 0"
		}
		having = append(having, "("+strings.Join(nonZero, " OR ")+")")
	}
	if p.metricFilter != nil {
		having = append(having, w.filterSQL(p.metricFilter))
	}
	if len(having) > 0 {
		w.WriteString(" HAVING ")
		w.WriteString(strings.Join(having, " AND "))
	}
	w.WriteString("),\ns AS (SELECT g.*, row_number() OVER (ORDER BY ")
	w.writeOrder(p)
	w.WriteString(") AS pos FROM g)\n")

	w.WriteString("SELECT 0 AS part, pos, k0")
	writeColumns(w, "k", 1, nk, "")
	writeColumns(w, "m", 0, nm, "")
	w.WriteString(" FROM s WHERE pos > $9::bigint AND pos - $9::bigint <= $8::bigint\n")

	w.WriteString("UNION ALL SELECT 1, count(*), NULL")
	writeNulls(w, p, true)
	w.WriteString(" FROM g\n")

	if nm > 0 && p.totals {
		// Totals come from the events, not from summing rows: a distinct
		// count over a range is not the sum of its rows' distinct counts.
		// The dimension filter applies; the metric filter, which selects
		// rows, does not.
		if p.mixed {
			// The range's sessions once each, whatever groups they fall in.
			w.WriteString("UNION ALL SELECT 2, 0, x.k0")
		} else {
			w.WriteString("UNION ALL SELECT 2, 0, r.idx")
		}
		writeNulls(w, p, false)
		for _, m := range p.metrics {
			w.WriteString(", ")
			w.WriteString(w.metricExpr(m))
		}
		if p.mixed {
			w.WriteString(" FROM (SELECT k0, v, sid")
			for _, c := range mixedColumnsOf(p) {
				w.WriteString(", " + c.merge + "(" + c.name + ") AS " + c.name)
			}
			w.WriteString(" FROM x GROUP BY k0, v, sid) x GROUP BY x.k0\n")
		} else {
			w.writeFrom(p.dimFilter.joins(), p.dimFilter)
			w.WriteString(" GROUP BY r.idx\n")
		}
	}
	for _, agg := range []struct {
		on   bool
		part string
		fn   string
	}{{p.maximums, "3", "max"}, {p.minimums, "4", "min"}} {
		if nm == 0 || !agg.on {
			continue
		}
		w.WriteString("UNION ALL SELECT ")
		w.WriteString(agg.part)
		w.WriteString(", 0, k0")
		for range nk - 1 {
			w.WriteString(", NULL::text")
		}
		writeColumns(w, "m", 0, nm, agg.fn)
		w.WriteString(" FROM g GROUP BY k0\n")
	}
	w.WriteString("ORDER BY part, pos")

	return reportSQL{text: w.text(), args: w.args}
}

// writeMixedSessions writes the CTE x of an event-session report: one row
// per date range, group and session (visitor and session id) of the events
// that pass the dimension filter, with mixedColumns.
func (w *sqlWriter) writeMixedSessions(p *plan) {
	w.WriteString("x AS (SELECT r.idx AS k0")
	for i, d := range p.dims {
		w.WriteString(", " + w.dimExpr(d) + " AS k" + strconv.Itoa(i+1))
	}
	w.WriteString(", e.visitor_id AS v, e.session_id AS sid")
	for _, c := range mixedColumnsOf(p) {
		inner := c.inner
		if c.param != "" {
			inner = keyEventsOf(w.bindShared("keyEvents:"+c.param, c.param))
		}
		w.WriteString(", " + inner + " AS " + c.name)
	}
	w.writeFrom(append(joinsOf(p.dims), p.dimFilter.joins()...), p.dimFilter)
	w.WriteString(" GROUP BY 1")
	for i := range len(p.dims) + 2 {
		w.WriteString(", " + strconv.Itoa(i+2))
	}
	w.WriteString("),\n")
}

// mixedColumnsOf are the columns of p's per-session rows x: mixedColumns
// and those its metrics, the metric filter's included, read besides.
func mixedColumnsOf(p *plan) []mixedColumn {
	// x.act costs a window over the range's events (e.day_active): only
	// for the metrics that read it.
	reads := func(m *metricDef) bool { return strings.Contains(m.mixed, "x.act") }
	active := slices.ContainsFunc(p.metrics, reads)
	p.metricFilter.all(func(l *filterLeaf) bool {
		active = active || (l.metric != nil && reads(l.metric))
		return true
	})
	out := slices.DeleteFunc(slices.Clone(mixedColumns), func(c mixedColumn) bool { return c.name == "act" && !active })
	add := func(m *metricDef) {
		for _, c := range m.mixedCols {
			if !slices.Contains(out, c) {
				out = append(out, c)
			}
		}
	}
	for _, m := range p.metrics {
		add(m)
	}
	p.metricFilter.all(func(l *filterLeaf) bool {
		if l.metric != nil {
			add(l.metric)
		}
		return true
	})
	return out
}

func joinsOf(dims []*dimDef) []*joinDef {
	var out []*joinDef
	for _, d := range dims {
		out = append(out, d.joins...)
	}
	return out
}

// writeFrom writes FROM, the given dictionary joins (each at most once) and
// the WHERE clause with the dimension filter, if any.
func (w *sqlWriter) writeFrom(joins []*joinDef, filter *filterNode) {
	switch {
	case w.sessions:
		w.WriteString(" FROM sessions e")
	case w.items:
		w.WriteString(" FROM " + itemsSource + " e")
	default:
		w.WriteString(" FROM " + eventsSource + " e")
	}
	w.WriteString(" JOIN r ON e.ts >= r.lo AND e.ts < r.hi")
	// Events and sessions rows reach most dims ids through profile tables
	// (each joined once, aliased by its name). Session dimensions have no
	// content profile: sessions rows hold landing and exit page ids.
	var profiles []*postgres.Profile
	if w.commerce {
		profiles = append(profiles, postgres.CommerceProfile)
		w.WriteString(" LEFT JOIN event_commerce ON event_commerce.id = e.commerce_id")
	}
	for _, j := range joins {
		if p := j.profile; p != nil && !slices.Contains(profiles, p) {
			profiles = append(profiles, p)
			w.WriteString(" LEFT JOIN " + p.Table + " ON " + p.Table + ".id = e." + p.Column)
		}
	}
	w.writeDictJoins(joins, func(j *joinDef) string {
		if j.profile != nil {
			return j.profile.Table + "." + j.column
		}
		return "e." + j.column
	})
	w.WriteString(" WHERE e.site_id = $1 AND e.ts >= $3 AND e.ts < $4")
	if filter != nil {
		w.WriteString(" AND ")
		w.WriteString(w.filterSQL(filter))
	}
}

// writeDictJoins LEFT JOINs the dims dictionary (or the join's name table)
// of each of joins, once, on the id that on(join) names.
func (w *sqlWriter) writeDictJoins(joins []*joinDef, on func(*joinDef) string) {
	var done []*joinDef
	for _, j := range joins {
		if slices.Contains(done, j) {
			continue
		}
		done = append(done, j)
		w.WriteString(" LEFT JOIN ")
		if j.names == nil {
			w.WriteString("dims")
		} else {
			w.WriteString(j.names.cte)
		}
		w.WriteString(" " + j.alias + " ON " + j.alias + ".id = " + on(j))
	}
}

// writeNameTables writes a CTE per name table the joins use: the site's
// dictionary entries of that kind with their display names, computed once
// per statement (MATERIALIZED) so events join a handful of rows whatever
// plan the events scan gets.
func (w *sqlWriter) writeNameTables(joins []*joinDef) {
	var done []*nameTable
	for _, j := range joins {
		t := j.names
		if t == nil || slices.Contains(done, t) {
			continue
		}
		done = append(done, t)
		codes := w.bindShared(t.key+".codes", t.codes)
		names := w.bindShared(t.key+".names", t.names)
		w.WriteString(t.cte + " AS MATERIALIZED (SELECT d.id, COALESCE(n.name, d.value) AS value FROM dims d LEFT JOIN unnest(")
		w.WriteString(codes + "::text[], " + names + "::text[]) AS n(code, name) ON n.code = " + t.codeSQL)
		w.WriteString(" WHERE d.site_id = $1 AND d.kind = " + strconv.Itoa(t.kind) + "),\n")
	}
}

// numericSQL is x as a number when it is one (optional minus, digits,
// optional fraction), else NULL: GA4's NUMERIC ordering and numeric
// dimension filters treat other values as no number.
func numericSQL(x string) string {
	return "CASE WHEN " + x + ` ~ '^-?[0-9]+(\.[0-9]+)?$' THEN (` + x + ")::numeric END"
}

// writeOrder writes the window ordering: the request's orderBys, then (with
// none) the first metric descending, then every key ascending so the order
// is total and pages never overlap. Text compares by code point (COLLATE
// "C"), GA4's ALPHANUMERIC.
func (w *sqlWriter) writeOrder(p *plan) {
	terms := p.order
	if len(terms) == 0 && len(p.metrics) > 0 {
		terms = []orderTerm{{metric: true, idx: 0, desc: true}}
	}
	for i := 0; i <= len(p.dims); i++ {
		terms = append(terms, orderTerm{idx: i})
	}
	for i, t := range terms {
		if i > 0 {
			w.WriteString(", ")
		}
		k := "k" + strconv.Itoa(t.idx)
		switch {
		case t.metric:
			w.WriteString("m" + strconv.Itoa(t.idx))
		case t.idx == 0:
			w.WriteString("k0")
		case t.numeric:
			// Values that are no number sort below all numbers.
			w.WriteString(numericSQL(k))
			if t.desc {
				w.WriteString(" DESC NULLS LAST")
			} else {
				w.WriteString(" NULLS FIRST")
			}
			continue
		case t.fold:
			w.WriteString(w.lowerSQL(k) + ` COLLATE "C"`)
		default:
			w.WriteString(k + ` COLLATE "C"`)
		}
		if t.desc {
			w.WriteString(" DESC")
		}
	}
}

// writeColumns writes ", prefix<from>, …, prefix<to-1>", each wrapped in fn
// when fn is set.
func writeColumns(w *sqlWriter, prefix string, from, to int, fn string) {
	for i := from; i < to; i++ {
		w.WriteString(", ")
		if fn != "" {
			w.WriteString(fn + "(")
		}
		w.WriteString(prefix + strconv.Itoa(i))
		if fn != "" {
			w.WriteString(")")
		}
	}
}

// writeNulls writes typed NULLs for the dimension keys and, with metrics,
// for the metric columns.
func writeNulls(w *sqlWriter, p *plan, metrics bool) {
	for range p.dims {
		w.WriteString(", NULL::text")
	}
	if !metrics {
		return
	}
	for _, m := range p.metrics {
		w.WriteString(", NULL::" + m.sqlType())
	}
}

// fixedArgValues binds p's values to the statement's first parameters.
func fixedArgValues(p *plan) []any {
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
