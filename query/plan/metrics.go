package plan

import (
	"slices"
	"strconv"

	"github.com/avila-analytics/avila/protocol"
)

// flagSet is SQL testing events.flags for any of the given protocol bits.
func flagSet(bits uint8) string { return "e.flags & " + strconv.Itoa(int(bits)) + " <> 0" }

// Metric expressions shared by several metrics.
var (
	// An active user, as GA4 counts them (BigQuery export's
	// is_active_user): a user active at some point of the event's local
	// day, by an event with an engaged session's flag, a first visit or
	// engagement time, before or after the event counted. e.day_active
	// tells it of each event (events_source.go, the range's active
	// user-days); over the whole range it counts the users active on some
	// day of it.
	activeUsersExpr = "count(DISTINCT e.visitor_id) FILTER (WHERE e.day_active)"
	// sessActiveUsersExpr is activeUsers over sessions rows "e": the
	// visitors of sessions with an event on a day on which they are
	// active (e.day_active, events_source.go sessionsDayActive).
	sessActiveUsersExpr = "count(DISTINCT e.visitor_id) FILTER (WHERE e.day_active)"
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
	engagedExpr         = sessionEngagedExpr("e.flags", "e.engagement_ms", "e.page_views", "e.key_events")
	engagedSessionsExpr = "count(*) FILTER (WHERE " + engagedExpr + ")"
	sessEventsExpr      = "COALESCE(sum(e.events), 0)"
	sessViewsExpr       = "COALESCE(sum(e.page_views), 0)"
)

// sessionEngagedExpr is GA4's engaged session over a session's columns.
func sessionEngagedExpr(flags, engageMs, views, keys string) string {
	return "(" + flags + " & " + strconv.Itoa(int(protocol.FlagEngaged)) + " <> 0 OR " +
		engageMs + " >= 10000 OR " + views + " >= 2 OR " + keys + " > 0)"
}

// perSession divides a bigint aggregate by the number of sessions; 0 without sessions.
func perSession(x string) string { return "COALESCE((" + x + ")::float8 / NULLIF(count(*), 0), 0)" }

// MetricList is the metric allowlist in the order metadata lists it. User
// counts are distinct visitor ids over the whole range (events: exact;
// rollups: merged sketches). A visitor id is one user across days when the
// agent may use the client's identity; a cookieless visitor's id is daily,
// so such a visitor counts once per day over several days.
var MetricList = slices.Concat([]*MetricDef{
	{Name: "eventCount", UIName: "Event count", Category: "Event", Typ: TypeInteger,
		Desc: "The number of events.", Expr: "count(*)"},
	{Name: "screenPageViews", UIName: "Views", Category: "Page / screen", Typ: TypeInteger,
		Desc: "The number of page_view events.", Expr: pageViewsExpr},
	{Name: "keyEvents", UIName: "Key events", Category: "Event", Typ: TypeInteger,
		Desc: "The number of events marked as key events.", Expr: "count(*) FILTER (WHERE " + flagSet(protocol.FlagKeyEvent) + ")"},
	{Name: "totalUsers", UIName: "Total users", Category: "User", Typ: TypeInteger,
		Desc: "The number of distinct visitors who logged any event.", Expr: "count(DISTINCT e.visitor_id)"},
	{Name: "activeUsers", UIName: "Active users", Category: "User", Typ: TypeInteger,
		Desc: "The number of distinct users active (an engaged session, a first visit or engagement time) on a day of the range; by an event-scoped dimension, those who triggered an event of the value on a day on which they were active.", Expr: activeUsersExpr},
	{Name: "newUsers", UIName: "New users", Category: "User", Typ: TypeInteger,
		Desc: "The number of distinct visitors on their first visit.",
		Expr: "count(DISTINCT e.visitor_id) FILTER (WHERE " + flagSet(protocol.FlagFirstVisit) + ")"},
	{Name: "eventCountPerUser", UIName: "Event count per user", Category: "Event", Typ: TypeFloat,
		Desc: "eventCount divided by activeUsers; 0 without active users.",
		Expr: "COALESCE(count(*)::float8 / NULLIF(" + activeUsersExpr + ", 0), 0)"},
	{Name: "userEngagementDuration", UIName: "User engagement", Category: "User", Typ: typeSeconds,
		Desc: "The total engagement time reported with events, in seconds.",
		Expr: "COALESCE(sum(e.engagement_ms), 0)::float8 / 1000"},

	// Session metrics (see schema.go): in session reports sessions are
	// counted on the day they start; by event-scoped dimensions, on the
	// days of their events in the range.
	{Name: "sessions", UIName: "Sessions", Category: "Session", Typ: TypeInteger,
		Desc: "The number of sessions that began: by GA4 session id when sent, else ended by 30 minutes without events. By an event-scoped dimension (pagePath …): the sessions in which the value occurred.",
		Sess: "count(*)"},
	{Name: "engagedSessions", UIName: "Engaged sessions", Category: "Session", Typ: TypeInteger,
		Desc: "The number of sessions that lasted 10 seconds or longer, had a key event or 2 or more page views.",
		Sess: engagedSessionsExpr},
	{Name: "engagementRate", UIName: "Engagement rate", Category: "Session", Typ: TypeFloat,
		Desc: "engagedSessions divided by sessions; 0 without sessions.", Sess: perSession(engagedSessionsExpr)},
	{Name: "bounceRate", UIName: "Bounce rate", Category: "Session", Typ: TypeFloat,
		Desc: "The share of sessions that were not engaged (1 - engagementRate); 0 without sessions.",
		Sess: perSession("count(*) - " + engagedSessionsExpr)},
	{Name: "averageSessionDuration", UIName: "Average session duration", Category: "Session", Typ: typeSeconds,
		Desc: "The average time from a session's first to its last event, in seconds.",
		Sess: "COALESCE(sum((extract(epoch FROM e.last_ts - e.ts) * 1000000)::bigint)::float8 / 1000000 / NULLIF(count(*), 0), 0)"},
	{Name: "screenPageViewsPerSession", UIName: "Views per session", Category: "Session", Typ: TypeFloat,
		Desc: "screenPageViews divided by sessions.", Sess: perSession(sessViewsExpr)},
	{Name: "eventsPerSession", UIName: "Events per session", Category: "Session", Typ: TypeFloat,
		Desc: "eventCount divided by sessions.", Sess: perSession(sessEventsExpr)},
	{Name: "sessionsPerUser", UIName: "Sessions per user", Category: "Session", Typ: TypeFloat,
		Desc: "sessions divided by activeUsers; 0 without active users.",
		Sess: "COALESCE(count(*)::float8 / NULLIF(" + sessActiveUsersExpr + ", 0), 0)"},
}, CommerceMetrics)

