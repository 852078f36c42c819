package query

import (
	"cmp"
	"encoding/json"
	"fmt"
	"math/big"
	"slices"
	"strings"
	"testing"
	"time"

	gocmp "github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/avila-analytics/avila/protocol"
	"github.com/avila-analytics/avila/query/engine/realtime"
	"github.com/avila-analytics/avila/query/plan"
)

// The table every official client runs (clients_go_test.go,
// clients_node_test.go): GA4 requests as Google's REST JSON with enum
// names, each checked against an oracle computed from the fixture's events
// without the engine's SQL.

// clientCase is one request of the table.
type clientCase struct {
	name     string
	method   string // GA4's method name: runReport, getMetadata, …
	property string // "" for properties/1
	body     string // the request, Google's JSON (without property)
	// status is the canonical status of an expected error ("" for
	// success), msg a part of its message and field the field its
	// BadRequest violation names ("" for none checked).
	status, msg, field string
}

// clientOutcome is what a client got: the response in its JSON form, or
// the error's canonical status, message and field violations.
type clientOutcome struct {
	Response json.RawMessage `json:"response"`
	Status   string          `json:"status"`
	Message  string          `json:"message"`
	Fields   []string        `json:"fields"`
}

const (
	tableRange = `"dateRanges":[{"startDate":"2026-03-01","endDate":"today"}]`
	// tableLiveCountries are the countries of the realtime events the table
	// records (visitors 1, 2, 3, 4), two minutes before fixtureNow; the
	// last visitor sends no engagement time, so GA4 does not count it as an
	// active user.
	tableLiveCountries = "DE,FR,DE,FR"
)

