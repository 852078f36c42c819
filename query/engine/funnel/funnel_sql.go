package funnel

import (
	"github.com/avila-analytics/avila/query/engine/sql"
	"github.com/avila-analytics/avila/query/plan"
	"strconv"
)

// buildFunnelSQL writes the funnel statement for fp. Parameters: $1 site
// id, $2 time zone, $3/$4 the range [lo, hi); step durations, filter values
// and name tables follow.
//
// Users are visitor ids (daily keyed hashes, as everywhere in this server).
// The statement works per visitor, over the visitor's events in the range
// ordered by time; events at the same instant share a rank, and a later
// step needs a strictly later rank than the prior step's event:
//
//   - w0 holds each event with its rank rk, the breakdown value b and one
//     boolean sN per step: the event satisfies step N's filter; w1 keeps
//     the events that satisfy some step (ranks stay those among all the
//     visitor's events).
//   - wN (N ≥ 2) adds pN: the event satisfies step N and follows an event
//     that reached step N-1, where "follows" is any earlier rank (the
//     visitor's next rank when isDirectlyFollowedBy) and, with
//     withinDurationFromPriorStep, at most that long after it. The latest
//     such event is the best predecessor, so one max() over a window frame
//     decides existence.
//   - An event reaches step 1 when it satisfies it. It reaches step N ≥ 2
//     by progression (pN) in a closed funnel; in an open funnel, where
//     users may enter at any step, by satisfying it (sN).
//   - u has one row per visitor: aN (reached step N), bN (the breakdown
//     value of the visitor's first event reaching step N) and cN (went on
//     from step N to step N+1: some event has pN+1).
//
// Result columns: step (1-based), total (the step over all breakdown
// values), b (the breakdown value, NULL on totals), users, completers
// (users who went on to the next step). Steps without users have no row.
func buildFunnelSQL(fp *plan.FunnelPlan) sql.Statement {
	w := &sql.Writer{Args: []any{int32(fp.Site.ID), fp.Site.TimeZone, fp.Rng.Lo, fp.Rng.Hi}}
	w.Grow(2048)
	n := len(fp.Steps)
	var joins []*plan.JoinDef
	if fp.Breakdown != nil {
		joins = append(joins, fp.Breakdown.Joins...)
	}
	for _, st := range fp.Steps {
		joins = append(joins, st.Cond.Joins()...)
	}
	step := func(prefix string, i int) string { return prefix + strconv.Itoa(i) }
	// reach is the column saying an event reached step i (1-based).
	reach := func(i int) string {
		if i == 1 || fp.Open {
			return step("s", i)
		}
		return step("p", i)
	}

	w.WriteString("WITH r AS (SELECT $3::timestamptz AS lo, $4::timestamptz AS hi, $2::text AS tz),\n")
	w.WriteNameTables(joins)
	w.WriteString("w0 AS (SELECT e.visitor_id AS v, e.ts, dense_rank() OVER (PARTITION BY e.visitor_id ORDER BY e.ts) AS rk, ")
	if fp.Breakdown != nil {
		w.WriteString(w.DimExpr(fp.Breakdown))
	} else {
		w.WriteString("NULL::text")
	}
	w.WriteString(" AS b")
	for i, st := range fp.Steps {
		w.WriteString(", " + w.FilterSQL(st.Cond) + " AS " + step("s", i+1))
	}
	w.WriteFrom(joins, nil)
	// Only events that satisfy some step can reach one; the others were
	// needed for the ranks (isDirectlyFollowedBy) and are dropped now, so
	// the step windows run over the few events that matter.
	w.WriteString("),\nw1 AS (SELECT * FROM w0 WHERE s1")
	for i := 2; i <= n; i++ {
		w.WriteString(" OR " + step("s", i))
	}
	w.WriteString("),\n")
	for i := 2; i <= n; i++ {
		st := fp.Steps[i-1]
		frame := "UNBOUNDED PRECEDING AND 1::bigint PRECEDING"
		if st.Direct {
			frame = "1::bigint PRECEDING AND 1::bigint PRECEDING"
		}
		prior := "max(CASE WHEN " + reach(i-1) + " THEN ts END) OVER (PARTITION BY v ORDER BY rk RANGE BETWEEN " + frame + ")"
		pred := prior + " IS NOT NULL"
		if st.Within > 0 {
			pred = "COALESCE(ts - " + prior + " <= " + w.Bind(st.Within) + "::bigint * interval '1 microsecond', false)"
		}
		w.WriteString(step("w", i) + " AS (SELECT " + step("w", i-1) + ".*, " + step("s", i) + " AND " + pred + " AS " + step("p", i) +
			" FROM " + step("w", i-1) + "),\n")
	}
	w.WriteString("u AS (SELECT v")
	for i := 1; i <= n; i++ {
		w.WriteString(", bool_or(" + reach(i) + ") AS " + step("a", i))
		w.WriteString(`, (array_agg(b ORDER BY rk, b COLLATE "C") FILTER (WHERE ` + reach(i) + "))[1] AS " + step("b", i))
		if i < n {
			w.WriteString(", bool_or(" + step("p", i+1) + ") AS " + step("c", i))
		}
	}
	w.WriteString(" FROM " + step("w", n) + " GROUP BY v)\n")

	if fp.Breakdown != nil {
		w.WriteString("SELECT x.step, grouping(x.b) = 1 AS total, x.b")
	} else {
		w.WriteString("SELECT x.step, true AS total, NULL::text AS b")
	}
	w.WriteString(", count(*) AS users, count(*) FILTER (WHERE x.c) AS completers FROM u CROSS JOIN LATERAL (VALUES ")
	for i := 1; i <= n; i++ {
		if i > 1 {
			w.WriteString(", ")
		}
		c := "false"
		if i < n {
			c = step("u.c", i)
		}
		w.WriteString("(" + strconv.Itoa(i) + ", " + step("u.a", i) + ", " + step("u.b", i) + ", " + c + ")")
	}
	w.WriteString(") AS x(step, a, b, c) WHERE x.a")
	if fp.Breakdown != nil {
		w.WriteString(" GROUP BY GROUPING SETS ((x.step), (x.step, x.b))")
	} else {
		w.WriteString(" GROUP BY x.step")
	}
	w.WriteString(" ORDER BY 1")
	return sql.Statement{Text: w.Text(), Args: w.Args}
}