// sessionMetricExprs are the event metrics' expressions in session
// reports: sums of the sessions' counters. Users and new users read
// columns named as in events (flags ORs the events' flags, engagement_ms
// sums theirs); active users read the sessions' day_active.
var sessionMetricExprs = map[string]string{
	"eventCount":             sessEventsExpr + "::bigint",
	"screenPageViews":        sessViewsExpr + "::bigint",
	"keyEvents":              "COALESCE(sum(e.key_events), 0)::bigint",
	"totalUsers":             "count(DISTINCT e.visitor_id)",
	"activeUsers":            sessActiveUsersExpr,
	"newUsers":               "count(DISTINCT e.visitor_id) FILTER (WHERE " + flagSet(protocol.FlagFirstVisit) + ")",
	"eventCountPerUser":      "COALESCE(" + sessEventsExpr + "::float8 / NULLIF(" + sessActiveUsersExpr + ", 0), 0)",
	"userEngagementDuration": "COALESCE(sum(e.engagement_ms), 0)::float8 / 1000",
}

// Event-session reports (schema.go) group events joined to their sessions
// in two steps: the statement's CTE x has one row per group and session
// with the columns below, and each metric's mixed expression aggregates a
// group's x rows. Session attributes (engaged, duration) are the whole
// session's; event counters count the group's events of the session.
var MixedColumns = []MixedColumn{
	{"ev", "count(*)", "sum", ""},
	{"pv", pageViewsExpr, "sum", ""},
	{"ke", "count(*) FILTER (WHERE " + flagSet(protocol.FlagKeyEvent) + ")", "sum", ""},
	{"em", "COALESCE(sum(e.engagement_ms), 0)", "sum", ""},
	{"act", "bool_or(e.day_active)", "bool_or", ""},
	{"fv", "bool_or(" + flagSet(protocol.FlagFirstVisit) + ")", "bool_or", ""},
	// The session row's engagement and duration (its s_ columns, see
	// events_source.go); false and 0 for events whose session is not
	// stored.
	{"eng", "COALESCE(bool_or(" + sessionEngagedExpr("e.session_flags", "e.s_engagement_ms", "e.s_page_views", "e.s_key_events") + "), false)", "bool_or", ""},
	{"dur", "COALESCE(max((extract(epoch FROM e.s_last_ts - e.s_ts) * 1000000)::bigint), 0)", "max", ""},
}