// clientTable is the table: every filter kind and match type, and/or/not
// groups, metric filters, each kind of orderBy, metricAggregations,
// paging, pivots, checkCompatibility, realtime, funnels, metadata, and
// errors.
func clientTable() []clientCase {
	str := func(field, match, value string, cs bool) string {
		return fmt.Sprintf(`{"filter":{"fieldName":%q,"stringFilter":{"matchType":%q,"value":%q,"caseSensitive":%t}}}`, field, match, value, cs)
	}
	return []clientCase{
		{name: "every string match type in an orGroup", method: "runReport", body: `{"dimensions":[{"name":"pagePath"}],"metrics":[{"name":"eventCount"}],` + tableRange + `,
			"dimensionFilter":{"orGroup":{"expressions":[` + strings.Join([]string{str("pagePath", "EXACT", "/a", false), str("pagePath", "BEGINS_WITH", "/B", true),
			str("pagePath", "ENDS_WITH", "NÏ", false), str("pagePath", "CONTAINS", "q='", true), str("pagePath", "FULL_REGEXP", "/[x]", false),
			str("pagePath", "PARTIAL_REGEXP", "utm_", false)}, ",") + `]}},
			"orderBys":[{"dimension":{"dimensionName":"pagePath","orderType":"ALPHANUMERIC"}}]}`},
		{name: "inList, numeric and between filters in and/not groups", method: "runReport", body: `{"dimensions":[{"name":"countryId"},{"name":"hour"}],
			"metrics":[{"name":"eventCount"},{"name":"activeUsers"}],` + tableRange + `,
			"dimensionFilter":{"andGroup":{"expressions":[{"filter":{"fieldName":"countryId","inListFilter":{"values":["de","JP","US"]}}},
				{"notExpression":{"filter":{"fieldName":"hour","numericFilter":{"operation":"LESS_THAN","value":{"int64Value":"3"}}}}},
				{"filter":{"fieldName":"hour","betweenFilter":{"fromValue":{"int64Value":"1"},"toValue":{"doubleValue":20.5}}}}]}},
			"orderBys":[{"dimension":{"dimensionName":"hour","orderType":"NUMERIC"},"desc":true},{"dimension":{"dimensionName":"countryId"}}]}`},
		{name: "empty filter, negated", method: "runReport", body: `{"dimensions":[{"name":"city"}],"metrics":[{"name":"eventCount"}],` + tableRange + `,
			"dimensionFilter":{"notExpression":{"filter":{"fieldName":"city","emptyFilter":{}}}},"orderBys":[{"dimension":{"dimensionName":"city"}}]}`},
		{name: "metric filter, metric order, a page", method: "runReport", body: `{"dimensions":[{"name":"pagePath"}],
			"metrics":[{"name":"eventCount"},{"name":"totalUsers"}],` + tableRange + `,
			"metricFilter":{"filter":{"fieldName":"eventCount","numericFilter":{"operation":"GREATER_THAN_OR_EQUAL","value":{"int64Value":"5"}}}},
			"orderBys":[{"metric":{"metricName":"eventCount"},"desc":true},{"dimension":{"dimensionName":"pagePath"}}],"limit":"3","offset":"2"}`},
		{name: "every aggregation, case-insensitive order", method: "runReport", body: `{"dimensions":[{"name":"browser"}],
			"metrics":[{"name":"eventCount"},{"name":"eventCountPerUser"}],` + tableRange + `,
			"metricAggregations":["TOTAL","MAXIMUM","MINIMUM"],
			"orderBys":[{"dimension":{"dimensionName":"browser","orderType":"CASE_INSENSITIVE_ALPHANUMERIC"},"desc":true}]}`},
		{name: "session report", method: "runReport", body: `{"dimensions":[{"name":"deviceCategory"}],"metrics":[{"name":"sessions"},{"name":"bounceRate"}],` +
			tableRange + `,"orderBys":[{"dimension":{"dimensionName":"deviceCategory"}}]}`},
		{name: "batch of two", method: "batchRunReports", body: `{"requests":[
			{"dimensions":[{"name":"eventName"}],"metrics":[{"name":"eventCount"}],` + tableRange + `,"orderBys":[{"dimension":{"dimensionName":"eventName"}}]},
			{"metrics":[{"name":"activeUsers"},{"name":"newUsers"}],"dateRanges":[{"startDate":"7daysAgo","endDate":"yesterday"}]}]}`},
		{name: "pivot by device and browser", method: "runPivotReport", body: `{"dimensions":[{"name":"deviceCategory"},{"name":"browser"}],
			"metrics":[{"name":"eventCount"},{"name":"activeUsers"}],` + tableRange + `,
			"dimensionFilter":{"notExpression":` + str("browser", "EXACT", "Safari", true) + `},
			"pivots":[{"fieldNames":["deviceCategory"],"limit":"3","orderBys":[{"metric":{"metricName":"eventCount"},"desc":true}],"metricAggregations":["TOTAL"]},
				{"fieldNames":["browser"],"limit":"2","offset":"1","orderBys":[{"dimension":{"dimensionName":"browser"}}],"metricAggregations":["MAXIMUM","MINIMUM"]}]}`},
		{name: "pivot ordered by a column of the other pivot", method: "runPivotReport", body: `{"dimensions":[{"name":"browser"},{"name":"deviceCategory"}],
			"metrics":[{"name":"activeUsers"},{"name":"eventCount"}],` + tableRange + `,
			"pivots":[{"fieldNames":["browser"],"limit":"3","offset":"1","orderBys":[
					{"pivot":{"metricName":"eventCount","pivotSelections":[{"dimensionName":"deviceCategory","dimensionValue":"mobile"}]},"desc":true},
					{"dimension":{"dimensionName":"browser"}}]},
				{"fieldNames":["deviceCategory"],"limit":"4","orderBys":[{"dimension":{"dimensionName":"deviceCategory"}}]}]}`},
		{name: "batch of pivots", method: "batchRunPivotReports", body: `{"requests":[{"dimensions":[{"name":"eventName"}],"metrics":[{"name":"totalUsers"}],` + tableRange + `,
			"pivots":[{"fieldNames":["eventName"],"limit":"4","metricAggregations":["TOTAL"]}]}]}`},
		{name: "compatibility with an event dimension", method: "checkCompatibility",
			body: `{"dimensions":[{"name":"pagePath"}],"metrics":[{"name":"eventCount"}]}`},
		// eventCount: GA4's item-scoped dimensions are incompatible with
		// event-scoped metrics (with session and user metrics they are not).
		{name: "incompatible names only", method: "checkCompatibility",
			body: `{"metrics":[{"name":"eventCount"}],"compatibilityFilter":"INCOMPATIBLE"}`},
		{name: "realtime by country", method: "runRealtimeReport",
			body: `{"dimensions":[{"name":"country"}],"metrics":[{"name":"activeUsers"}],"orderBys":[{"metric":{"metricName":"activeUsers"},"desc":true}]}`},
		{name: "funnel with breakdown", method: "runFunnelReport", body: `{` + tableRange + `,"funnel":{"steps":[
			{"name":"view","filterExpression":{"funnelEventFilter":{"eventName":"page_view"}}},
			{"name":"click","withinDurationFromPriorStep":"86400s","filterExpression":{"funnelEventFilter":{"eventName":"click"}}}]},
			"funnelBreakdown":{"breakdownDimension":{"name":"deviceCategory"},"limit":"3"}}`},
		{name: "metadata", method: "getMetadata"},
		{name: "unknown metric", method: "runReport", body: `{"metrics":[{"name":"pageViewz"}],` + tableRange + `}`,
			status: "INVALID_ARGUMENT", msg: "pageViewz", field: "metrics"},
		{name: "incompatible scopes", method: "runReport", body: `{"dimensions":[{"name":"itemName"}],"metrics":[{"name":"eventCount"}],` + tableRange + `}`,
			status: "INVALID_ARGUMENT", msg: "incompatible"},
		{name: "bad regular expression", method: "runReport", body: `{"dimensions":[{"name":"city"}],` + tableRange + `,"dimensionFilter":` +
			str("city", "PARTIAL_REGEXP", "(", false) + `}`,
			status: "INVALID_ARGUMENT", msg: "regular expression", field: "dimensionFilter.filter.stringFilter.value"},
		{name: "property of another key", method: "runReport", property: "properties/5", body: `{"metrics":[{"name":"eventCount"}],` + tableRange + `}`,
			status: "PERMISSION_DENIED", msg: "properties/5"},
		{name: "no such property", method: "getMetadata", property: "properties/99", status: "NOT_FOUND", msg: "properties/99"},
	}
}

