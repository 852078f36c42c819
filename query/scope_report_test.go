package query

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/avila-analytics/avila/protocol"
	"github.com/avila-analytics/avila/query/engine/rollups"
	"github.com/avila-analytics/avila/query/plan"
)

// TestEventSessionReportsMatchOracle: session metrics by event-scoped
// dimensions (pagePath, pageTitle, eventName, custom parameters …) count,
// per value, the sessions in which it occurred, as GA4 does; the oracle
// counts them from its own sessions. The sessions sketches by page path
// and title (postgres.RollupPageSessions, RollupTitleSessions) answer
// sessions and event counters by one of those alone (rolled); the
// raw-event engine answers the others, and every engine that answers
// agrees.
func TestEventSessionReportsMatchOracle(t *testing.T) {
	f := newFixture(t, 1500)
	h := f.handler(t)
	events, rolled := f.routedHandler(t, plan.RouteEvents), f.routedHandler(t, plan.RouteRollups)
	week := []plan.DateRange{{StartDate: "2026-03-02", EndDate: "2026-03-08"}}
	cases := []struct {
		name   string
		site   uint32
		req    plan.RunReportRequest
		rolled bool
	}{
		{"pagePath by sessions and active users", 1, plan.RunReportRequest{
			Dimensions: dims("pagePath"), Metrics: mets("sessions", "activeUsers"), DateRanges: week, MetricAggregations: allAggs}, false},
		{"pageTitle by sessions", 2, plan.RunReportRequest{
			Dimensions: dims("pageTitle"), Metrics: mets("sessions"), DateRanges: week, MetricAggregations: allAggs}, true},
		{"pagePath by sessions and page views", 3, plan.RunReportRequest{
			Dimensions: dims("pagePath"), Metrics: mets("sessions", "screenPageViews"), DateRanges: week, MetricAggregations: allAggs}, true},
		{"every session metric with every event metric by event name, two ranges", 3, plan.RunReportRequest{
			Dimensions: dims("eventName"), Metrics: append(sessionMetrics(), mets("eventCount")...), MetricAggregations: allAggs,
			DateRanges: []plan.DateRange{{StartDate: "2026-03-01", EndDate: "2026-03-04", Name: "early"}, {StartDate: "5daysAgo", EndDate: "today"}}}, false},
		{"event metrics and users by page and date, across DST", 1, plan.RunReportRequest{
			Dimensions: dims("date", "pagePath"), Metrics: append(mets("sessions", "engagedSessions"), allMetrics()...),
			DateRanges: []plan.DateRange{{StartDate: "2026-03-06", EndDate: "2026-03-10"}}, MetricAggregations: allAggs,
			OrderBys: []plan.OrderBy{byDim("date", "", false), byDim("pagePath", "", false)}}, false},
		{"session- and event-scoped together", 2, plan.RunReportRequest{
			Dimensions: dims("sessionSource", "hostName"), Metrics: mets("sessions", "bounceRate", "screenPageViews"), DateRanges: week}, false},
		{"custom parameter with a session metric filter", 3, plan.RunReportRequest{
			Dimensions: dims("customEvent:plan"), Metrics: mets("eventCount", "sessions"), DateRanges: week,
			MetricFilter: ptr(numF("sessions", "GREATER_THAN", dbl(1)))}, false},
		{"session report filtered on an event-scoped dimension", 1, plan.RunReportRequest{
			Dimensions: dims("deviceCategory"), Metrics: mets("sessions", "averageSessionDuration"), DateRanges: week, MetricAggregations: allAggs,
			DimensionFilter: ptr(strF("pagePath", "BEGINS_WITH", "/a", true))}, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got := checkOracle(t, f, h, tc.site, tc.req, false)
			checkOracle(t, f, events, tc.site, tc.req, false)
			if got := f.coveredByRollups(t, tc.site, tc.req); got != tc.rolled {
				t.Fatalf("rollups cover it: %v, want %v", got, tc.rolled)
			}
			if tc.rolled {
				checkOracle(t, f, rolled, tc.site, tc.req, false)
			}
			// A value's sessions together exceed the range's sessions when
			// sessions hold several values: each session is counted once
			// per value it holds, and once in the total.
			if i := metricIndexOf(tc.req, "sessions"); i >= 0 && len(tc.req.Dimensions) == 1 && tc.req.MetricAggregations != nil {
				sum := 0.0
				for _, r := range got.Rows {
					if r.DimensionValues[len(r.DimensionValues)-1].Value == "date_range_1" {
						continue
					}
					sum += number(t, r.MetricValues[i].Value)
				}
				if total := number(t, got.Totals[0].MetricValues[i].Value); sum <= total {
					t.Fatalf("rows sum to %v sessions, total %v: rows should count a session under each of its values", sum, total)
				}
			}
		})
	}
	// Every event-scoped dimension with sessions, the ecommerce ones
	// (transactionId, currencyCode: parameters of an event) among them:
	// a value's sessions are those with an event holding it, which may
	// have begun before the range.
	for i, d := range plan.DimensionList {
		if d.Scope != plan.ScopeEvent {
			continue
		}
		t.Run("every event-scoped dimension/"+d.Name, func(t *testing.T) {
			site := fixtureSites[i%len(fixtureSites)].id
			checkOracle(t, f, h, site, plan.RunReportRequest{Dimensions: dims(d.Name), Metrics: mets("sessions", "engagementRate"),
				DateRanges: week, MetricAggregations: allAggs}, false)
		})
	}
}

