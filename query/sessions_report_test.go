package query

import (
	"github.com/avila-analytics/avila/query/plan"
	"slices"
	"testing"
)

// TestSessionReportsMatchOracle runs session reports over the generated
// events (stored in time order through WriteBatch, which sessionizes them;
// every fourth visitor sends GA4 session ids) and compares each answer
// with the oracle's sessions.
func TestSessionReportsMatchOracle(t *testing.T) {
	f := newFixture(t, 1500)
	h := f.handler(t)
	sess := sessionMetrics()
	mixed := mets("sessions", "eventCount", "screenPageViews", "totalUsers", "activeUsers", "newUsers", "userEngagementDuration",
		"eventCountPerUser", "sessionsPerUser", "keyEvents")
	week := []plan.DateRange{{StartDate: "2026-03-02", EndDate: "2026-03-08"}}
	cases := []struct {
		name string
		site uint32
		req  plan.RunReportRequest
	}{
		{"all session metrics by landing page, aggregations", 1, plan.RunReportRequest{
			Dimensions: dims("landingPage"), Metrics: sess, DateRanges: week, MetricAggregations: allAggs}},
		{"by source / medium, two ranges", 2, plan.RunReportRequest{
			Dimensions: dims("sessionSourceMedium"), Metrics: sess, MetricAggregations: allAggs,
			DateRanges: []plan.DateRange{{StartDate: "2026-03-01", EndDate: "2026-03-04", Name: "early"}, {StartDate: "5daysAgo", EndDate: "today"}}}},
		{"by channel group and new vs returning", 3, plan.RunReportRequest{
			Dimensions: dims("sessionDefaultChannelGroup", "newVsReturning"), Metrics: sess, DateRanges: week, MetricAggregations: allAggs,
			OrderBys: []plan.OrderBy{byDim("newVsReturning", "", false), byMetric("sessions", true)}}},
		{"by device and date, across DST", 1, plan.RunReportRequest{
			Dimensions: dims("date", "deviceCategory"), Metrics: sess, MetricAggregations: allAggs,
			DateRanges: []plan.DateRange{{StartDate: "2026-03-06", EndDate: "2026-03-10"}},
			OrderBys:   []plan.OrderBy{byDim("date", "", false), byDim("deviceCategory", "", false)}}},
		{"session and event metrics by date, four ranges", 2, plan.RunReportRequest{
			Dimensions: dims("date"), Metrics: mixed, MetricAggregations: allAggs,
			DateRanges: []plan.DateRange{{StartDate: "2026-03-01", EndDate: "2026-03-02"}, {StartDate: "yesterday", EndDate: "today", Name: "recent"},
				{StartDate: "2026-03-03", EndDate: "2026-03-05"}, {StartDate: "2026-03-01", EndDate: "today"}}}},
		{"first user source, no dimensions filter", 1, plan.RunReportRequest{
			Dimensions: dims("firstUserSource", "newVsReturning"), Metrics: mets("sessions", "totalUsers", "newUsers"), DateRanges: week}},
		{"session metrics with a dimension filter", 3, plan.RunReportRequest{
			Dimensions: dims("landingPage", "deviceCategory"), Metrics: sess, DateRanges: week, MetricAggregations: allAggs,
			DimensionFilter: ptr(andF(notF(emptyF("deviceCategory")), strF("country", "BEGINS_WITH", "u", false)))}},
		{"filter on a session-scoped dimension", 1, plan.RunReportRequest{
			Dimensions: dims("sessionDefaultChannelGroup"), Metrics: mets("sessions", "bounceRate", "eventCount"), DateRanges: week,
			DimensionFilter: ptr(orF(strF("newVsReturning", "EXACT", "new", true), strF("landingPage", "BEGINS_WITH", "/a", true)))}},
		{"metric filter on a session metric", 2, plan.RunReportRequest{
			Dimensions: dims("landingPagePlusQueryString"), Metrics: mets("eventCount"), DateRanges: week,
			MetricFilter: ptr(numF("engagementRate", "GREATER_THAN", dbl(0.5)))}},
		{"session report without metrics", 3, plan.RunReportRequest{Dimensions: dims("landingPage", "newVsReturning"), DateRanges: week}},
		{"no dimensions", 2, plan.RunReportRequest{Metrics: sess, DateRanges: week, MetricAggregations: allAggs}},
	}
	events, rollups := f.routedHandler(t, plan.RouteEvents), f.routedHandler(t, plan.RouteRollups)
	rolled := 0
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			checkOracle(t, f, h, tc.site, tc.req, false)
			checkOracle(t, f, events, tc.site, tc.req, false)
			if f.coveredByRollups(t, tc.site, tc.req) {
				rolled++
				checkOracle(t, f, rollups, tc.site, tc.req, false)
			}
		})
	}
	// Session rollups answer reports by day and one session dimension
	// (the batches above wrote them, session by session, as the sessions
	// grew).
	if rolled < 3 {
		t.Errorf("%d session reports answered from session rollups, want at least 3", rolled)
	}
	// Every dimension that also describes a session, with every session
	// metric; each shows more than one value.
	for i, d := range plan.DimensionList {
		if d.Sess == "" {
			continue
		}
		t.Run("every dimension/"+d.Name, func(t *testing.T) {
			site := fixtureSites[i%len(fixtureSites)].id
			req := plan.RunReportRequest{
				Dimensions: dims(d.Name), Metrics: sess, MetricAggregations: allAggs,
				DateRanges: []plan.DateRange{{StartDate: "2026-03-02", EndDate: "2026-03-08"}, {StartDate: "yesterday", EndDate: "today", Name: "recent"}},
				OrderBys:   []plan.OrderBy{byDim(d.Name, "", false), byDim("dateRange", "", false)},
			}
			got := checkOracle(t, f, h, site, req, false)
			if f.coveredByRollups(t, site, req) {
				checkOracle(t, f, rollups, site, req, false)
			}
			values := map[string]bool{}
			for _, r := range got.Rows {
				values[r.DimensionValues[0].Value] = true
			}
			if len(values) < 2 && !slices.Contains([]string{"year", "month", "yearMonth"}, d.Name) {
				t.Fatalf("only values %v", values)
			}
		})
	}
}