func (c clientCase) propertyName() string { return cmp.Or(c.property, "properties/1") }

// checkClientTable compares each outcome with the case's expectation.
// skip names cases the client has no method for.
func checkClientTable(t *testing.T, f *fixture, outcomes []clientOutcome, skip map[string]bool) {
	t.Helper()
	cases := clientTable()
	if len(outcomes) != len(cases) {
		t.Fatalf("%d outcomes for %d cases", len(outcomes), len(cases))
	}
	for i, c := range cases {
		if skip[c.method] {
			continue
		}
		t.Run(c.name, func(t *testing.T) {
			checkClientCase(t, f, c, outcomes[i])
		})
	}
}

func checkClientCase(t *testing.T, f *fixture, c clientCase, out clientOutcome) {
	if c.status != "" {
		if out.Status != c.status || !strings.Contains(out.Message, c.msg) {
			t.Fatalf("got %s %q, want %s containing %q", out.Status, out.Message, c.status, c.msg)
		}
		if c.field != "" && !slices.ContainsFunc(out.Fields, func(f string) bool { return strings.HasPrefix(f, c.field) }) {
			t.Fatalf("field violations %q, want one naming %s", out.Fields, c.field)
		}
		return
	}
	if out.Status != "" {
		t.Fatalf("got %s %q, want a response", out.Status, out.Message)
	}
	zone, now, events := f.zones[1], fixtureNow, f.events
	decode := func(v any) {
		t.Helper()
		if err := json.Unmarshal(out.Response, v); err != nil {
			t.Fatalf("decode %s: %v", out.Response, err)
		}
	}
	same := func(want, got any) {
		t.Helper()
		// proto3 has no absent list: an empty one is the same (Node's
		// gRPC mode gives them).
		if diff := gocmp.Diff(want, got, cmpopts.EquateEmpty()); diff != "" {
			t.Fatalf("differs from the oracle (-want +got):\n%s", diff)
		}
	}
	switch c.method {
	case "runReport":
		var req plan.RunReportRequest
		mustJSON(t, c.body, &req)
		want := oracle(req, zone, now, events, 1)
		if len(want.Rows) == 0 {
			t.Fatal("the oracle has no rows: the case proves nothing")
		}
		var got plan.RunReportResponse
		decode(&got)
		same(want, &got)
	case "batchRunReports":
		var req struct{ Requests []plan.RunReportRequest }
		mustJSON(t, c.body, &req)
		var got struct{ Reports []*plan.RunReportResponse }
		decode(&got)
		var want []*plan.RunReportResponse
		for _, r := range req.Requests {
			want = append(want, oracle(r, zone, now, events, 1))
		}
		same(want, got.Reports)
	case "runPivotReport":
		var req pivotRequest
		mustJSON(t, c.body, &req)
		var got pivotResponse
		decode(&got)
		same(pivotOracle(req, zone, now, events), &got)
	case "batchRunPivotReports":
		var req struct{ Requests []pivotRequest }
		mustJSON(t, c.body, &req)
		var got struct{ PivotReports []*pivotResponse }
		decode(&got)
		var want []*pivotResponse
		for _, r := range req.Requests {
			want = append(want, pivotOracle(r, zone, now, events))
		}
		same(want, got.PivotReports)
	case "checkCompatibility":
		var req struct {
			Dimensions          []plan.Dimension
			Metrics             []plan.Metric
			CompatibilityFilter string
		}
		mustJSON(t, c.body, &req)
		var got struct {
			DimensionCompatibilities []struct {
				DimensionMetadata struct{ APIName string }
				Compatibility     string
			}
			MetricCompatibilities []struct {
				MetricMetadata struct{ APIName string }
				Compatibility  string
			}
		}
		decode(&got)
		// The oracle: a name is compatible when runReport's validation
		// accepts the request with it added.
		accepts := func(d []plan.Dimension, m []plan.Metric) string {
			s := testSite(t, zone)
			if _, err := plan.Validate(&plan.RunReportRequest{Dimensions: d, Metrics: m, DateRanges: []plan.DateRange{{StartDate: "today", EndDate: "today"}}}, s, now); err != nil {
				return "INCOMPATIBLE"
			}
			return "COMPATIBLE"
		}
		var wantList, gotList []string
		incompatible := 0
		for _, d := range append(slices.Clone(plan.DimensionList), customDims()...) {
			ds := req.Dimensions
			if !slices.ContainsFunc(ds, func(x plan.Dimension) bool { return x.Name == d.Name }) {
				ds = append(slices.Clone(ds), plan.Dimension{Name: d.Name})
			}
			if c := accepts(ds, req.Metrics); req.CompatibilityFilter == "" || c == req.CompatibilityFilter {
				wantList = append(wantList, d.Name+"="+c)
				if c == "INCOMPATIBLE" {
					incompatible++
				}
			}
		}
		for _, m := range plan.MetricList {
			ms := req.Metrics
			if !slices.ContainsFunc(ms, func(x plan.Metric) bool { return x.Name == m.Name }) {
				ms = append(slices.Clone(ms), plan.Metric{Name: m.Name})
			}
			if c := accepts(req.Dimensions, ms); req.CompatibilityFilter == "" || c == req.CompatibilityFilter {
				wantList = append(wantList, m.Name+"="+c)
			}
		}
		for _, d := range got.DimensionCompatibilities {
			gotList = append(gotList, d.DimensionMetadata.APIName+"="+d.Compatibility)
		}
		for _, m := range got.MetricCompatibilities {
			gotList = append(gotList, m.MetricMetadata.APIName+"="+m.Compatibility)
		}
		if incompatible == 0 {
			t.Fatal("the oracle finds no incompatible dimension: the case proves nothing")
		}
		same(wantList, gotList)
	case "runRealtimeReport":
		var got realtime.RunRealtimeReportResponse
		decode(&got)
		users := map[string]int{}
		for i, code := range strings.Split(tableLiveCountries, ",") {
			if liveEngaged(i) {
				users[plan.CountryNames[code]]++ // one visitor per event
			}
		}
		var want, rows []string
		for name, n := range users {
			want = append(want, fmt.Sprintf("%s=%d", name, n))
		}
		slices.SortFunc(want, func(a, b string) int { return cmp.Compare(b[len(b)-1], a[len(a)-1]) })
		for _, r := range got.Rows {
			rows = append(rows, r.DimensionValues[0].Value+"="+r.MetricValues[0].Value)
		}
		if got.Kind != realtime.ResponseKind {
			t.Fatalf("kind %q", got.Kind)
		}
		same(want, rows)
	case "runFunnelReport":
		var req plan.RunFunnelReportRequest
		mustJSON(t, c.body, &req)
		var got plan.RunFunnelReportResponse
		decode(&got)
		same(funnelOracle(req, zone, now, events, 1), &got)
	case "getMetadata":
		var got Metadata
		decode(&got)
		var want, names []string
		for _, d := range append(slices.Clone(plan.DimensionList), customDims()...) {
			want = append(want, d.Name)
		}
		for _, m := range plan.MetricList {
			want = append(want, m.Name)
		}
		// The fixture's property keeps GA4's default key event.
		want = append(want, plan.KeyEventsPrefix+"purchase")
		for _, d := range got.Dimensions {
			names = append(names, d.APIName)
		}
		for _, m := range got.Metrics {
			names = append(names, m.APIName)
		}
		same(want, names)
	default:
		t.Fatalf("no check for method %s", c.method)
	}
}

