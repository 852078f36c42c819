package query

import (
	"errors"
	"github.com/avila-analytics/avila/query/engine/sql"
	"github.com/avila-analytics/avila/query/plan"
	"strings"
	"testing"
	"time"
)

func TestDecodeRequest(t *testing.T) {
	req, err := decodeRequest(strings.NewReader(`{"dimensions":[{"name":"date"}],"metrics":[{"name":"eventCount"}],
		"dateRanges":[{"startDate":"7daysAgo","endDate":"today","name":"week"}],"limit":"25","offset":5,
		"orderBys":[{"dimension":{"dimensionName":"date","orderType":"ALPHANUMERIC"},"desc":true}],
		"metricAggregations":["TOTAL"],"keepEmptyRows":true,"returnPropertyQuota":false}`))
	if err != nil {
		t.Fatal(err)
	}
	if req.Limit != 25 || req.Offset != 5 || req.DateRanges[0].Name != "week" || !req.OrderBys[0].Desc ||
		req.OrderBys[0].Dimension.DimensionName != "date" || req.MetricAggregations[0] != "TOTAL" || !req.KeepEmptyRows {
		t.Fatalf("decoded %+v", req)
	}
	for _, bad := range []string{`{"limit":1.5}`, `{"limit":"x"}`, `{"offset":true}`, `[]`, `{"metrics":{}}`, `{} {}`, `{"x":1}`} {
		_, err := decodeRequest(strings.NewReader(bad))
		var ae *plan.Error
		if !errors.As(err, &ae) || ae.Code != 400 {
			t.Errorf("decodeRequest(%s) = %v, want a 400 apiError", bad, err)
		}
	}
}

// TestSQLTextIndependentOfValues proves values are bound, never written
// into SQL: requests that differ only in dates, names, limit, offset,
// custom parameter names and filter values give the same statement text.
func TestSQLTextIndependentOfValues(t *testing.T) {
	s := testSite(t, "Europe/Paris")
	mk := func(start, end, name string, limit, offset plan.Int64, param, value string, n int64) string {
		req := &plan.RunReportRequest{Dimensions: dims("date", "pagePath", "customEvent:"+param, "country"), Metrics: mets("eventCount", "activeUsers", "eventCountPerUser"),
			DateRanges: []plan.DateRange{{StartDate: start, EndDate: end, Name: name}, {StartDate: "today", EndDate: "today"}},
			Limit:      limit, Offset: offset, MetricAggregations: allAggs,
			OrderBys: []plan.OrderBy{byDim("pagePath", "CASE_INSENSITIVE_ALPHANUMERIC", false), byDim("date", "NUMERIC", true)},
			DimensionFilter: ptr(andF(strF("customUser:"+param, "CONTAINS", value, false), strF("city", "PARTIAL_REGEXP", value, true),
				inListF("language", false, value, value), notF(numF("hour", "LESS_THAN", i64(n))))),
			MetricFilter: ptr(orF(numF("eventCount", "GREATER_THAN", i64(n)), betweenF("eventCountPerUser", dbl(float64(n)), i64(n))))}
		p, err := plan.Validate(req, s, fixtureNow)
		if err != nil {
			t.Fatal(err)
		}
		return sql.BuildReport(p).Text
	}
	a := mk("2026-01-01", "2026-01-31", "january", 10, 0, "plan", "gold", 3)
	b := mk("30daysAgo", "yesterday", "'; DROP TABLE events; --", 250000, 99, "DROP_TABLE", "'; DROP TABLE events; --", -7)
	if a != b {
		t.Fatalf("statement text depends on values:\n%s\n%s", a, b)
	}
	for _, v := range []string{"DROP", "2026", "plan", "gold", "United", "English"} {
		if strings.Contains(b, v) {
			t.Fatalf("statement holds request value %q:\n%s", v, b)
		}
	}
}

func testSite(t testing.TB, zone string) plan.Site {
	loc, err := time.LoadLocation(zone)
	if err != nil {
		t.Fatal(err)
	}
	return plan.Site{ID: 7, TimeZone: zone, Loc: loc, Currency: "USD"}
}

