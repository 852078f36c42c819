package realtime

import (
	"fmt"
	"github.com/avila-analytics/avila/query/engine/sql"
	"github.com/avila-analytics/avila/query/plan"
	"regexp"
	"strconv"
	"strings"
)

// rtFilter is a validated realtime filter, evaluated in Go over the counters
// (realtime state is not in the database): an and/or group, a negation or a
// leaf. Matching follows the SQL path's rules: RE2 regular expressions,
// case-insensitive unless caseSensitive, emptyFilter matches "" and
// (not set), numeric filters on a dimension match only values that are
// numbers.
type rtFilter struct {
	and, or []*rtFilter
	not     *rtFilter
	// Leaves: a dimension (metric false) or a metric, and its test.
	metric bool
	field  int
	str    func(string) bool  // dimension string tests
	num    func(float64) bool // numeric tests
}

// rtFilterCompiler validates the leaves of one realtime dimensionFilter or
// metricFilter.
type rtFilterCompiler struct {
	metric bool
}

// compileRealtimeFilter validates e, the request's field (dimensionFilter or
// metricFilter); nil for no filter. Errors name the offending path.
func compileRealtimeFilter(e *plan.FilterExpression, field string, metric bool) (*rtFilter, *plan.Error) {
	if e == nil {
		return nil, nil
	}
	c := &rtFilterCompiler{metric: metric}
	t := &plan.FilterTree[*rtFilter]{
		And:  func(kids []*rtFilter) *rtFilter { return &rtFilter{and: kids} },
		Or:   func(kids []*rtFilter) *rtFilter { return &rtFilter{or: kids} },
		Not:  func(kid *rtFilter) *rtFilter { return &rtFilter{not: kid} },
		Leaf: c.leaf,
	}
	return t.Compile(e, field)
}

func (c *rtFilterCompiler) leaf(f *plan.Filter, path string) (*rtFilter, *plan.Error) {
	l := &rtFilter{metric: c.metric}
	if err := c.field(l, f.FieldName, path+".fieldName"); err != nil {
		return nil, err
	}
	if plan.CountSet(f.StringFilter != nil, f.InListFilter != nil, f.NumericFilter != nil, f.BetweenFilter != nil, f.EmptyFilter != nil) != 1 {
		return nil, plan.InvalidArgument("%s: set exactly one of stringFilter, inListFilter, numericFilter, betweenFilter or emptyFilter.", path)
	}
	if c.metric && (f.StringFilter != nil || f.InListFilter != nil || f.EmptyFilter != nil) {
		return nil, plan.InvalidArgument("%s: metric %s takes numericFilter or betweenFilter only.", path, plan.QuoteName(f.FieldName))
	}
	var err *plan.Error
	switch {
	case f.StringFilter != nil:
		l.str, err = rtStringTest(f.StringFilter, path+".stringFilter")
	case f.InListFilter != nil:
		l.str, err = rtInListTest(f.InListFilter, path+".inListFilter")
	case f.EmptyFilter != nil:
		l.str = func(v string) bool { return v == "" || v == plan.NotSet }
	case f.NumericFilter != nil:
		op := f.NumericFilter.Operation
		if _, ok := plan.CompareOps[op]; !ok {
			return nil, plan.InvalidArgument("%s.numericFilter.operation: %s is not supported; use EQUAL, LESS_THAN, LESS_THAN_OR_EQUAL, GREATER_THAN or GREATER_THAN_OR_EQUAL.",
				path, plan.QuoteName(op))
		}
		var n any
		if n, err = plan.NumberOf(f.NumericFilter.Value, path+".numericFilter.value"); err != nil {
			return nil, err
		}
		x := sql.AsFloat(n)
		l.num = func(v float64) bool {
			switch op {
			case "EQUAL":
				return v == x
			case "LESS_THAN":
				return v < x
			case "LESS_THAN_OR_EQUAL":
				return v <= x
			case "GREATER_THAN":
				return v > x
			}
			return v >= x
		}
	default:
		var lo, hi any
		if lo, err = plan.NumberOf(f.BetweenFilter.FromValue, path+".betweenFilter.fromValue"); err != nil {
			return nil, err
		}
		if hi, err = plan.NumberOf(f.BetweenFilter.ToValue, path+".betweenFilter.toValue"); err != nil {
			return nil, err
		}
		a, b := sql.AsFloat(lo), sql.AsFloat(hi)
		l.num = func(v float64) bool { return a <= v && v <= b }
	}
	if err != nil {
		return nil, err
	}
	return l, nil
}