// customDims are the custom definitions of the fixture's property 1: the
// parameters and user properties its events carry.
func customDims() []*plan.DimDef {
	var out []*plan.DimDef
	for _, name := range []string{"customEvent:button", "customEvent:plan", "customUser:tier"} {
		d, _, _ := plan.LookupDimension(name)
		out = append(out, d)
	}
	return out
}

func mustJSON(t *testing.T, body string, v any) {
	t.Helper()
	if err := json.Unmarshal([]byte(body), v); err != nil {
		t.Fatalf("case body %s: %v", body, err)
	}
}

// tableLiveEvents are the realtime events the table's realtime case reads.
func tableLiveEvents() []protocol.Event {
	var out []protocol.Event
	for i, c := range strings.Split(tableLiveCountries, ",") {
		e := protocol.Event{Site: 1, TimeMicros: fixtureNow.Add(-2 * time.Minute).UnixMicro(),
			Name: "page_view", Visitor: uint64(i + 1), Country: c}
		if liveEngaged(i) {
			e.EngageMs = 1500
		}
		out = append(out, e)
	}
	return out
}

// liveEngaged reports whether the i-th realtime event carries engagement
// time: all but the last.
func liveEngaged(i int) bool { return i < strings.Count(tableLiveCountries, ",") }

// pivotRequest and pivotResponse are GA4's pivot JSON, read by the oracle
// and the checks.
type pivotRequest struct {
	Dimensions      []plan.Dimension
	Metrics         []plan.Metric
	DateRanges      []plan.DateRange
	DimensionFilter *plan.FilterExpression
	MetricFilter    *plan.FilterExpression
	Pivots          []struct {
		FieldNames         []string
		OrderBys           []plan.OrderBy
		Offset, Limit      plan.Int64
		MetricAggregations []plan.MetricAggregation
	}
}

