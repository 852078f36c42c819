package postgres

import (
	"strconv"
	"strings"
)

// arrayColumn is a column of rows passed as parallel array parameters: its
// name and its element type.
type arrayColumn struct {
	name, typ string
}

// arrayColumns reads "name type" pairs, comma-separated ("site_id int,
// kind int2").
func arrayColumns(spec string) []arrayColumn {
	var cols []arrayColumn
	for f := range strings.SplitSeq(spec, ",") {
		name, typ, _ := strings.Cut(strings.TrimSpace(f), " ")
		cols = append(cols, arrayColumn{name: name, typ: strings.TrimSpace(typ)})
	}
	return cols
}

// zipArrays is a subquery of the rows zipped from parallel array
// parameters, $first for cols[0] onwards, as
// "unnest($1::t1[], $2::t2[], …) AS (c1, c2, …)" would give them; with
// ordinality non-empty, a last column of that name numbers them from 1
// (WITH ORDINALITY: a bigint), counting the first array's elements. The arrays must
// be of one length (the write path builds them so).
//
// Set-returning functions in a select list run in step, row by row (the
// planner's ProjectSet), and yield the rows of unnest with several
// arguments in FROM, which is ROWS FROM of one unnest per array. In FROM,
// though, each function's results are first written to a tuple store of
// their own and read back: a row of a dozen arrays cost a dozen one-column
// tuples made and read again. A derivation zips tens of thousands of rows
// (rollup cells, sessions, users), and the select list spares PostgreSQL
// that copy.
func zipArrays(first int, cols []arrayColumn, ordinality string) string {
	var b strings.Builder
	b.WriteString("(SELECT ")
	for i, c := range cols {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString("unnest($" + strconv.Itoa(first+i) + "::" + c.typ + "[]) AS " + c.name)
	}
	if ordinality != "" {
		b.WriteString(", generate_series(1::bigint, cardinality($" + strconv.Itoa(first) + "::" + cols[0].typ + "[])) AS " + ordinality)
	}
	b.WriteString(")")
	return b.String()
}
