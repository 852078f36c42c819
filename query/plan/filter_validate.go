package plan

import (
	"fmt"
	"math"
	"regexp"
	"strings"
)

// Filter bounds: a filter is a small tree of short values.
const (
	maxFilterNodes    = 100  // expressions in one filter
	maxFilterDepth    = 10   // nesting of groups and negations
	MaxInListValues   = 1000 // values of one inListFilter
	maxFilterValueLen = 1000 // bytes of one string value or pattern
)

// filterCompiler validates the leaves of one dimensionFilter or
// metricFilter.
type filterCompiler struct {
	metric bool // compiling a metricFilter
	nodes  int  // expressions seen, for a funnel step's own walk (funnelExpr)
}

// CompileFilter validates e, the request's field (dimensionFilter or
// metricFilter); nil for no filter. Errors name the offending path.
func CompileFilter(e *FilterExpression, field string, metric bool) (*FilterNode, *Error) {
	if e == nil {
		return nil, nil
	}
	c := &filterCompiler{metric: metric}
	t := &FilterTree[*FilterNode]{
		And: func(kids []*FilterNode) *FilterNode { return &FilterNode{And: kids} },
		Or:  func(kids []*FilterNode) *FilterNode { return &FilterNode{Or: kids} },
		Not: func(kid *FilterNode) *FilterNode { return &FilterNode{Not: kid} },
		Leaf: func(f *Filter, path string) (*FilterNode, *Error) {
			leaf, err := c.filter(f, path)
			if err != nil {
				return nil, err
			}
			return &FilterNode{Leaf: leaf}, nil
		},
	}
	return t.Compile(e, field)
}

// filter validates one leaf: its field, then its single filter kind.
func (c *filterCompiler) filter(f *Filter, path string) (*FilterLeaf, *Error) {
	l := &FilterLeaf{}
	if err := c.field(l, f.FieldName, path+".fieldName"); err != nil {
		return nil, err
	}
	if CountSet(f.StringFilter != nil, f.InListFilter != nil, f.NumericFilter != nil, f.BetweenFilter != nil, f.EmptyFilter != nil) != 1 {
		return nil, InvalidArgument("%s: set exactly one of stringFilter, inListFilter, numericFilter, betweenFilter or emptyFilter.", path)
	}
	if c.metric && (f.StringFilter != nil || f.InListFilter != nil || f.EmptyFilter != nil) {
		return nil, InvalidArgument("%s: metric %s takes numericFilter or betweenFilter only.", path, QuoteName(f.FieldName))
	}
	switch {
	case f.StringFilter != nil:
		return l, stringLeaf(l, f.StringFilter, path+".stringFilter")
	case f.InListFilter != nil:
		return l, inListLeaf(l, f.InListFilter, path+".inListFilter")
	case f.EmptyFilter != nil:
		l.Kind = MatchEmpty
		return l, nil
	case f.NumericFilter != nil:
		op, ok := CompareOps[f.NumericFilter.Operation]
		if !ok {
			return nil, InvalidArgument("%s.numericFilter.operation: %s is not supported; use EQUAL, LESS_THAN, LESS_THAN_OR_EQUAL, GREATER_THAN or GREATER_THAN_OR_EQUAL.",
				path, QuoteName(f.NumericFilter.Operation))
		}
		l.Kind, l.Op = MatchCompare, op
		var err *Error
		l.Num, err = NumberOf(f.NumericFilter.Value, path+".numericFilter.value")
		return l, err
	}
	l.Kind = matchBetween
	var err *Error
	if l.Num, err = NumberOf(f.BetweenFilter.FromValue, path+".betweenFilter.fromValue"); err != nil {
		return nil, err
	}
	l.Num2, err = NumberOf(f.BetweenFilter.ToValue, path+".betweenFilter.toValue")
	return l, err
}

// field resolves a filter's fieldName: a dimension in a dimensionFilter, a
// metric in a metricFilter.
func (c *filterCompiler) field(l *FilterLeaf, name, path string) *Error {
	if c.metric {
		m, ok, why := LookupMetric(name)
		if !ok {
			if _, isDim, _ := LookupDimension(name); isDim {
				return InvalidArgument("%s: %s is a dimension; metricFilter takes metrics (filter dimensions in dimensionFilter).", path, QuoteName(name))
			}
			return InvalidArgument("%s: %s", path, NotValid(name, "metric", why))
		}
		l.Metric = m
		return nil
	}
	d, ok, why := LookupDimension(name)
	if !ok {
		if _, isMetric, _ := LookupMetric(name); isMetric {
			return InvalidArgument("%s: %s is a metric; dimensionFilter takes dimensions (filter metrics in metricFilter).", path, QuoteName(name))
		}
		return InvalidArgument("%s: %s", path, NotValid(name, "dimension", why))
	}
	l.Dim = d
	return nil
}

