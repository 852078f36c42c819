package query

import (
	"github.com/avila-analytics/avila/query/plan"
	"testing"
)

// Filter builders for tests.

func leaf(f plan.Filter) plan.FilterExpression { return plan.FilterExpression{Filter: &f} }

func strF(field, matchType, value string, caseSensitive bool) plan.FilterExpression {
	return leaf(plan.Filter{FieldName: field, StringFilter: &plan.StringFilter{MatchType: matchType, Value: value, CaseSensitive: caseSensitive}})
}

func inListF(field string, caseSensitive bool, values ...string) plan.FilterExpression {
	return leaf(plan.Filter{FieldName: field, InListFilter: &plan.InListFilter{Values: values, CaseSensitive: caseSensitive}})
}

func numF(field, op string, v plan.NumericValue) plan.FilterExpression {
	return leaf(plan.Filter{FieldName: field, NumericFilter: &plan.NumericFilter{Operation: op, Value: v}})
}

func betweenF(field string, from, to plan.NumericValue) plan.FilterExpression {
	return leaf(plan.Filter{FieldName: field, BetweenFilter: &plan.BetweenFilter{FromValue: from, ToValue: to}})
}

func emptyF(field string) plan.FilterExpression {
	return leaf(plan.Filter{FieldName: field, EmptyFilter: &plan.EmptyFilter{}})
}

func andF(es ...plan.FilterExpression) plan.FilterExpression {
	return plan.FilterExpression{AndGroup: &plan.FilterExpressionList{Expressions: es}}
}

func orF(es ...plan.FilterExpression) plan.FilterExpression {
	return plan.FilterExpression{OrGroup: &plan.FilterExpressionList{Expressions: es}}
}

func notF(e plan.FilterExpression) plan.FilterExpression {
	return plan.FilterExpression{NotExpression: &e}
}

func i64(v int64) plan.NumericValue {
	n := plan.Int64(v)
	return plan.NumericValue{Int64Value: &n}
}

func dbl(v float64) plan.NumericValue { return plan.NumericValue{DoubleValue: &v} }

func ptr(e plan.FilterExpression) *plan.FilterExpression { return &e }

