package query

import (
	"regexp"
	"strings"

	"github.com/avila-analytics/avila/storage/postgres"
)

// The allowlist: the only dimension and metric names a request may use, each
// with the SQL that computes it (dimensions.go, metrics.go). SQL text
// reaching the database is built only from these strings and the builder's
// fixed keywords; the metadata method lists the same tables.
//
// Expressions are written over the events row "e" and the joins they name;
// r.tz is the site's IANA time zone and $1 the site id (see buildSQL).
//
// Reports come in three shapes (plan.mode), chosen by the scopes of their
// names (scope_rules.go):
//
//   - event reports (no session metric) group events. Session- and
//     user-scoped dimensions (sessionSource, landingPage, newVsReturning,
//     firstUserSource …) read the event's session row, joined on (site,
//     visitor, session id), so they hold on every event of the session, as
//     in GA4.
//   - session reports (a session metric, and only dimensions that describe
//     a session) group the sessions table, one row per session that began
//     in the date ranges: time dimensions are those of the start, and every
//     name has its "sess" expression over a sessions row "e" (whose dims and
//     profile id columns are named as in events). Event metrics there count
//     the events of those sessions.
//   - event-session reports (a session metric with an event-scoped
//     dimension such as pagePath, pageTitle, eventName or a custom
//     parameter, in the report or its filter) group events joined to their
//     sessions, then count each group's distinct sessions: a page's
//     sessions are the sessions in which the page was viewed, as GA4
//     counts them ("mixed" expressions over the per-session rows x).

// dimDef is an allowlisted dimension.
type dimDef struct {
	name     string
	uiName   string
	desc     string
	category string
	// expr is SQL yielding text, never NULL. Empty for custom parameter
	// dimensions, whose expression the builder writes around a bound name.
	expr  string
	joins []*joinDef // dictionary joins the expression reads
	// section and param: a custom dimension reads string parameter param
	// of events.params section "ps" (event) or "up" (user property).
	section, param string
	// sess is the expression in session reports (same joins); "" for an
	// event-scoped dimension, which makes a report with session metrics an
	// event-session report.
	sess  string
	scope scope // scope_rules.go
	// item is the expression in item reports (over event_items rows, see
	// commerce.go); a dimension with item but no expr is item-scoped and
	// makes the report an item report. Event-scoped dimensions use expr
	// there.
	item string
}

// sessionOnly reports whether d exists only in session reports.
func (d *dimDef) sessionOnly() bool { return d.expr == "" && d.param == "" && d.item == "" }

// itemOnly reports whether d exists only in item reports.
func (d *dimDef) itemOnly() bool { return d.item != "" && d.expr == "" }

// joinDef is a LEFT JOIN of the dims dictionary on one id column of events.
// Absent values are id 0, which matches no dims row, hence LEFT JOIN and a
// COALESCE to "(not set)" as GA4 shows them. A join with names reads a
// derived dictionary whose values are display names (country, language).
type joinDef struct {
	alias  string
	column string // column holding the dims id: in events, or in profile
	// profile: the id is in this profile table, reached from events
	// through the profile's id column; nil: events holds it.
	profile *postgres.Profile
	names   *nameTable // nil: the dims values themselves
}

// nameTable maps stored codes to display names. It reaches SQL as two bound
// arrays joined to the site's dims rows of one kind, so the statement text
// stays the same and the mapping runs once per dictionary entry, not per event.
type nameTable struct {
	key     string // identifies the arrays among a statement's parameters
	cte     string // name of the statement's CTE holding the mapped entries
	kind    int    // dims.kind of the coded values
	codeSQL string // SQL over dims row "d" giving the code to look up
	codes   []string
	names   []string
}

// metricDef is an allowlisted metric: an aggregate over events rows.
type metricDef struct {
	name     string
	uiName   string
	desc     string
	category string
	expr     string
	typ      string // GA4 MetricType name, see metricTypes
	// sess is the aggregate over sessions rows in session reports. A
	// metric with sess but no expr is session-scoped.
	sess string
	// mixed is the aggregate over a group's per-session rows "x" in
	// event-session reports (see mixedColumns); "" when the metric cannot
	// be reported by event-scoped dimensions. mixedCols are the per-session
	// columns it reads besides mixedColumns (commerce metrics).
	mixed     string
	mixedCols []mixedColumn
	scope     scope // scope_rules.go
	// item is the aggregate over event_items rows; a metric with item but
	// no expr is item-scoped (commerce.go).
	item string
	// eventOnly: an event metric without a session expression, refused in
	// session reports.
	eventOnly bool
	// param is the event name of keyEvents:<event_name>, bound into its
	// expression (keyEventsOf).
	param string
}

// sessionOnly reports whether m is a session metric: one that makes a
// report a session or event-session report.
func (m *metricDef) sessionOnly() bool { return m.expr == "" && m.sess != "" && m.param == "" }

// itemOnly reports whether m exists only in item reports.
func (m *metricDef) itemOnly() bool { return m.item != "" && m.expr == "" && m.sess == "" }

// GA4 metric types this server reports. Integer metrics are SQL bigint, the
// others float8.
const (
	typeInteger = "TYPE_INTEGER"
	typeFloat   = "TYPE_FLOAT"
	typeSeconds = "TYPE_SECONDS"
)

func (m *metricDef) integer() bool { return m.typ == typeInteger }

// sqlType is the SQL type of the metric's column in the report statement.
func (m *metricDef) sqlType() string {
	if m.integer() {
		return "bigint"
	}
	return "float8"
}

// notSet is GA4's value for a dimension that has no value on a row.
const notSet = "(not set)"

// dictValue is the expression for a dictionary-backed dimension.
func dictValue(j *joinDef) string { return "COALESCE(" + j.alias + ".value, '" + notSet + "')" }

// dateRangeDim is the dimension GA4 adds when a request has several date
// ranges; its value is the range's name or date_range_N.
const dateRangeDim = "dateRange"

// Custom dimension prefixes: customEvent:<name> reads an event's string
// parameter, customUser:<name> a user property sent with the event.
const (
	customEventPrefix = "customEvent:"
	customUserPrefix  = "customUser:"
)

// paramName is a GA4 parameter name: a letter, then letters, digits or
// underscores, at most 40 in all.
var paramName = regexp.MustCompile(`^[A-Za-z][A-Za-z0-9_]{0,39}$`)

// lookupDimension resolves a requested dimension name. ok is false for an
// unknown name; msg then says why when a generic "not a valid dimension"
// would mislead.
func lookupDimension(name string) (d *dimDef, ok bool, msg string) {
	if d, ok := dimensionsByName[name]; ok {
		return d, true, ""
	}
	for _, c := range []struct {
		prefix, section, what string
		scope                 scope
	}{
		{customEventPrefix, "ps", "event parameter", scopeEvent},
		{customUserPrefix, "up", "user property", scopeUser},
	} {
		param, found := strings.CutPrefix(name, c.prefix)
		if !found {
			continue
		}
		if !paramName.MatchString(param) {
			return nil, false, "the " + c.what + " name after " + c.prefix + " must be a letter followed by up to 39 letters, digits or underscores"
		}
		return &dimDef{name: name, uiName: param, category: "Custom", section: c.section, param: param, scope: c.scope,
			desc: "The " + c.what + " " + param + " as sent with each event."}, true, ""
	}
	return nil, false, ""
}

// lookupMetric resolves a requested metric name, like lookupDimension.
func lookupMetric(name string) (m *metricDef, ok bool, msg string) {
	if m, ok := metricsByName[name]; ok {
		return m, true, ""
	}
	return lookupKeyEventsMetric(name)
}
