package plan

// FilterExpression is GA4's FilterExpression: exactly one of a group, a
// negation or a single filter.
type FilterExpression struct {
	AndGroup      *FilterExpressionList `json:"andGroup,omitempty"`
	OrGroup       *FilterExpressionList `json:"orGroup,omitempty"`
	NotExpression *FilterExpression     `json:"notExpression,omitempty"`
	Filter        *Filter               `json:"filter,omitempty"`
}

// FilterExpressionList holds the members of an andGroup or orGroup.
type FilterExpressionList struct {
	Expressions []FilterExpression `json:"expressions"`
}

// Filter tests one dimension (in a dimensionFilter) or one metric (in a
// metricFilter) with exactly one of its filter kinds.
type Filter struct {
	FieldName     string         `json:"fieldName"`
	StringFilter  *StringFilter  `json:"stringFilter,omitempty"`
	InListFilter  *InListFilter  `json:"inListFilter,omitempty"`
	NumericFilter *NumericFilter `json:"numericFilter,omitempty"`
	BetweenFilter *BetweenFilter `json:"betweenFilter,omitempty"`
	EmptyFilter   *EmptyFilter   `json:"emptyFilter,omitempty"`
}

// StringFilter matches a dimension value. MatchType is EXACT (also when
// unset), BEGINS_WITH, ENDS_WITH, CONTAINS, FULL_REGEXP or PARTIAL_REGEXP;
// regular expressions are RE2, as in GA4. Matching ignores case unless
// CaseSensitive.
type StringFilter struct {
	MatchType     string `json:"matchType,omitempty"`
	Value         string `json:"value"`
	CaseSensitive bool   `json:"caseSensitive,omitempty"`
}

// InListFilter matches a dimension value equal to one of Values.
type InListFilter struct {
	Values        []string `json:"values"`
	CaseSensitive bool     `json:"caseSensitive,omitempty"`
}

// NumericFilter compares a metric, or a dimension whose value is a number,
// with Value. Operation is EQUAL, LESS_THAN, LESS_THAN_OR_EQUAL,
// GREATER_THAN or GREATER_THAN_OR_EQUAL.
type NumericFilter struct {
	Operation string       `json:"operation"`
	Value     NumericValue `json:"value"`
}

// BetweenFilter matches values in [FromValue, ToValue].
type BetweenFilter struct {
	FromValue NumericValue `json:"fromValue"`
	ToValue   NumericValue `json:"toValue"`
}

// NumericValue is one of an integer (a string in proto3 JSON, or a number)
// or a double.
type NumericValue struct {
	Int64Value  *Int64   `json:"int64Value,omitempty"`
	DoubleValue *float64 `json:"doubleValue,omitempty"`
}

// EmptyFilter matches dimension values that are empty or "(not set)".
type EmptyFilter struct{}

// filterKind is what a filter leaf tests.
type filterKind int

const (
	MatchExact filterKind = iota
	MatchBegins
	MatchEnds
	MatchContains
	MatchRegexp // value holds the PostgreSQL pattern
	MatchInList
	MatchEmpty
	MatchCompare // op and num
	matchBetween // num (low) and num2 (high)
)

// FilterNode is a validated filter expression: an and/or group, a negation
// or a leaf. Leaves hold allowlisted definitions, fixed operators and values
// to bind; nothing from the request reaches SQL text.
type FilterNode struct {
	And, Or []*FilterNode
	Not     *FilterNode
	Leaf    *FilterLeaf
}

type FilterLeaf struct {
	Dim    *DimDef    // set in dimension filters
	Metric *MetricDef // set in metric filters
	Kind   filterKind
	// Value: the text to compare, or for matchRegexp the PostgreSQL
	// pattern (case-insensitive matches of every kind are patterns);
	// values: matchInList's values, compared case-sensitively.
	Value     string
	Values    []string
	Op        string // SQL comparison operator, from compareOps
	Num, Num2 any    // int64 or float64
}

// StringMatchTypes maps GA4 match types to leaf kinds.
var StringMatchTypes = map[string]filterKind{
	"": MatchExact, "MATCH_TYPE_UNSPECIFIED": MatchExact, "EXACT": MatchExact,
	"BEGINS_WITH": MatchBegins, "ENDS_WITH": MatchEnds, "CONTAINS": MatchContains,
	"FULL_REGEXP": MatchRegexp, "PARTIAL_REGEXP": MatchRegexp,
}

// CompareOps maps GA4 numeric operations to SQL operators.
var CompareOps = map[string]string{
	"EQUAL": "=", "LESS_THAN": "<", "LESS_THAN_OR_EQUAL": "<=",
	"GREATER_THAN": ">", "GREATER_THAN_OR_EQUAL": ">=",
}
