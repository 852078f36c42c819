package plan

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

// DimDef is an allowlisted dimension.
type DimDef struct {
	Name     string
	UIName   string
	Desc     string
	Category string
	// Expr is SQL yielding text, never NULL. Empty for custom parameter
	// dimensions, whose expression the builder writes around a bound name.
	Expr  string
	Joins []*JoinDef // dictionary joins the expression reads
	// Section and param: a custom dimension reads string parameter param
	// of events.params section "ps" (event) or "up" (user property).
	Section, Param string
	// Sess is the expression in session reports (same joins); "" for an
	// event-scoped dimension, which makes a report with session metrics an
	// event-session report.
	Sess  string
	Scope scope // scope_rules.go
	// Item is the expression in item reports (over event_items rows, see
	// commerce.go); a dimension with item but no expr is item-scoped and
	// makes the report an item report. Event-scoped dimensions use expr
	// there.
	Item string
}

// sessionOnly reports whether d exists only in session reports.
func (d *DimDef) sessionOnly() bool { return d.Expr == "" && d.Param == "" && d.Item == "" }

// itemOnly reports whether d exists only in item reports.
func (d *DimDef) itemOnly() bool { return d.Item != "" && d.Expr == "" }

// JoinDef is a LEFT JOIN of the dims dictionary on one id column of events.
// Absent values are id 0, which matches no dims row, hence LEFT JOIN and a
// COALESCE to "(not set)" as GA4 shows them. A join with names reads a
// derived dictionary whose values are display names (country, language).
type JoinDef struct {
	Alias  string
	Column string // column holding the dims id: in events, or in profile
	// Profile: the id is in this profile table, reached from events
	// through the profile's id column; nil: events holds it.
	Profile *postgres.Profile
	Names   *NameTable // nil: the dims values themselves
}

// NameTable maps stored codes to display names. It reaches SQL as two bound
// arrays joined to the site's dims rows of one kind, so the statement text
// stays the same and the mapping runs once per dictionary entry, not per event.
type NameTable struct {
	Key     string // identifies the arrays among a statement's parameters
	CTE     string // name of the statement's CTE holding the mapped entries
	Kind    int    // dims.kind of the coded values
	CodeSQL string // SQL over dims row "d" giving the code to look up
	Codes   []string
	Names   []string
}

// MetricDef is an allowlisted metric: an aggregate over events rows.
type MetricDef struct {
	Name     string
	UIName   string
	Desc     string
	Category string
	Expr     string
	Typ      string // GA4 MetricType name, see metricTypes
	// Sess is the aggregate over sessions rows in session reports. A
	// metric with sess but no expr is session-scoped.
	Sess string
	// Mixed is the aggregate over a group's per-session rows "x" in
	// event-session reports (see mixedColumns); "" when the metric cannot
	// be reported by event-scoped dimensions. mixedCols are the per-session
	// columns it reads besides mixedColumns (commerce metrics).
	Mixed     string
	MixedCols []MixedColumn
	Scope     scope // scope_rules.go
	// Item is the aggregate over event_items rows; a metric with item but
	// no expr is item-scoped (commerce.go).
	Item string
	// eventOnly: an event metric without a session expression, refused in
	// session reports.
	eventOnly bool
	// Param is the event name of keyEvents:<event_name>, bound into its
	// expression (keyEventsOf).
	Param string
}

// SessionOnly reports whether m is a session metric: one that makes a
// report a session or event-session report.
func (m *MetricDef) SessionOnly() bool { return m.Expr == "" && m.Sess != "" && m.Param == "" }

// itemOnly reports whether m exists only in item reports.
func (m *MetricDef) itemOnly() bool { return m.Item != "" && m.Expr == "" && m.Sess == "" }

// GA4 metric types this server reports. Integer metrics are SQL bigint, the
// others float8.
const (
	TypeInteger = "TYPE_INTEGER"
	TypeFloat   = "TYPE_FLOAT"
	typeSeconds = "TYPE_SECONDS"
)

func (m *MetricDef) Integer() bool { return m.Typ == TypeInteger }

// sqlType is the SQL type of the metric's column in the report statement.
func (m *MetricDef) SQLType() string {
	if m.Integer() {
		return "bigint"
	}
	return "float8"
}

// NotSet is GA4's value for a dimension that has no value on a row.
const NotSet = "(not set)"

// dictValue is the expression for a dictionary-backed dimension.
func dictValue(j *JoinDef) string { return "COALESCE(" + j.Alias + ".value, '" + NotSet + "')" }

// DateRangeDim is the dimension GA4 adds when a request has several date
// ranges; its value is the range's name or date_range_N.
const DateRangeDim = "dateRange"

// Custom dimension prefixes: customEvent:<name> reads an event's string
// parameter, customUser:<name> a user property sent with the event.
const (
	CustomEventPrefix = "customEvent:"
	CustomUserPrefix  = "customUser:"
)

// paramName is a GA4 parameter name: a letter, then letters, digits or
// underscores, at most 40 in all.
var paramName = regexp.MustCompile(`^[A-Za-z][A-Za-z0-9_]{0,39}$`)

// LookupDimension resolves a requested dimension name. ok is false for an
// unknown name; msg then says why when a generic "not a valid dimension"
// would mislead.
func LookupDimension(name string) (d *DimDef, ok bool, msg string) {
	if d, ok := DimensionsByName[name]; ok {
		return d, true, ""
	}
	for _, c := range []struct {
		prefix, section, what string
		scope                 scope
	}{
		{CustomEventPrefix, "ps", "event parameter", ScopeEvent},
		{CustomUserPrefix, "up", "user property", ScopeUser},
	} {
		param, found := strings.CutPrefix(name, c.prefix)
		if !found {
			continue
		}
		if !paramName.MatchString(param) {
			return nil, false, "the " + c.what + " name after " + c.prefix + " must be a letter followed by up to 39 letters, digits or underscores"
		}
		return &DimDef{Name: name, UIName: param, Category: "Custom", Section: c.section, Param: param, Scope: c.scope,
			Desc: "The " + c.what + " " + param + " as sent with each event."}, true, ""
	}
	return nil, false, ""
}

// LookupMetric resolves a requested metric name, like lookupDimension.
func LookupMetric(name string) (m *MetricDef, ok bool, msg string) {
	if m, ok := MetricsByName[name]; ok {
		return m, true, ""
	}
	return LookupKeyEventsMetric(name)
}