// TestSessionDimensionsOnEveryEvent: session- and user-scoped dimensions
// hold on each event of the session, so page views by session source put
// no view of a sourced session under (not set), whichever engine answers.
func TestSessionDimensionsOnEveryEvent(t *testing.T) {
	f := newFixture(t, 1500)
	h := f.handler(t)
	events, rolled := f.routedHandler(t, plan.RouteEvents), f.routedHandler(t, plan.RouteRollups)
	week := []plan.DateRange{{StartDate: "2026-03-02", EndDate: "2026-03-08"}}
	for _, d := range []string{"sessionSource", "sessionMedium", "sessionCampaignName", "sessionDefaultChannelGroup", "sessionSourceMedium",
		"landingPage", "landingPagePlusQueryString", "newVsReturning", "firstUserSource"} {
		t.Run(d, func(t *testing.T) {
			for _, site := range []uint32{1, 2, 3} {
				req := plan.RunReportRequest{Dimensions: dims(d), Metrics: mets("screenPageViews", "eventCount", "activeUsers"),
					DateRanges: week, MetricAggregations: allAggs}
				got := checkOracle(t, f, h, site, req, false)
				checkOracle(t, f, events, site, req, false)
				covered := f.coveredByRollups(t, site, req)
				if traffic := rollups.SessionTrafficDim(plan.DimensionsByName[d]); covered != traffic {
					t.Fatalf("rollups cover %s: %v, want %v (the rows by session traffic source)", d, covered, traffic)
				}
				if covered {
					checkOracle(t, f, rolled, site, req, false)
				}
				switch d {
				case "landingPage", "landingPagePlusQueryString", "sessionMedium", "sessionCampaignName":
					continue // a session without a page view, or a utm_source without utm_medium
				}
				for _, r := range got.Rows {
					if r.DimensionValues[0].Value == plan.NotSet {
						t.Fatalf("site %d: %s (not set) holds %v: every fixture session has a value", site, d, r.MetricValues)
					}
				}
			}
		})
	}
}