// field resolves a filter's fieldName among the realtime dimensions or
// metrics.
func (c *rtFilterCompiler) field(l *rtFilter, name, path string) *plan.Error {
	d, isDim := realtimeDims[name]
	m, isMetric := realtimeMetrics[name]
	switch {
	case c.metric && isMetric:
		l.field = int(m)
	case !c.metric && isDim:
		l.field = int(d)
	case c.metric && isDim:
		return plan.InvalidArgument("%s: %s is a dimension; metricFilter takes metrics (filter dimensions in dimensionFilter).", path, plan.QuoteName(name))
	case !c.metric && isMetric:
		return plan.InvalidArgument("%s: %s is a metric; dimensionFilter takes dimensions (filter metrics in metricFilter).", path, plan.QuoteName(name))
	case c.metric:
		return plan.InvalidArgument("%s: %s", path, plan.NotValid(name, "realtime metric", "realtime reports take "+realtimeMetricNames))
	default:
		return plan.InvalidArgument("%s: %s", path, plan.NotValid(name, "realtime dimension", "realtime reports take "+realtimeDimNames))
	}
	return nil
}

func rtStringTest(f *plan.StringFilter, path string) (func(string) bool, *plan.Error) {
	kind, ok := plan.StringMatchTypes[f.MatchType]
	if !ok {
		return nil, plan.InvalidArgument("%s.matchType: %s is not supported; use EXACT, BEGINS_WITH, ENDS_WITH, CONTAINS, FULL_REGEXP or PARTIAL_REGEXP.",
			path, plan.QuoteName(f.MatchType))
	}
	if err := plan.CheckText(f.Value, path+".value"); err != nil {
		return nil, err
	}
	want := f.Value
	if f.CaseSensitive {
		switch kind {
		case plan.MatchExact:
			return func(v string) bool { return v == want }, nil
		case plan.MatchBegins:
			return func(v string) bool { return strings.HasPrefix(v, want) }, nil
		case plan.MatchEnds:
			return func(v string) bool { return strings.HasSuffix(v, want) }, nil
		case plan.MatchContains:
			return func(v string) bool { return strings.Contains(v, want) }, nil
		}
	}
	var pattern string
	switch kind {
	case plan.MatchExact:
		pattern = `\A` + regexp.QuoteMeta(want) + `\z`
	case plan.MatchBegins:
		pattern = `\A` + regexp.QuoteMeta(want)
	case plan.MatchEnds:
		pattern = regexp.QuoteMeta(want) + `\z`
	case plan.MatchContains:
		pattern = regexp.QuoteMeta(want)
	default: // matchRegexp
		pattern = want
		if f.MatchType == "FULL_REGEXP" {
			pattern = `\A(?:` + want + `)\z`
		}
	}
	if !f.CaseSensitive {
		pattern = "(?i)" + pattern
	}
	re, err := regexp.Compile(pattern)
	if err != nil {
		return nil, plan.InvalidArgument("%s.value: invalid regular expression %s: %v.", path, plan.QuoteName(f.Value), err)
	}
	return re.MatchString, nil
}

func rtInListTest(f *plan.InListFilter, path string) (func(string) bool, *plan.Error) {
	switch {
	case len(f.Values) == 0:
		return nil, plan.InvalidArgument("%s.values: give at least one value.", path)
	case len(f.Values) > plan.MaxInListValues:
		return nil, plan.InvalidArgument("%s.values: at most %d values, got %d.", path, plan.MaxInListValues, len(f.Values))
	}
	set := make(map[string]bool, len(f.Values))
	for i, v := range f.Values {
		if err := plan.CheckText(v, fmt.Sprintf("%s.values[%d]", path, i)); err != nil {
			return nil, err
		}
		set[v] = true
	}
	if f.CaseSensitive {
		return func(v string) bool { return set[v] }, nil
	}
	values := f.Values
	return func(v string) bool {
		for _, w := range values {
			if strings.EqualFold(v, w) {
				return true
			}
		}
		return false
	}, nil
}

// matchDims evaluates a dimensionFilter on one cell's values.
func (f *rtFilter) matchDims(v *[rtDimCount]string) bool {
	switch {
	case f.and != nil:
		for _, k := range f.and {
			if !k.matchDims(v) {
				return false
			}
		}
		return true
	case f.or != nil:
		for _, k := range f.or {
			if k.matchDims(v) {
				return true
			}
		}
		return false
	case f.not != nil:
		return !f.not.matchDims(v)
	case f.str != nil:
		return f.str(v[f.field])
	}
	x, err := strconv.ParseFloat(strings.TrimSpace(v[f.field]), 64)
	return err == nil && f.num(x)
}

// matchMetrics evaluates a metricFilter on one row's metrics.
func (f *rtFilter) matchMetrics(m *[MetricCount]int64) bool {
	switch {
	case f.and != nil:
		for _, k := range f.and {
			if !k.matchMetrics(m) {
				return false
			}
		}
		return true
	case f.or != nil:
		for _, k := range f.or {
			if k.matchMetrics(m) {
				return true
			}
		}
		return false
	case f.not != nil:
		return !f.not.matchMetrics(m)
	}
	return f.num(float64(m[f.field]))
}
