package plan

// Compatibility of dimensions and metrics, in one place: each allowlisted
// name has a scope, and incompatibleScopes lists the pairs of scopes GA4
// refuses in one core report. Everything not listed is compatible: GA4
// reports event-scoped dimensions with session metrics (a page's sessions
// are the sessions in which the page was viewed) and session-scoped
// dimensions with event metrics (a session's source holds on each of its
// events), and so does this server. runReport's refusals and the
// checkCompatibility method both read these rules (conflict).

// scope is what a dimension or metric describes.
type scope uint8

const (
	// scopeShared: time, geography and platform. Of the event in event
	// reports, of the session's start and first event in session reports.
	scopeShared scope = iota
	// ScopeEvent: one event (page, title, event name, parameters; event
	// counts for metrics). A dimension of this scope has no session value.
	ScopeEvent
	// ScopeSession: the session (traffic source, landing page; sessions,
	// engagement, duration for metrics).
	ScopeSession
	// ScopeUser: the user (first user source, new or returning; user
	// counts for metrics).
	ScopeUser
	// ScopeAttribution: an event-scoped attribution dimension (GA4's
	// source, medium, campaignName: the source credited with each key
	// event). None is offered yet; the rule below holds for them.
	ScopeAttribution
	// ScopeItem: an e-commerce item (itemName, itemId …; itemRevenue,
	// itemsPurchased …).
	ScopeItem
)

var scopeNames = [...]string{scopeShared: "shared", ScopeEvent: "event-scoped", ScopeSession: "session-scoped",
	ScopeUser: "user-scoped", ScopeAttribution: "attribution", ScopeItem: "item-scoped"}

func (s scope) String() string { return scopeNames[s] }

// incompatibleScopes are GA4's incompatible pairs of a dimension scope and
// a metric scope (Data API announcement "Schema compatibility changes",
// 2022-12-01): item-scoped dimensions are compatible with item-scoped,
// user and session metrics but not with event-scoped ones like
// eventCount, and attribution dimensions like source with key events,
// user and session metrics but not with event-scoped ones.
var incompatibleScopes = []struct {
	dim, metric scope
	why         string
}{
	{ScopeItem, ScopeEvent, "item-scoped dimensions report item-scoped, user and session metrics, not event counts"},
	{ScopeAttribution, ScopeEvent, "attribution dimensions report key events, user and session metrics, not event counts"},
}

// incompatible is why GA4 refuses a dimension of scope dim with a metric
// of scope metric, "" when it does not.
func incompatible(dim, metric scope) string {
	for _, r := range incompatibleScopes {
		if r.dim == dim && r.metric == metric {
			return r.why
		}
	}
	return ""
}

// compatConflict is why a set of names cannot make one report.
type compatConflict struct {
	dim    *DimDef
	metric *MetricDef
	why    string
}

// Conflict returns the first incompatible pair among dims and metrics
// (dimension filter fields count as dimensions, metric filter fields as
// metrics), or nil when they make a valid report. Besides GA4's scope
// rules, a session metric with an event-scoped dimension needs the
// metric's per-session form (metricDef.mixed).
func Conflict(dims []*DimDef, metrics []*MetricDef) *compatConflict {
	for _, d := range dims {
		for _, m := range metrics {
			if why := incompatible(d.Scope, m.Scope); why != "" {
				return &compatConflict{d, m, why}
			}
		}
	}
	if !mixedMode(dims, metrics) {
		return nil
	}
	for _, m := range metrics {
		if m.Mixed == "" {
			for _, d := range dims {
				if d.Sess == "" {
					return &compatConflict{d, m, "this server does not report " + m.Name + " by event-scoped dimensions"}
				}
			}
		}
	}
	return nil
}

// mixedMode reports whether dims and metrics make an event-session
// report: a session metric with a dimension that has no session value, or
// with event metrics that sessions rows do not hold (revenue by session
// source, as GA4's traffic acquisition report shows it) when each of them
// has a per-session form.
func mixedMode(dims []*DimDef, metrics []*MetricDef) bool {
	session := false
	for _, m := range metrics {
		session = session || m.SessionOnly()
	}
	if !session {
		return false
	}
	for _, d := range dims {
		if d.Sess == "" {
			return true
		}
	}
	byMetric := false
	for _, m := range metrics {
		if m.Sess == "" && !m.SessionOnly() {
			if m.Mixed == "" {
				return false
			}
			byMetric = true
		}
	}
	return byMetric
}

// Message is the conflict as GA4's INVALID_ARGUMENT says it.
func (c *compatConflict) Message() string {
	return "The dimensions and metrics are incompatible: the " + c.dim.Scope.String() + " dimension " + QuoteName(c.dim.Name) +
		" and the " + c.metric.Scope.String() + " metric " + QuoteName(c.metric.Name) + " (" + c.why + ")."
}
