package sql

import (
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/avila-analytics/avila/query/plan"
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

// Statement is a report statement and its arguments. The first parameters
// are always:
//
//	$1 site id, $2 site time zone, $3/$4 the earliest start and latest end
//	of all ranges (so the planner prunes partitions and the BRIN index
//	applies), $5/$6/$7 the ranges as parallel arrays (index, start, end),
//	$8 limit, $9 offset.
//
// Filter values, custom parameter names and lookup tables follow, numbered
// in the order the statement uses them.
type Statement struct {
	Text string
	Args []any
}

// FixedArgs is the number of parameters every report statement has.
const FixedArgs = 9

// Writer assembles a statement's text and its bound arguments. Only
// allowlisted SQL and fixed keywords are written; every value is bound.
type Writer struct {
	strings.Builder
	Args   []any
	shared map[string]string // placeholders bound once per statement, by key
	// Rollup: expressions read a rollup_days row "e" (time dimensions from
	// its day, see rollupDayExprs) instead of an events row.
	Rollup bool
	// RollupHour: the rollup rows are hourly (dim_id the hour), which
	// answer the hour dimensions too (rollupHourExprs).
	RollupHour bool
	// RollupTraffic: the rollup rows are RollupSessionTraffic's, whose
	// dim_id is a traffic profile (writeRollupJoins).
	RollupTraffic bool
	// sessions: expressions read a sessions row "e" (see schema.go).
	sessions bool
	// mixed: metrics aggregate per-session rows x (event-session reports).
	mixed bool
	// Items: expressions read an event_items row "e" (commerce.go).
	Items bool
	// commerce: a metric reads the event's event_commerce row, joined
	// through e.commerce_id.
	commerce bool
}

// metricExpr is the SQL of metric m over the statement's rows.
func (w *Writer) metricExpr(m *plan.MetricDef) string {
	switch {
	case w.sessions:
		return m.Sess
	case w.mixed:
		return m.Mixed
	case w.Items:
		return m.Item
	case m.Param != "":
		return plan.KeyEventsOf(w.bindShared("keyEvents:"+m.Param, m.Param))
	}
	return m.Expr
}

// Bind adds v as the next parameter and returns its placeholder.
func (w *Writer) Bind(v any) string {
	w.Args = append(w.Args, v)
	return "$" + strconv.Itoa(len(w.Args))
}

// bindShared binds v once per statement under key; later calls with the
// same key return the same placeholder (for large constant tables).
func (w *Writer) bindShared(key string, v any) string {
	if ph, ok := w.shared[key]; ok {
		return ph
	}
	if w.shared == nil {
		w.shared = make(map[string]string)
	}
	ph := w.Bind(v)
	w.shared[key] = ph
	return ph
}

// DimExpr is the SQL of dimension d: its allowlisted expression, or for a
// custom dimension the parameter lookup with the name bound.
func (w *Writer) DimExpr(d *plan.DimDef) string {
	if x, ok := RollupDayExprs[d.Name]; ok && w.Rollup {
		return x
	}
	if x, ok := RollupHourExprs[d.Name]; ok && w.RollupHour {
		return x
	}
	if w.sessions {
		return d.Sess // validation admits only dimensions that have it
	}
	if w.Items && d.Item != "" {
		return d.Item
	}
	if d.Param == "" {
		return d.Expr
	}
	// section is "ps" or "up", from lookupDimension, never from the request.
	return "COALESCE(event_param(e.params, '" + d.Section + "', " + w.Bind(d.Param) + "::text), '" + plan.NotSet + "')"
}

// BuildReport writes the statement for p. Columns: part, pos, k0 (date range
// index), k1..kN (dimensions), m0..mM (metrics); see the part constants.
func BuildReport(p *plan.Plan) Statement {
	w := &Writer{Args: FixedArgValues(p), sessions: p.Sessions, Items: p.Items}
	for _, m := range p.Metrics {
		w.commerce = w.commerce || (!p.Sessions && !p.Items && plan.ReadsCommerce(m.Expr))
	}
	w.Grow(2048)
	nk, nm := len(p.Dims)+1, len(p.Metrics)

	// r carries the time zone beside the ranges so that $2 is typed even in
	// statements without a date dimension.
	w.WriteString("WITH r AS (SELECT r.*, $2::text AS tz FROM unnest($5::int[], $6::timestamptz[], $7::timestamptz[]) AS r(idx, lo, hi)),\n")
	w.WriteNameTables(append(JoinsOf(p.Dims), p.DimFilter.Joins()...))
	if p.Mixed {
		w.writeMixedSessions(p)
		w.mixed = true
	}
	w.WriteString("g AS (SELECT ")
	if p.Mixed {
		w.WriteString("k0")
		writeColumns(w, "k", 1, nk, "")
	} else {
		w.WriteString("r.idx AS k0")
		for i, d := range p.Dims {
			w.WriteString(", ")
			w.WriteString(w.DimExpr(d))
			w.WriteString(" AS k")
			w.WriteString(strconv.Itoa(i + 1))
		}
	}
	for i, m := range p.Metrics {
		w.WriteString(", ")
		w.WriteString(w.metricExpr(m))
		w.WriteString(" AS m")
		w.WriteString(strconv.Itoa(i))
	}
	if p.Mixed {
		w.WriteString(" FROM x")
	} else {
		w.WriteFrom(append(JoinsOf(p.Dims), p.DimFilter.Joins()...), p.DimFilter)
	}
	w.WriteString(" GROUP BY 1")
	for i := 2; i <= nk; i++ {
		w.WriteString(", ")
		w.WriteString(strconv.Itoa(i))
	}
	var having []string
	if !p.KeepEmpty && nm > 0 {
		// GA4 drops rows whose metrics are all zero unless keepEmptyRows.
		nonZero := make([]string, nm)
		for i, m := range p.Metrics {
			nonZero[i] = w.metricExpr(m) + " <> 0"
		}
		having = append(having, "("+strings.Join(nonZero, " OR ")+")")
	}
	if p.MetricFilter != nil {
		having = append(having, w.FilterSQL(p.MetricFilter))
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

	if nm > 0 && p.Totals {
		// Totals come from the events, not from summing rows: a distinct
		// count over a range is not the sum of its rows' distinct counts.
		// The dimension filter applies; the metric filter, which selects
		// rows, does not.
		if p.Mixed {
			// The range's sessions once each, whatever groups they fall in.
			w.WriteString("UNION ALL SELECT 2, 0, x.k0")
		} else {
			w.WriteString("UNION ALL SELECT 2, 0, r.idx")
		}
		writeNulls(w, p, false)
		for _, m := range p.Metrics {
			w.WriteString(", ")
			w.WriteString(w.metricExpr(m))
		}
		if p.Mixed {
			w.WriteString(" FROM (SELECT k0, v, sid")
			for _, c := range mixedColumnsOf(p) {
				w.WriteString(", " + c.Merge + "(" + c.Name + ") AS " + c.Name)
			}
			w.WriteString(" FROM x GROUP BY k0, v, sid) x GROUP BY x.k0\n")
		} else {
			w.WriteFrom(p.DimFilter.Joins(), p.DimFilter)
			w.WriteString(" GROUP BY r.idx\n")
		}
	}
	for _, agg := range []struct {
		on   bool
		part string
		fn   string
	}{{p.Maximums, "3", "max"}, {p.Minimums, "4", "min"}} {
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

	return Statement{Text: w.Text(), Args: w.Args}
}

// writeMixedSessions writes the CTE x of an event-session report: one row
// per date range, group and session (visitor and session id) of the events
// that pass the dimension filter, with mixedColumns.
func (w *Writer) writeMixedSessions(p *plan.Plan) {
	w.WriteString("x AS (SELECT r.idx AS k0")
	for i, d := range p.Dims {
		w.WriteString(", " + w.DimExpr(d) + " AS k" + strconv.Itoa(i+1))
	}
	w.WriteString(", e.visitor_id AS v, e.session_id AS sid")
	for _, c := range mixedColumnsOf(p) {
		inner := c.Inner
		if c.Param != "" {
			inner = plan.KeyEventsOf(w.bindShared("keyEvents:"+c.Param, c.Param))
		}
		w.WriteString(", " + inner + " AS " + c.Name)
	}
	w.WriteFrom(append(JoinsOf(p.Dims), p.DimFilter.Joins()...), p.DimFilter)
	w.WriteString(" GROUP BY 1")
	for i := range len(p.Dims) + 2 {
		w.WriteString(", " + strconv.Itoa(i+2))
	}
	w.WriteString("),\n")
}

// mixedColumnsOf are the columns of p's per-session rows x: mixedColumns
// and those its metrics, the metric filter's included, read besides.
func mixedColumnsOf(p *plan.Plan) []plan.MixedColumn {
	// x.act costs a window over the range's events (e.day_active): only
	// for the metrics that read it.
	reads := func(m *plan.MetricDef) bool { return strings.Contains(m.Mixed, "x.act") }
	active := slices.ContainsFunc(p.Metrics, reads)
	p.MetricFilter.All(func(l *plan.FilterLeaf) bool {
		active = active || (l.Metric != nil && reads(l.Metric))
		return true
	})
	out := slices.DeleteFunc(slices.Clone(plan.MixedColumns), func(c plan.MixedColumn) bool { return c.Name == "act" && !active })
	add := func(m *plan.MetricDef) {
		for _, c := range m.MixedCols {
			if !slices.Contains(out, c) {
				out = append(out, c)
			}
		}
	}
	for _, m := range p.Metrics {
		add(m)
	}
	p.MetricFilter.All(func(l *plan.FilterLeaf) bool {
		if l.Metric != nil {
			add(l.Metric)
		}
		return true
	})
	return out
}

func JoinsOf(dims []*plan.DimDef) []*plan.JoinDef {
	var out []*plan.JoinDef
	for _, d := range dims {
		out = append(out, d.Joins...)
	}
	return out
}

// WriteFrom writes FROM, the given dictionary joins (each at most once) and
// the WHERE clause with the dimension filter, if any.
func (w *Writer) WriteFrom(joins []*plan.JoinDef, filter *plan.FilterNode) {
	switch {
	case w.sessions:
		w.WriteString(" FROM " + sessionsSource + " e")
	case w.Items:
		w.WriteString(" FROM " + itemsSource + " e")
	default:
		w.WriteString(" FROM " + EventsSource + " e")
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
		if p := j.Profile; p != nil && !slices.Contains(profiles, p) {
			profiles = append(profiles, p)
			w.WriteString(" LEFT JOIN " + p.Table + " ON " + p.Table + ".id = e." + p.Column)
		}
	}
	w.writeDictJoins(joins, func(j *plan.JoinDef) string {
		if j.Profile != nil {
			return j.Profile.Table + "." + j.Column
		}
		return "e." + j.Column
	})
	w.WriteString(" WHERE e.site_id = $1 AND e.ts >= $3 AND e.ts < $4")
	if filter != nil {
		w.WriteString(" AND ")
		w.WriteString(w.FilterSQL(filter))
	}
}

// writeDictJoins LEFT JOINs the dims dictionary (or the join's name table)
// of each of joins, once, on the id that on(join) names.
func (w *Writer) writeDictJoins(joins []*plan.JoinDef, on func(*plan.JoinDef) string) {
	var done []*plan.JoinDef
	for _, j := range joins {
		if slices.Contains(done, j) {
			continue
		}
		done = append(done, j)
		w.WriteString(" LEFT JOIN ")
		if j.Names == nil {
			w.WriteString("dims")
		} else {
			w.WriteString(j.Names.CTE)
		}
		w.WriteString(" " + j.Alias + " ON " + j.Alias + ".id = " + on(j))
	}
}

// WriteNameTables writes a CTE per name table the joins use: the site's
// dictionary entries of that kind with their display names, computed once
// per statement (MATERIALIZED) so events join a handful of rows whatever
// plan the events scan gets.
func (w *Writer) WriteNameTables(joins []*plan.JoinDef) {
	var done []*plan.NameTable
	for _, j := range joins {
		t := j.Names
		if t == nil || slices.Contains(done, t) {
			continue
		}
		done = append(done, t)
		codes := w.bindShared(t.Key+".codes", t.Codes)
		names := w.bindShared(t.Key+".names", t.Names)
		w.WriteString(t.CTE + " AS MATERIALIZED (SELECT d.id, COALESCE(n.name, d.value) AS value FROM dims d LEFT JOIN unnest(")
		w.WriteString(codes + "::text[], " + names + "::text[]) AS n(code, name) ON n.code = " + t.CodeSQL)
		w.WriteString(" WHERE d.site_id = $1 AND d.kind = " + strconv.Itoa(t.Kind) + "),\n")
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
func (w *Writer) writeOrder(p *plan.Plan) {
	terms := p.Order
	if len(terms) == 0 && len(p.Metrics) > 0 {
		terms = []plan.OrderTerm{{Metric: true, Idx: 0, Desc: true}}
	}
	for i := 0; i <= len(p.Dims); i++ {
		terms = append(terms, plan.OrderTerm{Idx: i})
	}
	for i, t := range terms {
		if i > 0 {
			w.WriteString(", ")
		}
		k := "k" + strconv.Itoa(t.Idx)
		switch {
		case t.Metric:
			w.WriteString("m" + strconv.Itoa(t.Idx))
		case t.Idx == 0:
			w.WriteString("k0")
		case t.Numeric:
			// Values that are no number sort below all numbers.
			w.WriteString(numericSQL(k))
			if t.Desc {
				w.WriteString(" DESC NULLS LAST")
			} else {
				w.WriteString(" NULLS FIRST")
			}
			continue
		case t.Fold:
			w.WriteString(w.lowerSQL(k) + ` COLLATE "C"`)
		default:
			w.WriteString(k + ` COLLATE "C"`)
		}
		if t.Desc {
			w.WriteString(" DESC")
		}
	}
}

// writeColumns writes ", prefix<from>, …, prefix<to-1>", each wrapped in fn
// when fn is set.
func writeColumns(w *Writer, prefix string, from, to int, fn string) {
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
func writeNulls(w *Writer, p *plan.Plan, metrics bool) {
	for range p.Dims {
		w.WriteString(", NULL::text")
	}
	if !metrics {
		return
	}
	for _, m := range p.Metrics {
		w.WriteString(", NULL::" + m.SQLType())
	}
}

// FixedArgValues binds p's values to the statement's first parameters.
func FixedArgValues(p *plan.Plan) []any {
	idx := make([]int32, len(p.Ranges))
	lo := make([]time.Time, len(p.Ranges))
	hi := make([]time.Time, len(p.Ranges))
	minLo, maxHi := p.Ranges[0].Lo, p.Ranges[0].Hi
	for i, r := range p.Ranges {
		idx[i], lo[i], hi[i] = int32(i), r.Lo, r.Hi
		if r.Lo.Before(minLo) {
			minLo = r.Lo
		}
		if r.Hi.After(maxHi) {
			maxHi = r.Hi
		}
	}
	return []any{int32(p.Site.ID), p.Site.TimeZone, minLo, maxHi, idx, lo, hi, p.Limit, p.Offset}
}

// RollupDayExprs are the time dimensions a rollup day answers, over the
// rollup row "e" (e.day is the local date).
var RollupDayExprs = map[string]string{
	"date":          "to_char(e.day, 'YYYYMMDD')",
	"year":          "to_char(e.day, 'YYYY')",
	"yearMonth":     "to_char(e.day, 'YYYYMM')",
	"month":         "to_char(e.day, 'MM')",
	"day":           "to_char(e.day, 'DD')",
	"dayOfWeek":     "extract(dow FROM e.day)::int::text",
	"dayOfWeekName": "to_char(e.day, 'FMDay')",
}

// RollupHourExprs are the time dimensions the hourly rows (kind
// postgres.RollupHour, dim_id the local hour) answer besides the day's.
var RollupHourExprs = map[string]string{
	"dateHour": "to_char(e.day, 'YYYYMMDD') || lpad(e.dim_id::text, 2, '0')",
	"hour":     "lpad(e.dim_id::text, 2, '0')",
}

// WriteRollupJoins joins each of joins (once) on the rollup row "e"'s
// dim_id, or, for RollupSessionTraffic rows (rollupTraffic), on the
// column of the traffic profile dim_id names.
func (w *Writer) WriteRollupJoins(joins []*plan.JoinDef) {
	if !w.RollupTraffic {
		w.writeDictJoins(joins, func(*plan.JoinDef) string { return "e.dim_id" })
		return
	}
	w.WriteString(" LEFT JOIN " + postgres.TrafficProfile.Table + " " + trafficProfileAlias + " ON " + trafficProfileAlias + ".id = e.dim_id")
	w.writeDictJoins(joins, func(j *plan.JoinDef) string { return trafficProfileAlias + "." + j.Column })
}

// trafficProfileAlias is the traffic profile joined to RollupSessionTraffic
// rows.
const trafficProfileAlias = "r_traffic"
