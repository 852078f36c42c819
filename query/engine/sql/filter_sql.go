package sql

import (
	"github.com/avila-analytics/avila/query/plan"
	"strings"
)

// FilterSQL writes n as a boolean SQL expression that is never NULL, so
// that NOT is plain negation. Dimension leaves read the row's dimension
// expression (WHERE); metric leaves read the aggregate (HAVING).
func (w *Writer) FilterSQL(n *plan.FilterNode) string {
	switch {
	case n.And != nil:
		return w.groupSQL(n.And, " AND ")
	case n.Or != nil:
		return w.groupSQL(n.Or, " OR ")
	case n.Not != nil:
		return "(NOT " + w.FilterSQL(n.Not) + ")"
	}
	return "(" + w.leafSQL(n.Leaf) + ")"
}

func (w *Writer) groupSQL(kids []*plan.FilterNode, op string) string {
	parts := make([]string, len(kids))
	for i, k := range kids {
		parts[i] = w.FilterSQL(k)
	}
	return "(" + strings.Join(parts, op) + ")"
}

func (w *Writer) leafSQL(l *plan.FilterLeaf) string {
	if l.Metric != nil {
		return w.metricLeafSQL(l)
	}
	x := w.DimExpr(l.Dim)
	switch l.Kind {
	case plan.MatchExact:
		return x + " = " + w.Bind(l.Value) + "::text"
	case plan.MatchBegins:
		return "starts_with(" + x + ", " + w.Bind(l.Value) + "::text)"
	case plan.MatchEnds:
		v := w.Bind(l.Value) + "::text"
		return "right(" + x + ", char_length(" + v + ")) = " + v
	case plan.MatchContains:
		return "strpos(" + x + ", " + w.Bind(l.Value) + "::text) > 0"
	case plan.MatchRegexp:
		return x + " ~ " + w.Bind(l.Value) + "::text"
	case plan.MatchInList:
		return x + " = ANY(" + w.Bind(l.Values) + "::text[])"
	case plan.MatchEmpty:
		return x + " IN ('', '" + plan.NotSet + "')"
	case plan.MatchCompare:
		return "COALESCE(" + numericSQL(x) + " " + l.Op + " " + w.Bind(l.Num) + "::numeric, false)"
	default: // matchBetween
		return "COALESCE(" + numericSQL(x) + " BETWEEN " + w.Bind(l.Num) + "::numeric AND " + w.Bind(l.Num2) + "::numeric, false)"
	}
}

// metricLeafSQL compares an aggregate: integer metrics as numeric (exact
// against integers and doubles alike), the others as float8, their type.
func (w *Writer) metricLeafSQL(l *plan.FilterLeaf) string {
	x, typ, num, num2 := "("+w.metricExpr(l.Metric)+")::numeric", "::numeric", l.Num, l.Num2
	if !l.Metric.Integer() {
		x, typ, num, num2 = "("+w.metricExpr(l.Metric)+")", "::float8", AsFloat(l.Num), AsFloat(l.Num2)
	}
	if l.Kind == plan.MatchCompare {
		return x + " " + l.Op + " " + w.Bind(num) + typ
	}
	return x + " BETWEEN " + w.Bind(num) + typ + " AND " + w.Bind(num2) + typ // matchBetween
}

// AsFloat converts a filter number (int64 or float64) to float64.
func AsFloat(v any) float64 {
	if i, ok := v.(int64); ok {
		return float64(i)
	}
	f, _ := v.(float64)
	return f
}