func stringLeaf(l *FilterLeaf, f *StringFilter, path string) *Error {
	kind, ok := StringMatchTypes[f.MatchType]
	if !ok {
		return InvalidArgument("%s.matchType: %s is not supported; use EXACT, BEGINS_WITH, ENDS_WITH, CONTAINS, FULL_REGEXP or PARTIAL_REGEXP.",
			path, QuoteName(f.MatchType))
	}
	if err := CheckText(f.Value, path+".value"); err != nil {
		return err
	}
	l.Kind, l.Value = kind, f.Value
	pattern, full := f.Value, f.MatchType == "FULL_REGEXP"
	switch {
	case kind == MatchRegexp:
	case f.CaseSensitive:
		return nil
	// Case-insensitive literal matches run as regular expressions: the
	// translation spells out each letter's case-fold orbit, which matches
	// like RE2's (?i) whatever the database's locale, and PostgreSQL
	// compiles the pattern once per statement.
	case kind == MatchExact:
		pattern, full = regexp.QuoteMeta(f.Value), true
	case kind == MatchBegins:
		pattern = `\A` + regexp.QuoteMeta(f.Value)
	case kind == MatchEnds:
		pattern = regexp.QuoteMeta(f.Value) + `\z`
	default: // matchContains
		pattern = regexp.QuoteMeta(f.Value)
	}
	translated, err := PgPattern(pattern, full, f.CaseSensitive, MaxPatternSQL)
	if err != nil {
		return InvalidArgument("%s.value: invalid regular expression %s: %v.", path, QuoteName(f.Value), err)
	}
	l.Kind, l.Value = MatchRegexp, translated
	return nil
}

func inListLeaf(l *FilterLeaf, f *InListFilter, path string) *Error {
	switch {
	case len(f.Values) == 0:
		return InvalidArgument("%s.values: give at least one value.", path)
	case len(f.Values) > MaxInListValues:
		return InvalidArgument("%s.values: at most %d values, got %d.", path, MaxInListValues, len(f.Values))
	}
	quoted := make([]string, len(f.Values))
	for i, v := range f.Values {
		if err := CheckText(v, fmt.Sprintf("%s.values[%d]", path, i)); err != nil {
			return err
		}
		quoted[i] = regexp.QuoteMeta(v)
	}
	if f.CaseSensitive {
		l.Kind, l.Values = MatchInList, f.Values
		return nil
	}
	// Case-insensitive: one anchored alternation, as for stringLeaf.
	translated, err := PgPattern(strings.Join(quoted, "|"), true, false, maxListPatternSQL)
	if err != nil {
		return InvalidArgument("%s.values: %v.", path, err)
	}
	l.Kind, l.Value = MatchRegexp, translated
	return nil
}

// CheckText refuses values PostgreSQL text cannot hold (NUL) and values
// longer than any dimension value is worth comparing with.
func CheckText(v, path string) *Error {
	switch {
	case len(v) > maxFilterValueLen:
		return InvalidArgument("%s: longer than %d bytes.", path, maxFilterValueLen)
	case strings.IndexByte(v, 0) >= 0:
		return InvalidArgument("%s: must not contain NUL characters.", path)
	}
	return nil
}

// NumberOf is v's number: int64 or float64.
func NumberOf(v NumericValue, path string) (any, *Error) {
	switch {
	case v.Int64Value != nil && v.DoubleValue != nil:
		return nil, InvalidArgument("%s: set only one of int64Value or doubleValue.", path)
	case v.Int64Value != nil:
		return int64(*v.Int64Value), nil
	case v.DoubleValue != nil && !math.IsNaN(*v.DoubleValue) && !math.IsInf(*v.DoubleValue, 0):
		return *v.DoubleValue, nil
	}
	return nil, InvalidArgument("%s: set int64Value or doubleValue.", path)
}

// NotValid says that name is not a valid dimension or metric, and why when
// known.
func NotValid(name, what, why string) string {
	if why != "" {
		return fmt.Sprintf("Field %s is not a valid %s: %s.", QuoteName(name), what, why)
	}
	return fmt.Sprintf("Field %s is not a valid %s.", QuoteName(name), what)
}
