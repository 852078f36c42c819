package query

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
)

// TestBadFiltersNameTheField: every kind of bad filter, order or name is a
// 400 INVALID_ARGUMENT whose message names the offending field path.
func TestBadFiltersNameTheField(t *testing.T) {
	fx := newFixture(t, 0)
	h := fx.handler(t)
	const base = `"metrics":[{"name":"eventCount"}],"dateRanges":[{"startDate":"today","endDate":"today"}]`
	f := func(name, body, wantInMessage string) {
		t.Helper()
		code, out := post(t, h, "1", testKey, []byte("{"+base+","+body+"}"))
		var e errorBody
		if err := json.Unmarshal(out, &e); err != nil {
			t.Fatalf("%s: body is not an error: %s", name, out)
		}
		if code != http.StatusBadRequest || e.Error.Status != "INVALID_ARGUMENT" || !strings.Contains(e.Error.Message, wantInMessage) {
			t.Fatalf("%s: got %d %s, want 400 INVALID_ARGUMENT containing %q", name, code, out, wantInMessage)
		}
	}
	str := func(field, matchType, value string) string {
		return fmt.Sprintf(`{"filter":{"fieldName":%q,"stringFilter":{"matchType":%q,"value":%q}}}`, field, matchType, value)
	}
	f("empty expression", `"dimensionFilter":{}`, "dimensionFilter: set exactly one of andGroup, orGroup, notExpression or filter")
	f("two branches", `"dimensionFilter":{"notExpression":`+str("city", "EXACT", "x")+`,"filter":{"fieldName":"city","emptyFilter":{}}}`,
		"dimensionFilter: set exactly one")
	f("empty group", `"dimensionFilter":{"andGroup":{"expressions":[]}}`, "dimensionFilter.andGroup.expressions: a group needs at least one expression")
	f("nested unknown field name", `"dimensionFilter":{"orGroup":{"expressions":[`+str("city", "EXACT", "x")+`,{"notExpression":`+str("cityy", "EXACT", "x")+`}]}}`,
		`dimensionFilter.orGroup.expressions[1].notExpression.filter.fieldName: Field "cityy" is not a valid dimension`)
	f("no filter kind", `"dimensionFilter":{"filter":{"fieldName":"city"}}`, "dimensionFilter.filter: set exactly one of stringFilter")
	f("two filter kinds", `"dimensionFilter":{"filter":{"fieldName":"city","emptyFilter":{},"inListFilter":{"values":["a"]}}}`,
		"dimensionFilter.filter: set exactly one of stringFilter")
	f("metric in dimensionFilter", `"dimensionFilter":{"filter":{"fieldName":"eventCount","emptyFilter":{}}}`,
		`dimensionFilter.filter.fieldName: "eventCount" is a metric`)
	f("dimension in metricFilter", `"metricFilter":{"filter":{"fieldName":"city","numericFilter":{"operation":"EQUAL","value":{"int64Value":"1"}}}}`,
		`metricFilter.filter.fieldName: "city" is a dimension`)
	f("string filter on a metric", `"metricFilter":`+str("eventCount", "EXACT", "1"), `metricFilter.filter: metric "eventCount" takes numericFilter or betweenFilter only`)
	f("unknown metric in metricFilter", `"metricFilter":{"filter":{"fieldName":"sessionz","betweenFilter":{"fromValue":{"int64Value":"1"},"toValue":{"int64Value":"2"}}}}`,
		`metricFilter.filter.fieldName: Field "sessionz" is not a valid metric`)
	f("bad match type", `"dimensionFilter":`+str("city", "LIKE", "x"), `dimensionFilter.filter.stringFilter.matchType: "LIKE" is not supported`)
	f("invalid regexp", `"dimensionFilter":`+str("city", "FULL_REGEXP", "(a"), `dimensionFilter.filter.stringFilter.value: invalid regular expression "(a"`)
	f("regexp with a word boundary", `"dimensionFilter":`+str("city", "PARTIAL_REGEXP", `\bx`), `word boundaries`)
	f("regexp repeat above 255", `"dimensionFilter":`+str("city", "PARTIAL_REGEXP", `a{1,1000}`), `above 255`)
	f("value too long", `"dimensionFilter":`+str("city", "CONTAINS", strings.Repeat("x", 1001)), `dimensionFilter.filter.stringFilter.value: longer than 1000 bytes`)
	f("NUL in a value", `"dimensionFilter":{"filter":{"fieldName":"city","stringFilter":{"value":"a\u0000b"}}}`,
		`dimensionFilter.filter.stringFilter.value: must not contain NUL`)
	f("NUL in a list value", `"dimensionFilter":{"filter":{"fieldName":"city","inListFilter":{"values":["a","\u0000"]}}}`,
		`dimensionFilter.filter.inListFilter.values[1]: must not contain NUL`)
	f("empty list", `"dimensionFilter":{"filter":{"fieldName":"city","inListFilter":{"values":[]}}}`, `dimensionFilter.filter.inListFilter.values: give at least one value`)
	f("list too long", `"dimensionFilter":{"filter":{"fieldName":"city","inListFilter":{"values":[`+strings.Repeat(`"a",`, 1000)+`"a"]}}}`,
		`dimensionFilter.filter.inListFilter.values: at most 1000 values`)
	f("bad operation", `"metricFilter":{"filter":{"fieldName":"eventCount","numericFilter":{"operation":"NOT_EQUAL","value":{"int64Value":"1"}}}}`,
		`metricFilter.filter.numericFilter.operation: "NOT_EQUAL" is not supported`)
	f("missing operation", `"metricFilter":{"filter":{"fieldName":"eventCount","numericFilter":{"value":{"int64Value":"1"}}}}`,
		`metricFilter.filter.numericFilter.operation: "OPERATION_UNSPECIFIED" is not supported`)
	f("missing number", `"metricFilter":{"filter":{"fieldName":"eventCount","numericFilter":{"operation":"EQUAL","value":{}}}}`,
		`metricFilter.filter.numericFilter.value: set int64Value or doubleValue`)
	f("two numbers", `"metricFilter":{"filter":{"fieldName":"eventCount","numericFilter":{"operation":"EQUAL","value":{"int64Value":"1","doubleValue":1}}}}`,
		`metricFilter.filter.numericFilter.value: set exactly one of int64Value or doubleValue`)
	f("between without upper bound", `"dimensionFilter":{"filter":{"fieldName":"hour","betweenFilter":{"fromValue":{"doubleValue":1}}}}`,
		`dimensionFilter.filter.betweenFilter.toValue: set int64Value or doubleValue`)
	f("integer that is not one", `"metricFilter":{"filter":{"fieldName":"eventCount","numericFilter":{"operation":"EQUAL","value":{"int64Value":"1.5"}}}}`,
		`Invalid JSON payload`)
	f("unknown field inside a filter", `"dimensionFilter":{"filter":{"fieldName":"city","stringFilter":{"valu":"x"}}}`, `Unknown name "valu"`)
	deep := str("city", "EXACT", "x")
	for range 11 {
		deep = `{"notExpression":` + deep + `}`
	}
	f("nested too deep", `"dimensionFilter":`+deep, "filters may nest at most 10 levels deep")
	f("too many expressions", `"dimensionFilter":{"orGroup":{"expressions":[`+strings.Repeat(str("city", "EXACT", "x")+",", 100)+str("city", "EXACT", "x")+`]}}`,
		"a filter may hold at most 100 expressions")

	// Names, orders and types.
	f("bad custom parameter name", `"dimensions":[{"name":"customEvent:bad-name"}]`, `Field "customEvent:bad-name" is not a valid dimension: the event parameter name`)
	f("empty custom parameter name", `"dimensions":[{"name":"customUser:"}]`, `Field "customUser:" is not a valid dimension: the user property name`)
	f("custom filter name", `"dimensionFilter":{"filter":{"fieldName":"customEvent:1x","emptyFilter":{}}}`,
		`dimensionFilter.filter.fieldName: Field "customEvent:1x" is not a valid dimension`)
	f("bad order type", `"dimensions":[{"name":"city"}],"orderBys":[{"dimension":{"dimensionName":"city","orderType":"NATURAL"}}]`,
		`orderBys[0].dimension.orderType: "NATURAL" is not supported`)
	f("order by custom dimension not requested", `"dimensions":[{"name":"city"}],"orderBys":[{"dimension":{"dimensionName":"customEvent:plan"}}]`,
		`orderBys[0]: dimension "customEvent:plan" is not in the request's dimensions`)
}