// TestSessionTrafficRollupsMatchOracle: event reports by a session's
// traffic source read the rows by session traffic source
// (postgres.RollupSessionTraffic) and give the oracle's numbers, which
// it computes from each event's session: with time dimensions, two
// traffic dimensions of one profile, a filter, users and key events, over
// packed days and days written after.
func TestSessionTrafficRollupsMatchOracle(t *testing.T) {
	f := newFixture(t, 1500)
	rolled, events := f.routedHandler(t, plan.RouteRollups), f.routedHandler(t, plan.RouteEvents)
	week := []plan.DateRange{{StartDate: "2026-03-02", EndDate: "2026-03-08"}}
	for _, tc := range []struct {
		name string
		site uint32
		req  plan.RunReportRequest
	}{
		{"top sources by page views", 1, plan.RunReportRequest{Dimensions: dims("sessionSource"),
			Metrics: mets("screenPageViews"), DateRanges: week, Limit: 10, OrderBys: []plan.OrderBy{byMetric("screenPageViews", true)}}},
		{"source and medium by date, every rolled metric", 2, plan.RunReportRequest{Dimensions: dims("date", "sessionSource", "sessionMedium"),
			Metrics:    mets("eventCount", "screenPageViews", "keyEvents", "totalUsers", "activeUsers", "newUsers", "userEngagementDuration"),
			DateRanges: week, MetricAggregations: allAggs}},
		{"source / medium filtered on the channel group, two ranges", 3, plan.RunReportRequest{Dimensions: dims("sessionSourceMedium"),
			Metrics: mets("eventCount", "keyEvents"), DimensionFilter: ptr(strF("sessionDefaultChannelGroup", "EXACT", "Direct", false)),
			DateRanges: []plan.DateRange{{StartDate: "2026-03-01", EndDate: "2026-03-04", Name: "early"}, {StartDate: "5daysAgo", EndDate: "today"}}}},
		{"campaign and channel", 1, plan.RunReportRequest{Dimensions: dims("sessionCampaignName", "sessionDefaultChannelGroup"),
			Metrics: mets("eventCount", "activeUsers"), DateRanges: week}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if !f.coveredByRollups(t, tc.site, tc.req) {
				t.Fatal("the rollups should answer an event report by session traffic source")
			}
			checkOracle(t, f, rolled, tc.site, tc.req, true)
			checkOracle(t, f, events, tc.site, tc.req, true)
			// A rebuild (avila rebuild, an erasure's days) finds each
			// event's session in the sessions table and writes the same.
			if err := f.store.RebuildRollups(context.Background(), tc.site); err != nil {
				t.Fatal(err)
			}
			checkOracle(t, f, rolled, tc.site, tc.req, true)
		})
	}
}

// knownSeed is a small site of named sessions whose reports are easy to
// read off by hand. Site 3 (UTC).
func knownSeed() []protocol.Event {
	at := func(day, hour, minute, sec int) int64 {
		return time.Date(2026, 3, day, hour, minute, sec, 0, time.UTC).UnixMicro()
	}
	const (
		ann  = uint64(1) << 58 // two sessions on the 9th: from a newsletter, then from Google
		bob  = uint64(2) << 58 // one direct session
		cleo = uint64(3) << 58 // one direct visit on each of four days, one user id throughout (a consenting client)
	)
	ev := func(v uint64, ts int64, name, path, title, referrer string, flags uint8, engage int64) protocol.Event {
		return protocol.Event{Site: 3, Visitor: v, TimeMicros: ts, Name: name, Host: "example.com", Path: path, Title: title,
			Referrer: referrer, Flags: flags, EngageMs: engage, Country: "US", Browser: "Chrome", OS: "Windows", Device: "desktop"}
	}
	out := []protocol.Event{
		ev(ann, at(9, 10, 0, 0), "page_view", "/a?utm_source=news&utm_medium=email", "A", "", protocol.FlagFirstVisit|protocol.FlagSessionStart, 0),
		ev(ann, at(9, 10, 1, 0), "page_view", "/b", "B", "", 0, 3000),
		ev(ann, at(9, 10, 2, 0), "click", "/b", "B", "", 0, 0),
		ev(ann, at(9, 15, 0, 0), "page_view", "/b", "B", "https://www.google.com/", protocol.FlagSessionStart, 0),
		ev(bob, at(9, 11, 0, 0), "page_view", "/a", "A", "", protocol.FlagFirstVisit|protocol.FlagSessionStart, 0),
		ev(bob, at(9, 11, 0, 5), "scroll", "/a", "A", "", 0, 0),
	}
	for i, day := range []int{1, 5, 8, 9} {
		flags := protocol.FlagSessionStart
		if i == 0 {
			flags |= protocol.FlagFirstVisit
		}
		e := ev(cleo, at(day, 9, 0, 0), "page_view", "/c", "C", "", flags, 5000)
		e.SessionNum = int32(i + 1) // the sender's session count: returning after the first
		out = append(out, e)
	}
	return out
}