type pivotResponse struct {
	PivotHeaders []struct {
		PivotDimensionHeaders []struct{ DimensionValues []plan.Value }
		RowCount              int64
	}
	DimensionHeaders []plan.DimensionHeader
	MetricHeaders    []plan.MetricHeader
	Rows             []plan.Row
	Aggregates       []plan.Row
	Metadata         plan.ResponseMetadata
	Kind             string
}

// pivotOracle computes a pivot report from the oracle's plain reports: each
// pivot's top combinations by its own order, the cells of all dimensions
// kept when every pivot selected their values and sorted by those
// selections, and aggregates across one pivot (TOTAL from the report
// without its dimensions, MAXIMUM and MINIMUM over the selected cells).
func pivotOracle(req pivotRequest, zone string, now time.Time, events []protocol.Event) *pivotResponse {
	base := plan.RunReportRequest{Metrics: req.Metrics, DateRanges: req.DateRanges, DimensionFilter: req.DimensionFilter, MetricFilter: req.MetricFilter}
	out := &pivotResponse{Kind: "analyticsData#runPivotReport"}
	var all []string
	var cols [][]int
	sel := make([]map[string]int, len(req.Pivots))
	var allDims []string
	for _, pv := range req.Pivots {
		allDims = append(allDims, pv.FieldNames...)
	}
	cellReq := base
	cellReq.Dimensions, cellReq.Limit = dims(allDims...), plan.MaxLimit
	cells := oracle(cellReq, zone, now, events, 1)
	for k, pv := range req.Pivots {
		r := base
		r.Dimensions, r.OrderBys, r.Offset, r.Limit = dims(pv.FieldNames...), pv.OrderBys, pv.Offset, pv.Limit
		// Leading pivot orderBys: sort the pivot's combinations by a
		// metric of the cells in one column, then page.
		type column struct {
			MetricName      string
			PivotSelections []struct{ DimensionName, DimensionValue string }
		}
		var byColumn []column
		var desc []bool
		for len(r.OrderBys) > 0 && len(r.OrderBys[0].Pivot) > 0 {
			var c column
			if err := json.Unmarshal(r.OrderBys[0].Pivot, &c); err != nil {
				panic(err)
			}
			byColumn, desc, r.OrderBys = append(byColumn, c), append(desc, r.OrderBys[0].Desc), r.OrderBys[1:]
		}
		if len(byColumn) > 0 {
			r.Offset, r.Limit = 0, plan.MaxLimit
		}
		rep := oracle(r, zone, now, events, 1)
		if len(byColumn) > 0 {
			cellValue := func(row plan.Row, c column) float64 {
				for _, cell := range cells.Rows {
					match := true
					for i, name := range allDims {
						want := ""
						if j := slices.Index(pv.FieldNames, name); j >= 0 {
							want = row.DimensionValues[j].Value
						}
						for _, sel := range c.PivotSelections {
							if sel.DimensionName == name {
								want = sel.DimensionValue
							}
						}
						match = match && cell.DimensionValues[i].Value == want
					}
					if match {
						m := slices.IndexFunc(req.Metrics, func(m plan.Metric) bool { return m.Name == c.MetricName })
						x, _ := parseNumber(cell.MetricValues[m].Value)
						return x
					}
				}
				return 0
			}
			rows := slices.Clone(rep.Rows)
			slices.SortStableFunc(rows, func(a, b plan.Row) int {
				for i, c := range byColumn {
					x := cmp.Compare(cellValue(a, c), cellValue(b, c))
					if desc[i] {
						x = -x
					}
					if x != 0 {
						return x
					}
				}
				return 0
			})
			lo := min(int(pv.Offset), len(rows))
			rep.Rows = rows[lo:min(lo+int(cmp.Or(pv.Limit, 10000)), len(rows))]
		}
		out.PivotHeaders = append(out.PivotHeaders, struct {
			PivotDimensionHeaders []struct{ DimensionValues []plan.Value }
			RowCount              int64
		}{RowCount: rep.RowCount})
		sel[k] = map[string]int{}
		for i, row := range rep.Rows {
			out.PivotHeaders[k].PivotDimensionHeaders = append(out.PivotHeaders[k].PivotDimensionHeaders, struct{ DimensionValues []plan.Value }{row.DimensionValues})
			sel[k][valuesKey(row.DimensionValues)] = i
		}
		var c []int
		for range pv.FieldNames {
			c = append(c, len(all))
			all = append(all, pv.FieldNames[len(c)-1])
		}
		cols = append(cols, c)
	}
	out.Metadata, out.MetricHeaders = cells.Metadata, cells.MetricHeaders
	for _, name := range all {
		out.DimensionHeaders = append(out.DimensionHeaders, plan.DimensionHeader{Name: name})
	}
	// rank is the selection index of each pivot (but skip) of a row, nil
	// when some pivot did not select its values.
	rank := func(values []plan.Value, skip int) []int {
		var idx []int
		for k, c := range cols {
			if k == skip {
				continue
			}
			var vs []plan.Value
			for _, i := range c {
				vs = append(vs, values[i])
			}
			i, ok := sel[k][valuesKey(vs)]
			if !ok {
				return nil
			}
			idx = append(idx, i)
		}
		return idx
	}
	type ranked struct {
		idx []int
		row plan.Row
	}
	sortRows := func(rs []ranked) []plan.Row {
		slices.SortStableFunc(rs, func(a, b ranked) int { return slices.Compare(a.idx, b.idx) })
		var out []plan.Row
		for _, r := range rs {
			out = append(out, r.row)
		}
		return out
	}
	var rows []ranked
	for _, row := range cells.Rows {
		if idx := rank(row.DimensionValues, -1); idx != nil {
			rows = append(rows, ranked{idx, row})
		}
	}
	out.Rows = sortRows(rows)
	for k, pv := range req.Pivots {
		for _, agg := range pv.MetricAggregations {
			var rs []ranked
			switch agg {
			case "TOTAL":
				r := base
				for j, c := range cols {
					if j != k {
						for _, i := range c {
							r.Dimensions = append(r.Dimensions, plan.Dimension{Name: all[i]})
						}
					}
				}
				r.Limit = plan.MaxLimit
				if len(r.Dimensions) == 0 {
					r.MetricAggregations = []plan.MetricAggregation{"TOTAL"}
					tot := oracle(r, zone, now, events, 1).Totals[0]
					row := plan.Row{MetricValues: tot.MetricValues}
					for range all {
						row.DimensionValues = append(row.DimensionValues, plan.Value{Value: plan.ReservedTotal})
					}
					rs = append(rs, ranked{nil, row})
					break
				}
				for _, row := range oracle(r, zone, now, events, 1).Rows {
					full := make([]plan.Value, len(all))
					at := 0
					for j, c := range cols {
						for _, i := range c {
							if j == k {
								full[i] = plan.Value{Value: plan.ReservedTotal}
							} else {
								full[i] = row.DimensionValues[at]
								at++
							}
						}
					}
					if idx := rank(full, k); idx != nil {
						rs = append(rs, ranked{idx, plan.Row{DimensionValues: full, MetricValues: row.MetricValues}})
					}
				}
			case "MAXIMUM", "MINIMUM":
				reserved := map[plan.MetricAggregation]string{"MAXIMUM": reservedMaximum, "MINIMUM": reservedMinimum}[agg]
				groups := map[string]*ranked{}
				var order []string
				for _, row := range cells.Rows {
					if rank(row.DimensionValues, -1) == nil {
						continue
					}
					full := slices.Clone(row.DimensionValues)
					for _, i := range cols[k] {
						full[i] = plan.Value{Value: reserved}
					}
					key := valuesKey(full)
					g, ok := groups[key]
					if !ok {
						groups[key] = &ranked{rank(full, k), plan.Row{DimensionValues: full, MetricValues: slices.Clone(row.MetricValues)}}
						order = append(order, key)
						continue
					}
					for m, v := range row.MetricValues {
						a, _ := new(big.Rat).SetString(v.Value)
						b, _ := new(big.Rat).SetString(g.row.MetricValues[m].Value)
						if c := a.Cmp(b); agg == "MAXIMUM" && c > 0 || agg == "MINIMUM" && c < 0 {
							g.row.MetricValues[m] = v
						}
					}
				}
				for _, key := range order {
					rs = append(rs, *groups[key])
				}
			}
			out.Aggregates = append(out.Aggregates, sortRows(rs)...)
		}
	}
	return out
}