// MixedColumn is a column of an event-session report's per-session rows x:
// inner aggregates a group's events of one session, merge combines the
// rows of a session that fall in several groups (the totals). With param
// (keyEvents:<event_name>), inner is the key events of that name, the
// name bound by the statement's writer.
type MixedColumn struct{ Name, Inner, Merge, Param string }

// Per-session aggregates of event-session reports over x rows.
var (
	mixedActive   = "count(DISTINCT x.v) FILTER (WHERE x.act)"
	mixedEngaged  = "count(*) FILTER (WHERE x.eng)"
	mixedSessions = "count(*)"
)

// perMixedSession divides an aggregate over x by the group's sessions.
func perMixedSession(x string) string {
	return "COALESCE((" + x + ")::float8 / NULLIF(" + mixedSessions + ", 0), 0)"
}

// mixedMetricExprs are the metrics' expressions in event-session reports.
var mixedMetricExprs = map[string]string{
	"eventCount":                "COALESCE(sum(x.ev), 0)::bigint",
	"screenPageViews":           "COALESCE(sum(x.pv), 0)::bigint",
	"keyEvents":                 "COALESCE(sum(x.ke), 0)::bigint",
	"totalUsers":                "count(DISTINCT x.v)",
	"activeUsers":               mixedActive,
	"newUsers":                  "count(DISTINCT x.v) FILTER (WHERE x.fv)",
	"eventCountPerUser":         "COALESCE(sum(x.ev)::float8 / NULLIF(" + mixedActive + ", 0), 0)",
	"userEngagementDuration":    "COALESCE(sum(x.em), 0)::float8 / 1000",
	"sessions":                  mixedSessions,
	"engagedSessions":           mixedEngaged,
	"engagementRate":            perMixedSession(mixedEngaged),
	"bounceRate":                perMixedSession(mixedSessions + " - " + mixedEngaged),
	"averageSessionDuration":    "COALESCE(sum(x.dur)::float8 / 1000000 / NULLIF(" + mixedSessions + ", 0), 0)",
	"screenPageViewsPerSession": perMixedSession("sum(x.pv)"),
	"eventsPerSession":          perMixedSession("sum(x.ev)"),
	"sessionsPerUser":           "COALESCE(" + mixedSessions + "::float8 / NULLIF(" + mixedActive + ", 0), 0)",
}

// metricScopes are the scopes of the metrics that are not event counts.
var metricScopes = map[string]scope{
	"totalUsers": ScopeUser, "activeUsers": ScopeUser, "newUsers": ScopeUser, "userEngagementDuration": ScopeUser,
}

// itemMetricExprs are the user and session metrics item reports answer
// over item rows ("e": event_items), which GA4 reports with item-scoped
// dimensions: the users and sessions with an item row of the group.
// An item row carries its event's flags but not its engagement time, so
// an active user there is one whose item event was engaged or a first
// visit.
var itemMetricExprs = map[string]string{
	"totalUsers":  "count(DISTINCT e.visitor_id)",
	"activeUsers": "count(DISTINCT e.visitor_id) FILTER (WHERE " + flagSet(protocol.FlagEngaged|protocol.FlagFirstVisit) + ")",
	"sessions":    "count(DISTINCT e.session_id)",
}

func init() {
	for _, m := range MetricList {
		if !m.SessionOnly() {
			m.Sess = sessionMetricExprs[m.Name]
		}
		if x, ok := itemMetricExprs[m.Name]; ok {
			m.Item = x
		}
		if m.Sess == "" && !m.eventOnly && m.Item == "" {
			panic("query: BUG: metric " + m.Name + " has no session expression")
		}
		if m.Mixed == "" {
			m.Mixed = mixedMetricExprs[m.Name]
		}
		switch s, ok := metricScopes[m.Name]; {
		case ok:
			m.Scope = s
		case m.Scope != scopeShared: // set in metricList
		case m.itemOnly():
			m.Scope = ScopeItem
		case m.SessionOnly():
			m.Scope = ScopeSession
		default:
			m.Scope = ScopeEvent
		}
	}
}

// MetricsByName indexes metricList by API name.
var MetricsByName = IndexByName(MetricList, func(m *MetricDef) string { return m.Name })