// TestKnownSeedReports checks the reports of the scope rules on knownSeed
// against figures read off by hand, and the oracle, from every engine.
func TestKnownSeedReports(t *testing.T) {
	f := newFixture(t, 0)
	ctx := context.Background()
	f.events = knownSeed()
	if _, err := f.writeBatch(ctx, "seed", 1, f.events, nil); err != nil {
		t.Fatal(err)
	}
	markSessions(f.events, []uint32{3})
	h := f.handler(t)
	events, rolled := f.routedHandler(t, plan.RouteEvents), f.routedHandler(t, plan.RouteRollups)
	month := []plan.DateRange{{StartDate: "29daysAgo", EndDate: "today"}}
	f1 := func(req plan.RunReportRequest, want map[string][]string) {
		t.Helper()
		got := checkOracle(t, f, h, 3, req, false)
		checkOracle(t, f, events, 3, req, false)
		if f.coveredByRollups(t, 3, req) {
			checkOracle(t, f, rolled, 3, req, false)
		}
		rows := map[string][]string{}
		for _, r := range got.Rows {
			var ms []string
			for _, m := range r.MetricValues {
				ms = append(ms, m.Value)
			}
			var ds []string
			for _, d := range r.DimensionValues {
				ds = append(ds, d.Value)
			}
			rows[strings.Join(ds, "|")] = ms
		}
		if fmt.Sprint(rows) != fmt.Sprint(want) {
			t.Fatalf("%v by %v: got %v, want %v", mnames(req), dnames(req), rows, want)
		}
	}
	// Views by the session's source: the newsletter session's second view
	// is the newsletter's too.
	f1(plan.RunReportRequest{Dimensions: dims("sessionSource"), Metrics: mets("screenPageViews"), DateRanges: month},
		map[string][]string{"news": {"2"}, "google": {"1"}, "(direct)": {"5"}})
	// A page's sessions: the sessions in which it was viewed.
	f1(plan.RunReportRequest{Dimensions: dims("pagePath"), Metrics: mets("sessions", "activeUsers"), DateRanges: month},
		map[string][]string{"/a": {"2", "2"}, "/b": {"2", "1"}, "/c": {"4", "1"}})
	f1(plan.RunReportRequest{Dimensions: dims("pageTitle"), Metrics: mets("sessions"), DateRanges: month},
		map[string][]string{"A": {"2"}, "B": {"2"}, "C": {"4"}})
	// Ann's and Bob's first sessions and Cleo's first day are new.
	f1(plan.RunReportRequest{Dimensions: dims("newVsReturning"), Metrics: mets("eventCount"), DateRanges: month},
		map[string][]string{"new": {"6"}, "returning": {"4"}})
	// Cleo, seen on four days under one id, is one user over the month;
	// the rollups merge her daily sketches rather than adding days.
	users := plan.RunReportRequest{Metrics: mets("totalUsers", "activeUsers"), DateRanges: month,
		DimensionFilter: ptr(strF("pagePath", "EXACT", "/c", true))}
	f1(users, map[string][]string{"": {"1", "1"}})
	users.DimensionFilter = nil
	if !f.coveredByRollups(t, 3, users) {
		t.Fatal("the rollups should answer users over the month")
	}
	f1(users, map[string][]string{"": {"3", "3"}})
	f1(plan.RunReportRequest{Dimensions: dims("date"), Metrics: mets("totalUsers"), DateRanges: month,
		DimensionFilter: ptr(strF("pagePath", "EXACT", "/c", true))},
		map[string][]string{"20260301": {"1"}, "20260305": {"1"}, "20260308": {"1"}, "20260309": {"1"}})
}

