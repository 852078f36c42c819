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

// Session report expressions over sessions rows "e" (see schema.go).
var (
	// GA4's engaged session: 10 seconds or more of engagement time, 2 or
	// more page views, a key event, or seg=1 from the sender (gtag.js sets
	// it by the same rule). The time between first and last event is the
	// session's duration, not its engagement. storage/postgres
	// sessionState.engaged is the same rule for session rollups.
	engagedExpr = "(" + flagSet(protocol.FlagEngaged) + " OR e.engagement_ms >= 10000" +
		" OR e.page_views >= 2 OR e.key_events > 0)"
	engagedSessionsExpr = "count(*) FILTER (WHERE " + engagedExpr + ")"
	sessEventsExpr      = "COALESCE(sum(e.events), 0)"
	sessViewsExpr       = "COALESCE(sum(e.page_views), 0)"
)

// perSession divides a bigint aggregate by the number of sessions; 0 without sessions.
func perSession(x string) string { return "COALESCE((" + x + ")::float8 / NULLIF(count(*), 0), 0)" }

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

	// Session-scoped: only in session reports (see schema.go). Sessions are
	// counted on the day they start.
	{name: "sessions", uiName: "Sessions", category: "Session", typ: typeInteger,
		desc: "The number of sessions that began: by GA4 session id when sent, else ended by 30 minutes without events.",
		sess: "count(*)"},
	{name: "engagedSessions", uiName: "Engaged sessions", category: "Session", typ: typeInteger,
		desc: "The number of sessions that lasted 10 seconds or longer, had a key event or 2 or more page views.",
		sess: engagedSessionsExpr},
	{name: "engagementRate", uiName: "Engagement rate", category: "Session", typ: typeFloat,
		desc: "engagedSessions divided by sessions; 0 without sessions.", sess: perSession(engagedSessionsExpr)},
	{name: "bounceRate", uiName: "Bounce rate", category: "Session", typ: typeFloat,
		desc: "The share of sessions that were not engaged (1 - engagementRate); 0 without sessions.",
		sess: perSession("count(*) - " + engagedSessionsExpr)},
	{name: "averageSessionDuration", uiName: "Average session duration", category: "Session", typ: typeSeconds,
		desc: "The average time from a session's first to its last event, in seconds.",
		sess: "COALESCE(sum((extract(epoch FROM e.last_ts - e.ts) * 1000000)::bigint)::float8 / 1000000 / NULLIF(count(*), 0), 0)"},
	{name: "screenPageViewsPerSession", uiName: "Views per session", category: "Session", typ: typeFloat,
		desc: "screenPageViews divided by sessions.", sess: perSession(sessViewsExpr)},
	{name: "eventsPerSession", uiName: "Events per session", category: "Session", typ: typeFloat,
		desc: "eventCount divided by sessions.", sess: perSession(sessEventsExpr)},
	{name: "sessionsPerUser", uiName: "Sessions per user", category: "Session", typ: typeFloat,
		desc: "sessions divided by activeUsers; 0 without active users.",
		sess: "COALESCE(count(*)::float8 / NULLIF(" + activeUsersExpr + ", 0), 0)"},
}

// sessionMetricExprs are the event metrics' expressions in session
// reports: sums of the sessions' counters. Users, active users and new
// users read columns named as in events (flags ORs the events' flags,
// engagement_ms sums theirs), so those expressions serve unchanged.
var sessionMetricExprs = map[string]string{
	"eventCount":             sessEventsExpr + "::bigint",
	"screenPageViews":        sessViewsExpr + "::bigint",
	"keyEvents":              "COALESCE(sum(e.key_events), 0)::bigint",
	"totalUsers":             "count(DISTINCT e.visitor_id)",
	"activeUsers":            activeUsersExpr,
	"newUsers":               "count(DISTINCT e.visitor_id) FILTER (WHERE " + flagSet(protocol.FlagFirstVisit) + ")",
	"eventCountPerUser":      "COALESCE(" + sessEventsExpr + "::float8 / NULLIF(" + activeUsersExpr + ", 0), 0)",
	"userEngagementDuration": "COALESCE(sum(e.engagement_ms), 0)::float8 / 1000",
}

func init() {
	for _, m := range metricList {
		if !m.sessionOnly() {
			m.sess = sessionMetricExprs[m.name]
		}
		if m.sess == "" {
			panic("query: BUG: metric " + m.name + " has no session expression")
		}
	}
}

// metricsByName indexes metricList by API name.
var metricsByName = indexByName(metricList, func(m *metricDef) string { return m.name })
