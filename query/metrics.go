package query

import (
	"strconv"

	"github.com/avila-analytics/avila/protocol"
)

// flagSet is SQL testing events.flags for any of the given protocol bits.
func flagSet(bits uint8) string { return "e.flags & " + strconv.Itoa(int(bits)) + " <> 0" }

// Metric expressions shared by several metrics.
var (
	// An active user, as GA4 counts them: a visitor with an engaged
	// session, a first visit, or engagement time on some event.
	activeUsersExpr = "count(DISTINCT e.visitor_id) FILTER (WHERE " +
		flagSet(protocol.FlagEngaged|protocol.FlagFirstVisit) + " OR e.engagement_ms > 0)"
	// page_view's dictionary id is looked up once per statement (an InitPlan),
	// so counting page views reads no dictionary row per event.
	pageViewsExpr = "count(*) FILTER (WHERE e.name_id = (SELECT id FROM dims WHERE site_id = $1 AND kind = 1 AND value = 'page_view'))"
)

// metricList is the metric allowlist in the order metadata lists it.
// Visitors are daily keyed hashes, so user counts over several days count
// visitor-days; within one day they count visitors.
var metricList = []*metricDef{
	{name: "eventCount", uiName: "Event count", category: "Event", typ: typeInteger,
		desc: "The number of events.", expr: "count(*)"},
	{name: "screenPageViews", uiName: "Views", category: "Page / screen", typ: typeInteger,
		desc: "The number of page_view events.", expr: pageViewsExpr},
	{name: "keyEvents", uiName: "Key events", category: "Event", typ: typeInteger,
		desc: "The number of events marked as key events.", expr: "count(*) FILTER (WHERE " + flagSet(protocol.FlagKeyEvent) + ")"},
	{name: "totalUsers", uiName: "Total users", category: "User", typ: typeInteger,
		desc: "The number of distinct visitors who logged any event.", expr: "count(DISTINCT e.visitor_id)"},
	{name: "activeUsers", uiName: "Active users", category: "User", typ: typeInteger,
		desc: "The number of distinct visitors with an engaged session, a first visit or engagement time.", expr: activeUsersExpr},
	{name: "newUsers", uiName: "New users", category: "User", typ: typeInteger,
		desc: "The number of distinct visitors on their first visit.",
		expr: "count(DISTINCT e.visitor_id) FILTER (WHERE " + flagSet(protocol.FlagFirstVisit) + ")"},
	{name: "eventCountPerUser", uiName: "Event count per user", category: "Event", typ: typeFloat,
		desc: "eventCount divided by activeUsers; 0 without active users.",
		expr: "COALESCE(count(*)::float8 / NULLIF(" + activeUsersExpr + ", 0), 0)"},
	{name: "userEngagementDuration", uiName: "User engagement", category: "User", typ: typeSeconds,
		desc: "The total engagement time reported with events, in seconds.",
		expr: "COALESCE(sum(e.engagement_ms), 0)::float8 / 1000"},
}

// metricsByName indexes metricList by API name.
var metricsByName = indexByName(metricList, func(m *metricDef) string { return m.name })