// TestFiltersMatchOracle runs dimension and metric filters of every kind,
// alone and nested, against the oracle. Each filter must keep some rows and
// drop others, so a filter that is ignored or matches nothing fails.
func TestFiltersMatchOracle(t *testing.T) {
	f := newFixture(t, 1200)
	h := f.handler(t)
	week := []plan.DateRange{{StartDate: "2026-03-01", EndDate: "2026-03-10"}}
	cases := []struct {
		name      string
		dims      []string
		metrics   []string
		dimFilter *plan.FilterExpression
		metFilter *plan.FilterExpression
	}{
		// String match types, with and without case.
		{"exact, case-insensitive", dims1("city"), nil, ptr(strF("city", "EXACT", "zürich", false)), nil},
		{"exact, case-sensitive", dims1("city"), nil, ptr(strF("city", "EXACT", "ZÜRICH", true)), nil},
		{"unset match type is exact", dims1("eventName"), nil, ptr(strF("eventName", "", "sign up", false)), nil},
		{"begins with, case-insensitive, non-ASCII capital", dims1("region"), nil, ptr(strF("region", "BEGINS_WITH", "île", false)), nil},
		{"begins with, case-sensitive", dims1("pagePathPlusQueryString"), nil, ptr(strF("pagePathPlusQueryString", "BEGINS_WITH", "/a", true)), nil},
		{"ends with", dims1("pageTitle"), nil, ptr(strF("pageTitle", "ENDS_WITH", "; drop", false)), nil},
		{"ends with, case-sensitive", dims1("hostName"), nil, ptr(strF("hostName", "ENDS_WITH", "Example.com", true)), nil},
		{"contains", dims1("pagePathPlusQueryString"), nil, ptr(strF("pagePathPlusQueryString", "CONTAINS", "'1'", true)), nil},
		{"contains, case-insensitive", dims1("operatingSystem"), nil, ptr(strF("operatingSystem", "CONTAINS", "OS", false)), nil},
		{"full regexp, case-insensitive", dims1("city"), nil, ptr(strF("city", "FULL_REGEXP", `z[üu]rich|paris`, false)), nil},
		{"full regexp must match all of the value", dims1("pagePath"), nil, ptr(strF("pagePath", "FULL_REGEXP", `/[a-z]`, true)), nil},
		{"partial regexp with classes and repeats", dims1("screenResolution"), nil, ptr(strF("screenResolution", "PARTIAL_REGEXP", `^\d{3,4}x\d+$`, true)), nil},
		{"partial regexp, unicode class", dims1("city"), nil, ptr(strF("city", "PARTIAL_REGEXP", `\p{Lu}\p{Lu}`, true)), nil},
		{"partial regexp on a custom parameter", dims1("customEvent:plan"), nil, ptr(strF("customEvent:plan", "PARTIAL_REGEXP", `^(?:f|ü)`, false)), nil},
		{"regexp dot and alternation", dims1("languageCode"), nil, ptr(strF("languageCode", "FULL_REGEXP", `en-..|(?:pt|zz)-.+`, true)), nil},
		// In-list, empty, numeric and between on dimensions.
		{"in list, case-insensitive", dims1("countryId"), nil, ptr(inListF("countryId", false, "us", "ch", "nowhere")), nil},
		{"in list, case-sensitive", dims1("customEvent:plan"), nil, ptr(inListF("customEvent:plan", true, "Free", "pro")), nil},
		{"empty values", dims1("browser"), nil, ptr(emptyF("browser")), nil},
		{"not empty custom parameter", dims1("customUser:tier"), nil, ptr(notF(emptyF("customUser:tier"))), nil},
		{"numeric on a dimension", dims1("hour"), nil, ptr(numF("hour", "GREATER_THAN_OR_EQUAL", i64(20))), nil},
		{"numeric on a mixed dimension", dims1("customEvent:button"), nil, ptr(notF(numF("customEvent:button", "LESS_THAN", dbl(1.5)))), nil},
		{"between on a dimension", dims1("dayOfWeek"), nil, ptr(betweenF("dayOfWeek", i64(1), dbl(3))), nil},
		// Groups, negation, dimensions not in the report.
		{"and of filters on other dimensions", dims1("eventName"), nil,
			ptr(andF(strF("deviceCategory", "EXACT", "mobile", true), notF(inListF("country", false, "united states")))), nil},
		{"or of and and not", dims1("pagePath"), nil,
			ptr(orF(andF(strF("pagePath", "BEGINS_WITH", "/a", true), emptyF("hostName")), notF(orF(strF("pagePath", "CONTAINS", "b", false), emptyF("pagePath"))))), nil},
		{"double negation", dims1("isKeyEvent"), nil, ptr(notF(notF(strF("isKeyEvent", "EXACT", "true", true)))), nil},
		{"filter on a date", dims1("date"), nil, ptr(orF(strF("date", "EXACT", "20260305", true), numF("date", "GREATER_THAN", i64(20260308)))), nil},
		{"language names", dims1("language"), nil, ptr(strF("language", "BEGINS_WITH", "eng", false)), nil},
		// Metric filters, after aggregation.
		{"metric greater than", dims1("pagePathPlusQueryString"), nil, nil, ptr(numF("eventCount", "GREATER_THAN", i64(145)))},
		{"metric equal", dims1("city"), nil, nil, ptr(numF("totalUsers", "EQUAL", dbl(40)))},
		{"metric between, integer", dims1("city"), nil, nil, ptr(betweenF("keyEvents", i64(60), dbl(75)))},
		{"metric between, float", dims1("browser"), nil, nil, ptr(betweenF("userEngagementDuration", dbl(4400.5), i64(4900)))},
		{"metric less than or equal, float", dims1("operatingSystem"), nil, nil, ptr(numF("eventCountPerUser", "LESS_THAN_OR_EQUAL", dbl(6.05)))},
		{"metric filter not in the report, negated group", dims1("deviceCategory"), []string{"eventCount"}, nil,
			ptr(notF(andF(numF("activeUsers", "LESS_THAN", i64(41)), numF("newUsers", "GREATER_THAN", i64(26)))))},
		{"both filters", []string{"countryId", "deviceCategory"}, nil,
			ptr(notF(emptyF("countryId"))), ptr(orF(numF("totalUsers", "GREATER_THAN", i64(15)), numF("screenPageViews", "LESS_THAN", i64(4))))},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			metrics := mets(tc.metrics...)
			if tc.metrics == nil {
				metrics = allMetrics()
			}
			for _, site := range []uint32{1, 2} {
				req := plan.RunReportRequest{Dimensions: dims(tc.dims...), Metrics: metrics, DateRanges: week,
					DimensionFilter: tc.dimFilter, MetricFilter: tc.metFilter, MetricAggregations: allAggs}
				filtered := checkOracle(t, f, h, site, req, false)
				req.DimensionFilter, req.MetricFilter = nil, nil
				if unfiltered := oracle(req, f.zones[site], fixtureNow, f.events, site); unfiltered.RowCount == filtered.RowCount &&
					cmpTotals(unfiltered, filtered) {
					t.Fatalf("site %d: the filter dropped nothing; the case proves nothing", site)
				}
			}
		})
	}
}

func dims1(name string) []string { return []string{name} }

// cmpTotals reports whether two reports have the same totals.
func cmpTotals(a, b *plan.RunReportResponse) bool {
	if len(a.Totals) != len(b.Totals) {
		return false
	}
	for i := range a.Totals {
		for j := range a.Totals[i].MetricValues {
			if a.Totals[i].MetricValues[j] != b.Totals[i].MetricValues[j] {
				return false
			}
		}
	}
	return true
}
