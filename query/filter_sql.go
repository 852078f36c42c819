package query

import "strings"

// filterSQL writes n as a boolean SQL expression that is never NULL, so
// that NOT is plain negation. Dimension leaves read the row's dimension
// expression (WHERE); metric leaves read the aggregate (HAVING).
func (w *sqlWriter) filterSQL(n *filterNode) string {
	switch {
	case n.and != nil:
		return w.groupSQL(n.and, " AND ")
	case n.or != nil:
		return w.groupSQL(n.or, " OR ")
	case n.not != nil:
		return "(NOT " + w.filterSQL(n.not) + ")"
	}
	return "(" + w.leafSQL(n.leaf) + ")"
}

func (w *sqlWriter) groupSQL(kids []*filterNode, op string) string {
	parts := make([]string, len(kids))
	for i, k := range kids {
		parts[i] = w.filterSQL(k)
	}
	return "(" + strings.Join(parts, op) + ")"
}

func (w *sqlWriter) leafSQL(l *filterLeaf) string {
	if l.metric != nil {
		return w.metricLeafSQL(l)
	}
	x := w.dimExpr(l.dim)
	switch l.kind {
	case matchExact:
		return x + " = " + w.bind(l.value) + "::text"
	case matchBegins:
		return "starts_with(" + x + ", " + w.bind(l.value) + "::text)"
	case matchEnds:
		v := w.bind(l.value) + "::text"
		return "right(" + x + ", char_length(" + v + ")) = " + v
	case matchContains:
		return "strpos(" + x + ", " + w.bind(l.value) + "::text) > 0"
	case matchRegexp:
		return x + " ~ " + w.bind(l.value) + "::text"
	case matchInList:
		return x + " = ANY(" + w.bind(l.values) + "::text[])"
	case matchEmpty:
		return x + " IN ('', '" + notSet + "')"
	case matchCompare:
		return "COALESCE(" + numericSQL(x) + " " + l.op + " " + w.bind(l.num) + "::numeric, false)"
	default: // matchBetween
		return "COALESCE(" + numericSQL(x) + " BETWEEN " + w.bind(l.num) + "::numeric AND " + w.bind(l.num2) + "::numeric, false)"
	}
}

// metricLeafSQL compares an aggregate: integer metrics as numeric (exact
// against integers and doubles alike), the others as float8, their type.
func (w *sqlWriter) metricLeafSQL(l *filterLeaf) string {
	x, typ, num, num2 := "("+w.metricExpr(l.metric)+")::numeric", "::numeric", l.num, l.num2
	if !l.metric.integer() {
		x, typ, num, num2 = "("+w.metricExpr(l.metric)+")", "::float8", asFloat(l.num), asFloat(l.num2)
	}
	if l.kind == matchCompare {
		return x + " " + l.op + " " + w.bind(num) + typ
	}
	return x + " BETWEEN " + w.bind(num) + typ + " AND " + w.bind(num2) + typ // matchBetween
}

// asFloat converts a filter number (int64 or float64) to float64.
func asFloat(v any) float64 {
	if i, ok := v.(int64); ok {
		return float64(i)
	}
	f, _ := v.(float64)
	return f
}