// FuzzRunReportRequest feeds arbitrary bodies through decoding, validation
// and the SQL builder: nothing panics, refusals are 400s, accepted plans
// are bounded.
func FuzzRunReportRequest(f *testing.F) {
	f.Add(`{"dimensions":[{"name":"date"}],"metrics":[{"name":"eventCount"}],"dateRanges":[{"startDate":"7daysAgo","endDate":"today"}]}`)
	f.Add(`{"metrics":[{"name":"activeUsers"}],"dateRanges":[{"startDate":"2026-01-01","endDate":"2026-01-02"},{"startDate":"yesterday","endDate":"today","name":"x"}],"orderBys":[{"dimension":{"dimensionName":"dateRange"},"desc":true}],"limit":"3","offset":"1","metricAggregations":["TOTAL","MAXIMUM"]}`)
	f.Add(`{"dimensions":[{"name":"pagePath"}],"dateRanges":[{"startDate":"0001-01-01","endDate":"9998-12-31"}],"orderBys":[{"dimension":{"dimensionName":"pagePath","orderType":"CASE_INSENSITIVE_ALPHANUMERIC"}}]}`)
	f.Add(`{"metrics":[{"name":"eventCount"}],"dateRanges":[{"startDate":"today","endDate":"today"}],"limit":9999999999}`)
	f.Add(`{"limit":null,"dimensionFilter":null}`)
	f.Add(`{"dimensions":[{"name":"customEvent:plan"}],"metrics":[{"name":"eventCountPerUser"}],"dateRanges":[{"startDate":"today","endDate":"today"}],"dimensionFilter":{"andGroup":{"expressions":[{"filter":{"fieldName":"city","stringFilter":{"matchType":"PARTIAL_REGEXP","value":"(?i)z[üu]"}}},{"notExpression":{"filter":{"fieldName":"hour","betweenFilter":{"fromValue":{"int64Value":"1"},"toValue":{"doubleValue":3.5}}}}}]}},"metricFilter":{"filter":{"fieldName":"eventCount","numericFilter":{"operation":"GREATER_THAN","value":{"int64Value":"2"}}}}}`)
	f.Add(`{"dimensions":[{"name":"hour"}],"dateRanges":[{"startDate":"today","endDate":"today"}],"orderBys":[{"dimension":{"dimensionName":"hour","orderType":"NUMERIC"},"desc":true}],"dimensionFilter":{"orGroup":{"expressions":[{"filter":{"fieldName":"country","inListFilter":{"values":["Japan"]}}},{"filter":{"fieldName":"browser","emptyFilter":{}}}]}}}`)
	s := testSite(f, "Asia/Kolkata")
	f.Fuzz(func(t *testing.T, body string) {
		req, err := decodeRequest(strings.NewReader(body))
		if err != nil {
			var ae *plan.Error
			if !errors.As(err, &ae) || ae.Code != 400 {
				t.Fatalf("decode error %v is not a 400", err)
			}
			return
		}
		p, ae := plan.Validate(req, s, fixtureNow)
		if ae != nil {
			if ae.Code != 400 {
				t.Fatalf("validate error %v is not a 400", ae)
			}
			return
		}
		if p.Limit < 1 || p.Limit > plan.MaxLimit || p.Offset < 0 || len(p.Ranges) == 0 {
			t.Fatalf("unbounded plan: limit %d offset %d ranges %d", p.Limit, p.Offset, len(p.Ranges))
		}
		for _, r := range p.Ranges {
			if !r.Lo.Before(r.Hi) {
				t.Fatalf("empty range [%s, %s)", r.Lo, r.Hi)
			}
		}
		q := sql.BuildReport(p)
		if len(q.Args) < sql.FixedArgs || strings.Count(q.Text, "$") < sql.FixedArgs {
			t.Fatalf("%d args", len(q.Args))
		}
	})
}

func BenchmarkBuildSQL(b *testing.B) {
	s := testSite(b, "America/New_York")
	req := &plan.RunReportRequest{Dimensions: dims("date", "pagePath", "eventName"), Metrics: mets("eventCount", "screenPageViews", "activeUsers"),
		DateRanges: []plan.DateRange{{StartDate: "28daysAgo", EndDate: "yesterday"}, {StartDate: "56daysAgo", EndDate: "29daysAgo"}},
		OrderBys:   []plan.OrderBy{byMetric("screenPageViews", true)}, MetricAggregations: allAggs}
	b.ReportAllocs()
	for b.Loop() {
		p, err := plan.Validate(req, s, fixtureNow)
		if err != nil {
			b.Fatal(err)
		}
		_ = sql.BuildReport(p)
	}
}