func mnames(req plan.RunReportRequest) []string {
	var out []string
	for _, m := range req.Metrics {
		out = append(out, m.Name)
	}
	return out
}

func dnames(req plan.RunReportRequest) []string {
	var out []string
	for _, d := range req.Dimensions {
		out = append(out, d.Name)
	}
	return out
}

func metricIndexOf(req plan.RunReportRequest, name string) int {
	for i, m := range req.Metrics {
		if m.Name == name {
			return i
		}
	}
	return -1
}

func number(t *testing.T, s string) float64 {
	t.Helper()
	var v float64
	if err := json.Unmarshal([]byte(s), &v); err != nil {
		t.Fatalf("metric value %q: %v", s, err)
	}
	return v
}

// TestCompatibilityRules: the scope rules refuse GA4's incompatible pairs
// with a 400 naming both, and accept what GA4 accepts.
func TestCompatibilityRules(t *testing.T) {
	item := &plan.DimDef{Name: "itemName", Scope: plan.ScopeItem, Expr: "'x'"}
	itemRevenue := &plan.MetricDef{Name: "itemRevenue", Scope: plan.ScopeItem, Expr: "0", Sess: "0", Mixed: "0"}
	f := func(ds []*plan.DimDef, ms []*plan.MetricDef, ok bool) {
		t.Helper()
		c := plan.Conflict(ds, ms)
		if (c == nil) != ok {
			t.Fatalf("%v × %v: conflict %v, want compatible %v", ds, ms, c, ok)
		}
	}
	d, m := plan.DimensionsByName, plan.MetricsByName
	f([]*plan.DimDef{d["pagePath"]}, []*plan.MetricDef{m["sessions"], m["activeUsers"]}, true)
	f([]*plan.DimDef{d["pageTitle"], d["sessionSource"]}, []*plan.MetricDef{m["bounceRate"], m["eventCount"]}, true)
	f([]*plan.DimDef{d["newVsReturning"]}, []*plan.MetricDef{m["eventCount"]}, true)
	f([]*plan.DimDef{item}, []*plan.MetricDef{m["eventCount"]}, false)
	f([]*plan.DimDef{item}, []*plan.MetricDef{itemRevenue, m["sessions"], m["activeUsers"]}, true)
	f([]*plan.DimDef{{Name: "source", Scope: plan.ScopeAttribution}}, []*plan.MetricDef{m["screenPageViews"]}, false)
	// A metric without a per-session form cannot be reported by an
	// event-scoped dimension beside a session metric.
	f([]*plan.DimDef{d["pagePath"]}, []*plan.MetricDef{m["sessions"], {Name: "x", Scope: plan.ScopeEvent, Expr: "0", Sess: "0"}}, false)
	f([]*plan.DimDef{d["pagePath"], d["sessionSource"]}, []*plan.MetricDef{m["sessions"], m["bounceRate"]}, true)
	if c := plan.Conflict([]*plan.DimDef{item}, []*plan.MetricDef{m["eventCount"]}); c == nil ||
		!strings.Contains(c.Message(), `item-scoped dimension "itemName" and the event-scoped metric "eventCount"`) {
		t.Fatalf("an item-scoped dimension with eventCount: %v", c)
	}

	fx := newFixture(t, 0)
	code, out := post(t, fx.handler(t), "1", testKey, plan.RunReportRequest{Dimensions: dims("pagePath"), Metrics: mets("sessions"),
		DateRanges: []plan.DateRange{{StartDate: "today", EndDate: "today"}}})
	if code != http.StatusOK {
		t.Fatalf("pagePath × sessions: %d %s", code, out)
	}
}
