package query

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/avila-analytics/avila/protocol"
	"github.com/avila-analytics/avila/query/plan"
)

// postFunnel sends body (a value to marshal, or raw bytes) to the
// property's runFunnelReport with key and returns the status and body.
func postFunnel(t testing.TB, h http.Handler, property, key string, body any) (int, []byte) {
	t.Helper()
	raw, ok := body.([]byte)
	if !ok {
		var err error
		if raw, err = json.Marshal(body); err != nil {
			t.Fatal(err)
		}
	}
	req := httptest.NewRequest(http.MethodPost, "/v1alpha/properties/"+property+":runFunnelReport", bytes.NewReader(raw))
	if key != "" {
		req.Header.Set("Authorization", "Bearer "+key)
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec.Code, rec.Body.Bytes()
}

// Funnel builders for tests.

func eventStep(name, event string) plan.FunnelStep {
	return plan.FunnelStep{Name: name, FilterExpression: &plan.FunnelFilterExpression{FunnelEventFilter: &plan.FunnelEventFilter{EventName: event}}}
}

func fieldStep(name string, f plan.FunnelFieldFilter) plan.FunnelStep {
	return plan.FunnelStep{Name: name, FilterExpression: &plan.FunnelFilterExpression{FunnelFieldFilter: &f}}
}

func funnelReq(open bool, steps ...plan.FunnelStep) plan.RunFunnelReportRequest {
	return plan.RunFunnelReportRequest{DateRanges: []plan.DateRange{{StartDate: "2026-03-01", EndDate: "today"}},
		Funnel: &plan.Funnel{IsOpenFunnel: open, Steps: steps}}
}

func runFunnelOK(t *testing.T, h http.Handler, property string, req plan.RunFunnelReportRequest) *plan.RunFunnelReportResponse {
	t.Helper()
	code, out := postFunnel(t, h, property, testKey, req)
	if code != http.StatusOK {
		t.Fatalf("got %d %s, want 200", code, out)
	}
	var got plan.RunFunnelReportResponse
	if err := json.Unmarshal(out, &got); err != nil {
		t.Fatal(err)
	}
	return &got
}

// TestFunnelMatchesOracle runs closed and open funnels with every kind of
// step filter, step ordering constraints and breakdowns, and compares each
// answer with funnelOracle.
func TestFunnelMatchesOracle(t *testing.T) {
	f := newFixture(t, 400)
	h := f.handler(t)
	withParam := plan.FunnelStep{Name: "clicked on a plan", FilterExpression: &plan.FunnelFilterExpression{FunnelEventFilter: &plan.FunnelEventFilter{
		EventName: "click",
		FunnelParameterFilterExpression: &plan.FunnelParameterFilterExpression{OrGroup: &plan.FunnelParameterFilterExpressionList{Expressions: []plan.FunnelParameterFilterExpression{
			{FunnelParameterFilter: &plan.FunnelParameterFilter{EventParameterName: "plan", InListFilter: &plan.InListFilter{Values: []string{"free", "pro"}}}},
			{FunnelParameterFilter: &plan.FunnelParameterFilter{EventParameterName: "button", NumericFilter: &plan.NumericFilter{Operation: "GREATER_THAN", Value: i64(1)}}},
		}}},
	}}}
	notScroll := plan.FunnelStep{Name: "not a scroll on /a", FilterExpression: &plan.FunnelFilterExpression{AndGroup: &plan.FunnelFilterExpressionList{Expressions: []plan.FunnelFilterExpression{
		{NotExpression: &plan.FunnelFilterExpression{FunnelEventFilter: &plan.FunnelEventFilter{EventName: "scroll"}}},
		{FunnelFieldFilter: &plan.FunnelFieldFilter{FieldName: "pagePath", StringFilter: &plan.StringFilter{MatchType: "BEGINS_WITH", Value: "/A"}}},
	}}}}
	direct := eventStep("then directly a click", "click")
	direct.IsDirectlyFollowedBy = true
	soon := eventStep("purchase within 6h", "purchase")
	soon.WithinDurationFromPriorStep = "21600s"
	both := eventStep("scroll right after, within 2.5h", "scroll")
	both.IsDirectlyFollowedBy, both.WithinDurationFromPriorStep = true, "9000.5s"
	byDevice := func(r plan.RunFunnelReportRequest, limit int64) plan.RunFunnelReportRequest {
		r.FunnelBreakdown = &plan.FunnelBreakdown{BreakdownDimension: &plan.Dimension{Name: "deviceCategory"}, Limit: plan.Int64(limit)}
		return r
	}
	byPlan := func(r plan.RunFunnelReportRequest) plan.RunFunnelReportRequest {
		r.FunnelBreakdown = &plan.FunnelBreakdown{BreakdownDimension: &plan.Dimension{Name: "customEvent:plan"}}
		return r
	}
	byCountry := func(r plan.RunFunnelReportRequest) plan.RunFunnelReportRequest {
		r.FunnelBreakdown = &plan.FunnelBreakdown{BreakdownDimension: &plan.Dimension{Name: "country"}, Limit: 15}
		return r
	}
	limited := func(r plan.RunFunnelReportRequest, n int64) plan.RunFunnelReportRequest {
		r.Limit = plan.Int64(n)
		return r
	}
	lastDays := func(r plan.RunFunnelReportRequest) plan.RunFunnelReportRequest {
		r.DateRanges = []plan.DateRange{{StartDate: "3daysAgo", EndDate: "yesterday"}}
		return r
	}
	cases := map[string]plan.RunFunnelReportRequest{
		"closed page_view click purchase": funnelReq(false, eventStep("view", "page_view"), eventStep("click", "click"), eventStep("buy", "purchase")),
		"open page_view click purchase":   funnelReq(true, eventStep("view", "page_view"), eventStep("click", "click"), eventStep("buy", "purchase")),
		"closed one step":                 funnelReq(false, eventStep("", "Sign Up")),
		"closed directly followed":        funnelReq(false, eventStep("view", "page_view"), direct, soon),
		"open directly followed":          funnelReq(true, eventStep("view", "page_view"), direct, soon),
		"closed direct and within":        funnelReq(false, eventStep("click", "click"), both, eventStep("click again", "click")),
		"closed params and fields":        funnelReq(false, notScroll, withParam, eventStep("buy", "purchase")),
		"open params and fields":          funnelReq(true, notScroll, withParam, eventStep("buy", "purchase")),
		"closed by device":                byDevice(funnelReq(false, eventStep("view", "page_view"), eventStep("click", "click"), eventStep("buy", "purchase")), 2),
		"open by device, all values":      byDevice(funnelReq(true, eventStep("view", "page_view"), eventStep("click", "click")), 15),
		"closed by plan":                  byPlan(funnelReq(false, eventStep("click", "click"), withParam)),
		"closed by country, 5 rows":       limited(byCountry(funnelReq(false, eventStep("view", "page_view"), eventStep("scroll", "scroll"))), 5),
		"closed last days":                lastDays(funnelReq(false, eventStep("view", "page_view"), eventStep("click", "click"))),
		"closed field steps": funnelReq(false,
			fieldStep("home", plan.FunnelFieldFilter{FieldName: "pagePath", StringFilter: &plan.StringFilter{MatchType: "EXACT", Value: "/"}}),
			fieldStep("desktop", plan.FunnelFieldFilter{FieldName: "deviceCategory", InListFilter: &plan.InListFilter{Values: []string{"desktop", "tablet"}, CaseSensitive: true}}),
			fieldStep("afternoon", plan.FunnelFieldFilter{FieldName: "hour", BetweenFilter: &plan.BetweenFilter{FromValue: i64(12), ToValue: i64(23)}})),
	}
	var sawDrop, sawOpenDiffer bool
	for name, req := range cases {
		for _, site := range []uint32{1, 3} {
			got := runFunnelOK(t, h, strconv.FormatUint(uint64(site), 10), req)
			want := funnelOracle(req, f.zones[site], fixtureNow, f.events, site)
			if diff := cmp.Diff(want, got); diff != "" {
				t.Fatalf("%s, site %d: differs from oracle (-want +got):\n%s", name, site, diff)
			}
			rows := got.FunnelVisualization.Rows
			if len(rows) > 1 && rows[1].MetricValues[0].Value != "0" && rows[1].MetricValues[0].Value != rows[0].MetricValues[0].Value {
				sawDrop = true
			}
		}
	}
	closed := runFunnelOK(t, h, "1", cases["closed page_view click purchase"])
	open := runFunnelOK(t, h, "1", cases["open page_view click purchase"])
	sawOpenDiffer = !cmp.Equal(closed.FunnelVisualization.Rows, open.FunnelVisualization.Rows)
	if !sawDrop || !sawOpenDiffer {
		t.Fatalf("fixture does not discriminate: a step with fewer users than the one before: %v, open differs from closed: %v", sawDrop, sawOpenDiffer)
	}
}

// TestFunnelKnownVisitors checks the semantics on hand-made journeys whose
// answers are written out here, not computed.
func TestFunnelKnownVisitors(t *testing.T) {
	f := newFixture(t, 0)
	h := f.handler(t)
	mustExec(t, f.pool, "INSERT INTO sites (id, measurement_id, api_secret, name, time_zone) VALUES (99, 'G-TEST99', 'secret', 'site 99', 'UTC')")
	base := time.Date(2026, 3, 5, 10, 0, 0, 0, time.UTC)
	var evs []protocol.Event
	journey := func(visitor uint64, steps ...string) {
		for i, s := range steps {
			name, device, _ := strings.Cut(s, "@")
			evs = append(evs, protocol.Event{Site: 99, Visitor: visitor, Name: name, Device: device, Path: "/",
				TimeMicros: base.Add(time.Duration(visitor)*time.Hour + time.Duration(i)*time.Minute).UnixMicro()})
		}
	}
	journey(1, "page_view@desktop", "click@desktop", "purchase@desktop") // completes, all direct
	journey(2, "page_view@mobile", "scroll@mobile", "click@mobile")      // click not directly after the view
	journey(3, "click@mobile", "page_view@mobile")                       // click before the view: closed funnel never reaches step 2
	journey(4, "click@tablet", "purchase@tablet")                        // enters an open funnel at step 2
	journey(5, "scroll@desktop")                                         // never enters
	// Visitor 6: the click is 10 minutes after the view.
	evs = append(evs,
		protocol.Event{Site: 99, Visitor: 6, Name: "page_view", Device: "mobile", TimeMicros: base.Add(-time.Hour).UnixMicro()},
		protocol.Event{Site: 99, Visitor: 6, Name: "click", Device: "mobile", TimeMicros: base.Add(-50 * time.Minute).UnixMicro()})
	if _, err := f.writeBatch(context.Background(), "known", 1, evs, nil); err != nil {
		t.Fatal(err)
	}
	row := func(step, value string, users, rate, abandon, abandonRate string) plan.Row {
		dv := []plan.Value{{Value: step}}
		if value != "" {
			dv = append(dv, plan.Value{Value: value})
		}
		return plan.Row{DimensionValues: dv, MetricValues: []plan.Value{{Value: users}, {Value: rate}, {Value: abandon}, {Value: abandonRate}}}
	}
	check := func(name string, req plan.RunFunnelReportRequest, want []plan.Row) {
		t.Helper()
		got := runFunnelOK(t, h, "99", req)
		if diff := cmp.Diff(want, got.FunnelTable.Rows); diff != "" {
			t.Fatalf("%s: funnel table (-want +got):\n%s", name, diff)
		}
	}
	view, click, buy := eventStep("View", "page_view"), eventStep("Click", "click"), eventStep("Buy", "purchase")
	check("closed", funnelReq(false, view, click, buy), []plan.Row{
		row("1. View", "", "4", "0.75", "1", "0.25"), // 1, 2, 3, 6 viewed; 1, 2, 6 clicked after
		row("2. Click", "", "3", "0.3333333333333333", "2", "0.6666666666666666"),
		row("3. Buy", "", "1", "1", "0", "0"),
	})
	check("open", funnelReq(true, view, click, buy), []plan.Row{
		row("1. View", "", "4", "0.75", "1", "0.25"),
		row("2. Click", "", "5", "0.4", "3", "0.6"), // 1, 2, 3, 4, 6 clicked; 1 and 4 bought after
		row("3. Buy", "", "2", "1", "0", "0"),
	})
	directClick := click
	directClick.IsDirectlyFollowedBy = true
	check("directly followed", funnelReq(false, view, directClick), []plan.Row{
		row("1. View", "", "4", "0.5", "2", "0.5"), // visitors 1 and 6
		row("2. Click", "", "2", "1", "0", "0"),
	})
	quickClick := click
	quickClick.WithinDurationFromPriorStep = "300s"
	check("within 5 minutes", funnelReq(false, view, quickClick), []plan.Row{
		row("1. View", "", "4", "0.5", "2", "0.5"), // visitors 1 and 2; 6 took 10 minutes
		row("2. Click", "", "2", "1", "0", "0"),
	})
	exactly := click
	exactly.WithinDurationFromPriorStep = "600s"
	check("within exactly 10 minutes", funnelReq(false, view, exactly), []plan.Row{
		row("1. View", "", "4", "0.75", "1", "0.25"),
		row("2. Click", "", "3", "1", "0", "0"),
	})
	bd := funnelReq(false, view, click)
	bd.FunnelBreakdown = &plan.FunnelBreakdown{BreakdownDimension: &plan.Dimension{Name: "deviceCategory"}, Limit: 2}
	check("breakdown", bd, []plan.Row{
		row("1. View", "RESERVED_TOTAL", "4", "0.75", "1", "0.25"),
		row("1. View", "mobile", "3", "0.6666666666666666", "1", "0.3333333333333333"),
		row("1. View", "desktop", "1", "1", "0", "0"),
		row("2. Click", "RESERVED_TOTAL", "3", "1", "0", "0"),
		row("2. Click", "mobile", "2", "1", "0", "0"),
		row("2. Click", "desktop", "1", "1", "0", "0"),
	})
	got := runFunnelOK(t, h, "99", funnelReq(false, view, click, buy))
	wantVis := &plan.FunnelSubReport{
		DimensionHeaders: []plan.DimensionHeader{{Name: "funnelStepName"}},
		MetricHeaders:    []plan.MetricHeader{{Name: "activeUsers", Type: "TYPE_INTEGER"}},
		Rows: []plan.Row{{DimensionValues: []plan.Value{{Value: "1. View"}}, MetricValues: []plan.Value{{Value: "4"}}}, {DimensionValues: []plan.Value{{Value: "2. Click"}}, MetricValues: []plan.Value{{Value: "3"}}},
			{DimensionValues: []plan.Value{{Value: "3. Buy"}}, MetricValues: []plan.Value{{Value: "1"}}}},
	}
	if diff := cmp.Diff(wantVis, got.FunnelVisualization); diff != "" || got.Kind != "analyticsData#runFunnelReport" {
		t.Fatalf("visualization or kind %q (-want +got):\n%s", got.Kind, diff)
	}
}

// TestFunnelErrors checks auth and that bad requests are 400s naming the
// field.
func TestFunnelErrors(t *testing.T) {
	f := newFixture(t, 10)
	h := f.handler(t)
	ok := `{"dateRanges":[{"startDate":"2026-03-01","endDate":"today"}],"funnel":{"steps":[{"name":"a","filterExpression":{"funnelEventFilter":{"eventName":"click"}}}]}}`
	withStep := func(step string) string {
		return `{"dateRanges":[{"startDate":"2026-03-01","endDate":"today"}],"funnel":{"steps":[{"filterExpression":{"funnelEventFilter":{"eventName":"click"}}},` + step + `]}}`
	}
	f2 := func(name, property, key, body string, wantCode int, wantStatus, wantInMessage string) {
		t.Helper()
		code, out := postFunnel(t, h, property, key, []byte(body))
		var e errorBody
		if err := json.Unmarshal(out, &e); err != nil {
			t.Fatalf("%s: body is not an error: %s", name, out)
		}
		if code != wantCode || e.Error.Code != wantCode || e.Error.Status != wantStatus || !strings.Contains(e.Error.Message, wantInMessage) {
			t.Fatalf("%s: got %d %s, want %d %s containing %q", name, code, out, wantCode, wantStatus, wantInMessage)
		}
	}
	f2("no key", "1", "", ok, 401, "UNAUTHENTICATED", "Bearer")
	f2("key for another site", "2", "avk_site1", ok, 403, "PERMISSION_DENIED", "properties/2")
	f2("unknown property", "99", testKey, ok, 404, "NOT_FOUND", "properties/99")
	f2("property zero", "0", testKey, ok, 400, "INVALID_ARGUMENT", "positive integers")
	f2("no funnel", "1", testKey, `{"dateRanges":[{"startDate":"today","endDate":"today"}]}`, 400, "INVALID_ARGUMENT", "funnel.steps")
	f2("no date range", "1", testKey, `{"funnel":{"steps":[{"filterExpression":{"funnelEventFilter":{"eventName":"click"}}}]}}`, 400, "INVALID_ARGUMENT", "dateRanges")
	f2("two date ranges", "1", testKey, `{"dateRanges":[{"startDate":"today","endDate":"today"},{"startDate":"yesterday","endDate":"today"}],"funnel":{"steps":[{"filterExpression":{"funnelEventFilter":{"eventName":"click"}}}]}}`,
		400, "INVALID_ARGUMENT", "exactly one date range")
	f2("unknown field", "1", testKey, withStep(`{"filterExpression":{"funnelEventFilter":{"eventName":"click","x":1}}}`), 400, "INVALID_ARGUMENT", `Unknown name "x"`)
	f2("no filter", "1", testKey, withStep(`{"name":"b"}`), 400, "INVALID_ARGUMENT", "funnel.steps[1].filterExpression")
	f2("two filters", "1", testKey, withStep(`{"filterExpression":{"funnelEventFilter":{"eventName":"click"},"notExpression":{"funnelEventFilter":{"eventName":"x"}}}}`),
		400, "INVALID_ARGUMENT", "funnel.steps[1].filterExpression: set exactly one")
	f2("unknown field name", "1", testKey, withStep(`{"filterExpression":{"andGroup":{"expressions":[{"funnelFieldFilter":{"fieldName":"nope","stringFilter":{"value":"x"}}}]}}}`),
		400, "INVALID_ARGUMENT", `funnel.steps[1].filterExpression.andGroup.expressions[0].funnelFieldFilter.fieldName: Field "nope" is not a valid dimension`)
	f2("metric as field", "1", testKey, withStep(`{"filterExpression":{"funnelFieldFilter":{"fieldName":"eventCount","numericFilter":{"operation":"EQUAL","value":{"int64Value":"1"}}}}}`),
		400, "INVALID_ARGUMENT", `"eventCount" is a metric`)
	f2("no event name", "1", testKey, withStep(`{"filterExpression":{"funnelEventFilter":{}}}`), 400, "INVALID_ARGUMENT", "funnel.steps[1].filterExpression.funnelEventFilter.eventName")
	f2("bad parameter name", "1", testKey, withStep(`{"filterExpression":{"funnelEventFilter":{"eventName":"click","funnelParameterFilterExpression":{"funnelParameterFilter":{"eventParameterName":"9x","stringFilter":{"value":"x"}}}}}}`),
		400, "INVALID_ARGUMENT", "funnelParameterFilter.eventParameterName")
	f2("item parameter", "1", testKey, withStep(`{"filterExpression":{"funnelEventFilter":{"eventName":"click","funnelParameterFilterExpression":{"funnelParameterFilter":{"itemParameterName":"item_id","stringFilter":{"value":"x"}}}}}}`),
		400, "INVALID_ARGUMENT", "itemParameterName")
	f2("bad match type", "1", testKey, withStep(`{"filterExpression":{"funnelFieldFilter":{"fieldName":"pagePath","stringFilter":{"matchType":"LIKE","value":"x"}}}}`),
		400, "INVALID_ARGUMENT", "funnel.steps[1].filterExpression.funnelFieldFilter.stringFilter.matchType")
	f2("bad duration", "1", testKey, withStep(`{"withinDurationFromPriorStep":"5m","filterExpression":{"funnelEventFilter":{"eventName":"click"}}}`),
		400, "INVALID_ARGUMENT", "funnel.steps[1].withinDurationFromPriorStep")
	f2("negative duration", "1", testKey, withStep(`{"withinDurationFromPriorStep":"-5s","filterExpression":{"funnelEventFilter":{"eventName":"click"}}}`),
		400, "INVALID_ARGUMENT", "withinDurationFromPriorStep")
	f2("first step directly followed", "1", testKey, `{"dateRanges":[{"startDate":"today","endDate":"today"}],"funnel":{"steps":[{"isDirectlyFollowedBy":true,"filterExpression":{"funnelEventFilter":{"eventName":"click"}}}]}}`,
		400, "INVALID_ARGUMENT", "funnel.steps[0].isDirectlyFollowedBy")
	f2("eleven steps", "1", testKey, `{"dateRanges":[{"startDate":"today","endDate":"today"}],"funnel":{"steps":[`+
		strings.Repeat(`{"filterExpression":{"funnelEventFilter":{"eventName":"click"}}},`, 10)+`{"filterExpression":{"funnelEventFilter":{"eventName":"click"}}}]}}`,
		400, "INVALID_ARGUMENT", "at most 10 steps")
	f2("bad breakdown", "1", testKey, `{"dateRanges":[{"startDate":"today","endDate":"today"}],"funnelBreakdown":{"breakdownDimension":{"name":"sessionz"}},"funnel":{"steps":[{"filterExpression":{"funnelEventFilter":{"eventName":"click"}}}]}}`,
		400, "INVALID_ARGUMENT", `funnelBreakdown.breakdownDimension.name: Field "sessionz"`)
	f2("breakdown limit", "1", testKey, `{"dateRanges":[{"startDate":"today","endDate":"today"}],"funnelBreakdown":{"breakdownDimension":{"name":"city"},"limit":16},"funnel":{"steps":[{"filterExpression":{"funnelEventFilter":{"eventName":"click"}}}]}}`,
		400, "INVALID_ARGUMENT", "funnelBreakdown.limit")
	f2("segments", "1", testKey, `{"dateRanges":[{"startDate":"today","endDate":"today"}],"segments":[{}],"funnel":{"steps":[{"filterExpression":{"funnelEventFilter":{"eventName":"click"}}}]}}`,
		400, "INVALID_ARGUMENT", "segments")
	f2("trended", "1", testKey, `{"dateRanges":[{"startDate":"today","endDate":"today"}],"funnelVisualizationType":"TRENDED_FUNNEL","funnel":{"steps":[{"filterExpression":{"funnelEventFilter":{"eventName":"click"}}}]}}`,
		400, "INVALID_ARGUMENT", "funnelVisualizationType")
	f2("negative limit", "1", testKey, `{"limit":-1,"dateRanges":[{"startDate":"today","endDate":"today"}],"funnel":{"steps":[{"filterExpression":{"funnelEventFilter":{"eventName":"click"}}}]}}`,
		400, "INVALID_ARGUMENT", "limit")

	for _, tc := range []struct{ method, path string }{
		{http.MethodGet, "/v1alpha/properties/1:runFunnelReport"},
		{http.MethodPost, "/v1alpha/properties/1:runReport"},
		{http.MethodPost, "/v1alpha/properties/1/x:runFunnelReport"},
		{http.MethodPost, "/v1beta/properties/1:runFunnelReport"},
	} {
		req := httptest.NewRequest(tc.method, tc.path, strings.NewReader(ok))
		req.Header.Set("Authorization", "Bearer "+testKey)
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code != http.StatusNotFound || !strings.Contains(rec.Body.String(), `"status":"NOT_FOUND"`) {
			t.Errorf("%s %s: got %d %s, want 404 NOT_FOUND", tc.method, tc.path, rec.Code, rec.Body)
		}
	}
}

// TestFunnelInjection sends SQL-looking strings in every string field of a
// funnel request: names of fields, dimensions, parameters, match types,
// operations, durations and dates are refused with 400; step names, event
// names and filter values are data, answered like the oracle. The events
// table must be intact afterwards.
func TestFunnelInjection(t *testing.T) {
	f := newFixture(t, 60)
	h := f.handler(t)
	ctx := context.Background()
	var before int64
	if err := f.pool.QueryRow(ctx, "SELECT count(*) FROM events").Scan(&before); err != nil {
		t.Fatal(err)
	}
	base := func() plan.RunFunnelReportRequest {
		second := eventStep("click", "click")
		second.FilterExpression = &plan.FunnelFilterExpression{FunnelEventFilter: &plan.FunnelEventFilter{EventName: "click",
			FunnelParameterFilterExpression: &plan.FunnelParameterFilterExpression{FunnelParameterFilter: &plan.FunnelParameterFilter{
				EventParameterName: "plan", StringFilter: &plan.StringFilter{MatchType: "CONTAINS", Value: "o"}}}}}
		third := fieldStep("title", plan.FunnelFieldFilter{FieldName: "pageTitle", StringFilter: &plan.StringFilter{Value: "Home"}})
		r := funnelReq(true, eventStep("view", "page_view"), second, third)
		r.FunnelBreakdown = &plan.FunnelBreakdown{BreakdownDimension: &plan.Dimension{Name: "pageTitle"}}
		return r
	}
	paramFilter := func(r *plan.RunFunnelReportRequest) *plan.FunnelParameterFilter {
		return r.Funnel.Steps[1].FilterExpression.FunnelEventFilter.FunnelParameterFilterExpression.FunnelParameterFilter
	}
	refused := map[string]func(r *plan.RunFunnelReportRequest, s string){
		"property":   func(r *plan.RunFunnelReportRequest, s string) { r.Property = s },
		"start date": func(r *plan.RunFunnelReportRequest, s string) { r.DateRanges[0].StartDate = s },
		"end date":   func(r *plan.RunFunnelReportRequest, s string) { r.DateRanges[0].EndDate = s },
		"field name": func(r *plan.RunFunnelReportRequest, s string) {
			r.Funnel.Steps[2].FilterExpression.FunnelFieldFilter.FieldName = s
		},
		"match type": func(r *plan.RunFunnelReportRequest, s string) {
			r.Funnel.Steps[2].FilterExpression.FunnelFieldFilter.StringFilter.MatchType = s
		},
		"parameter name": func(r *plan.RunFunnelReportRequest, s string) { paramFilter(r).EventParameterName = s },
		"item parameter": func(r *plan.RunFunnelReportRequest, s string) { paramFilter(r).ItemParameterName = s },
		"operation": func(r *plan.RunFunnelReportRequest, s string) {
			p := paramFilter(r)
			p.StringFilter, p.NumericFilter = nil, &plan.NumericFilter{Operation: s, Value: i64(1)}
		},
		"duration":  func(r *plan.RunFunnelReportRequest, s string) { r.Funnel.Steps[1].WithinDurationFromPriorStep = s },
		"breakdown": func(r *plan.RunFunnelReportRequest, s string) { r.FunnelBreakdown.BreakdownDimension.Name = s },
		"custom breakdown": func(r *plan.RunFunnelReportRequest, s string) {
			r.FunnelBreakdown.BreakdownDimension.Name = "customEvent:" + s
		},
		"visualization type": func(r *plan.RunFunnelReportRequest, s string) { r.FunnelVisualizationType = s },
	}
	for field, mutate := range refused {
		for _, s := range hostile {
			req := base()
			mutate(&req, s)
			code, out := postFunnel(t, h, "1", testKey, req)
			if s == "NULL" && (field == "parameter name" || field == "custom breakdown") {
				// A valid parameter name, bound as data: no event has it.
				if code != http.StatusOK {
					t.Errorf("%s = %q: got %d %s, want 200", field, s, code, out)
				}
				continue
			}
			if code != http.StatusBadRequest || !strings.Contains(string(out), `"status":"INVALID_ARGUMENT"`) {
				t.Errorf("%s = %q: got %d %s, want 400 INVALID_ARGUMENT", field, s, code, out)
			}
		}
	}
	data := map[string]func(r *plan.RunFunnelReportRequest, s string){
		"step name": func(r *plan.RunFunnelReportRequest, s string) { r.Funnel.Steps[0].Name = s },
		"event name": func(r *plan.RunFunnelReportRequest, s string) {
			r.Funnel.Steps[1].FilterExpression.FunnelEventFilter.EventName = s
		},
		"parameter value": func(r *plan.RunFunnelReportRequest, s string) { paramFilter(r).StringFilter.Value = s },
		"field value": func(r *plan.RunFunnelReportRequest, s string) {
			r.Funnel.Steps[2].FilterExpression.FunnelFieldFilter.StringFilter.Value = s
		},
		"field in list": func(r *plan.RunFunnelReportRequest, s string) {
			ff := r.Funnel.Steps[2].FilterExpression.FunnelFieldFilter
			ff.StringFilter, ff.InListFilter = nil, &plan.InListFilter{Values: []string{s, "Home"}, CaseSensitive: true}
		},
	}
	matched := 0
	for field, mutate := range data {
		for _, s := range hostile {
			req := base()
			mutate(&req, s)
			code, out := postFunnel(t, h, "1", testKey, req)
			if strings.ContainsRune(s, 0) {
				if code != http.StatusBadRequest {
					t.Errorf("%s = %q: got %d %s, want 400 for NUL", field, s, code, out)
				}
				continue
			}
			if code != http.StatusOK {
				t.Fatalf("%s = %q: got %d %s, want 200", field, s, code, out)
			}
			var got plan.RunFunnelReportResponse
			if err := json.Unmarshal(out, &got); err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(funnelOracle(req, f.zones[1], fixtureNow, f.events, 1), &got); diff != "" {
				t.Fatalf("%s = %q: differs from oracle (-want +got):\n%s", field, s, diff)
			}
			if field == "field value" && got.FunnelVisualization.Rows[2].MetricValues[0].Value != "0" {
				matched++
			}
		}
	}
	if matched == 0 {
		t.Fatalf("no hostile value matched the stored title O'Reilly; DROP: values are not compared as data")
	}
	var after int64
	if err := f.pool.QueryRow(ctx, "SELECT count(*) FROM events").Scan(&after); err != nil {
		t.Fatalf("events table after hostile requests: %v", err)
	}
	if after != before {
		t.Fatalf("events: %d rows before, %d after", before, after)
	}
}

// BenchmarkFunnel times a three-step closed funnel with a breakdown over
// the fixture's events of one site, beside a runReport over the same
// events as the baseline.
func BenchmarkFunnel(b *testing.B) {
	f := newFixture(b, 20000)
	h := f.handler(b)
	req := funnelReq(false, eventStep("view", "page_view"), eventStep("click", "click"), eventStep("buy", "purchase"))
	req.FunnelBreakdown = &plan.FunnelBreakdown{BreakdownDimension: &plan.Dimension{Name: "deviceCategory"}}
	report := plan.RunReportRequest{Dimensions: dims("deviceCategory"), Metrics: mets("eventCount", "activeUsers"),
		DateRanges: []plan.DateRange{{StartDate: "2026-03-01", EndDate: "today"}}}
	b.Run("funnel", func(b *testing.B) {
		for b.Loop() {
			if code, out := postFunnel(b, h, "1", testKey, req); code != http.StatusOK {
				b.Fatalf("%d %s", code, out)
			}
		}
	})
	b.Run("runReport", func(b *testing.B) {
		for b.Loop() {
			if code, out := post(b, h, "1", testKey, report); code != http.StatusOK {
				b.Fatalf("%d %s", code, out)
			}
		}
	})
}
