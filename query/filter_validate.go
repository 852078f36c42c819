package query

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
	maxInListValues   = 1000 // values of one inListFilter
	maxFilterValueLen = 1000 // bytes of one string value or pattern
)

// filterCompiler validates the leaves of one dimensionFilter or
// metricFilter.
type filterCompiler struct {
	metric bool // compiling a metricFilter
	nodes  int  // expressions seen, for a funnel step's own walk (funnelExpr)
}

// compileFilter validates e, the request's field (dimensionFilter or
// metricFilter); nil for no filter. Errors name the offending path.
func compileFilter(e *FilterExpression, field string, metric bool) (*filterNode, *apiError) {
	if e == nil {
		return nil, nil
	}
	c := &filterCompiler{metric: metric}
	t := &filterTree[*filterNode]{
		and: func(kids []*filterNode) *filterNode { return &filterNode{and: kids} },
		or:  func(kids []*filterNode) *filterNode { return &filterNode{or: kids} },
		not: func(kid *filterNode) *filterNode { return &filterNode{not: kid} },
		leaf: func(f *Filter, path string) (*filterNode, *apiError) {
			leaf, err := c.filter(f, path)
			if err != nil {
				return nil, err
			}
			return &filterNode{leaf: leaf}, nil
		},
	}
	return t.compile(e, field)
}

// filter validates one leaf: its field, then its single filter kind.
func (c *filterCompiler) filter(f *Filter, path string) (*filterLeaf, *apiError) {
	l := &filterLeaf{}
	if err := c.field(l, f.FieldName, path+".fieldName"); err != nil {
		return nil, err
	}
	if countSet(f.StringFilter != nil, f.InListFilter != nil, f.NumericFilter != nil, f.BetweenFilter != nil, f.EmptyFilter != nil) != 1 {
		return nil, invalidArgument("%s: set exactly one of stringFilter, inListFilter, numericFilter, betweenFilter or emptyFilter.", path)
	}
	if c.metric && (f.StringFilter != nil || f.InListFilter != nil || f.EmptyFilter != nil) {
		return nil, invalidArgument("%s: metric %s takes numericFilter or betweenFilter only.", path, quoteName(f.FieldName))
	}
	switch {
	case f.StringFilter != nil:
		return l, stringLeaf(l, f.StringFilter, path+".stringFilter")
	case f.InListFilter != nil:
		return l, inListLeaf(l, f.InListFilter, path+".inListFilter")
	case f.EmptyFilter != nil:
		l.kind = matchEmpty
		return l, nil
	case f.NumericFilter != nil:
		op, ok := compareOps[f.NumericFilter.Operation]
		if !ok {
			return nil, invalidArgument("%s.numericFilter.operation: %s is not supported; use EQUAL, LESS_THAN, LESS_THAN_OR_EQUAL, GREATER_THAN or GREATER_THAN_OR_EQUAL.",
				path, quoteName(f.NumericFilter.Operation))
		}
		l.kind, l.op = matchCompare, op
		var err *apiError
		l.num, err = numericValue(f.NumericFilter.Value, path+".numericFilter.value")
		return l, err
	}
	l.kind = matchBetween
	var err *apiError
	if l.num, err = numericValue(f.BetweenFilter.FromValue, path+".betweenFilter.fromValue"); err != nil {
		return nil, err
	}
	l.num2, err = numericValue(f.BetweenFilter.ToValue, path+".betweenFilter.toValue")
	return l, err
}

// field resolves a filter's fieldName: a dimension in a dimensionFilter, a
// metric in a metricFilter.
func (c *filterCompiler) field(l *filterLeaf, name, path string) *apiError {
	if c.metric {
		m, ok, why := lookupMetric(name)
		if !ok {
			if _, isDim, _ := lookupDimension(name); isDim {
				return invalidArgument("%s: %s is a dimension; metricFilter takes metrics (filter dimensions in dimensionFilter).", path, quoteName(name))
			}
			return invalidArgument("%s: %s", path, notValid(name, "metric", why))
		}
		l.metric = m
		return nil
	}
	d, ok, why := lookupDimension(name)
	if !ok {
		if _, isMetric, _ := lookupMetric(name); isMetric {
			return invalidArgument("%s: %s is a metric; dimensionFilter takes dimensions (filter metrics in metricFilter).", path, quoteName(name))
		}
		return invalidArgument("%s: %s", path, notValid(name, "dimension", why))
	}
	l.dim = d
	return nil
}

func stringLeaf(l *filterLeaf, f *StringFilter, path string) *apiError {
	kind, ok := stringMatchTypes[f.MatchType]
	if !ok {
		return invalidArgument("%s.matchType: %s is not supported; use EXACT, BEGINS_WITH, ENDS_WITH, CONTAINS, FULL_REGEXP or PARTIAL_REGEXP.",
			path, quoteName(f.MatchType))
	}
	if err := checkText(f.Value, path+".value"); err != nil {
		return err
	}
	l.kind, l.value = kind, f.Value
	pattern, full := f.Value, f.MatchType == "FULL_REGEXP"
	switch {
	case kind == matchRegexp:
	case f.CaseSensitive:
		return nil
	// Case-insensitive literal matches run as regular expressions: the
	// translation spells out each letter's case-fold orbit, which matches
	// like RE2's (?i) whatever the database's locale, and PostgreSQL
	// compiles the pattern once per statement.
	case kind == matchExact:
		pattern, full = regexp.QuoteMeta(f.Value), true
	case kind == matchBegins:
		pattern = `\A` + regexp.QuoteMeta(f.Value)
	case kind == matchEnds:
		pattern = regexp.QuoteMeta(f.Value) + `\z`
	default: // matchContains
		pattern = regexp.QuoteMeta(f.Value)
	}
	translated, err := pgPattern(pattern, full, f.CaseSensitive, maxPatternSQL)
	if err != nil {
		return invalidArgument("%s.value: invalid regular expression %s: %v.", path, quoteName(f.Value), err)
	}
	l.kind, l.value = matchRegexp, translated
	return nil
}

func inListLeaf(l *filterLeaf, f *InListFilter, path string) *apiError {
	switch {
	case len(f.Values) == 0:
		return invalidArgument("%s.values: give at least one value.", path)
	case len(f.Values) > maxInListValues:
		return invalidArgument("%s.values: at most %d values, got %d.", path, maxInListValues, len(f.Values))
	}
	quoted := make([]string, len(f.Values))
	for i, v := range f.Values {
		if err := checkText(v, fmt.Sprintf("%s.values[%d]", path, i)); err != nil {
			return err
		}
		quoted[i] = regexp.QuoteMeta(v)
	}
	if f.CaseSensitive {
		l.kind, l.values = matchInList, f.Values
		return nil
	}
	// Case-insensitive: one anchored alternation, as for stringLeaf.
	translated, err := pgPattern(strings.Join(quoted, "|"), true, false, maxListPatternSQL)
	if err != nil {
		return invalidArgument("%s.values: %v.", path, err)
	}
	l.kind, l.value = matchRegexp, translated
	return nil
}

// checkText refuses values PostgreSQL text cannot hold (NUL) and values
// longer than any dimension value is worth comparing with.
func checkText(v, path string) *apiError {
	switch {
	case len(v) > maxFilterValueLen:
		return invalidArgument("%s: longer than %d bytes.", path, maxFilterValueLen)
	case strings.IndexByte(v, 0) >= 0:
		return invalidArgument("%s: must not contain NUL characters.", path)
	}
	return nil
}

// numericValue is v's number: int64 or float64.
func numericValue(v NumericValue, path string) (any, *apiError) {
	switch {
	case v.Int64Value != nil && v.DoubleValue != nil:
		return nil, invalidArgument("%s: set only one of int64Value or doubleValue.", path)
	case v.Int64Value != nil:
		return int64(*v.Int64Value), nil
	case v.DoubleValue != nil && !math.IsNaN(*v.DoubleValue) && !math.IsInf(*v.DoubleValue, 0):
		return *v.DoubleValue, nil
	}
	return nil, invalidArgument("%s: set int64Value or doubleValue.", path)
}

// notValid says that name is not a valid dimension or metric, and why when
// known.
func notValid(name, what, why string) string {
	if why != "" {
		return fmt.Sprintf("Field %s is not a valid %s: %s.", quoteName(name), what, why)
	}
	return fmt.Sprintf("Field %s is not a valid %s.", quoteName(name), what)
}
