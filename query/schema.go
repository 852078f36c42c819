package query

// The allowlist: the only dimension and metric names a request may use, each
// with the SQL that computes it. SQL text reaching the database is built only
// from these strings and the builder's fixed keywords.
//
// Expressions are written over the events row "e" and, for dictionary-backed
// dimensions, a LEFT JOIN of dims under the alias given by join; r.tz is the
// site's IANA time zone and $1 the site id (see buildSQL).

// dimDef is an allowlisted dimension.
type dimDef struct {
	name string
	expr string   // SQL yielding text; never NULL
	join *joinDef // dictionary join the expression reads, or nil
}

// joinDef is a LEFT JOIN of the dims dictionary on one id column of events.
// Absent values are id 0, which matches no dims row, hence LEFT JOIN and a
// COALESCE to "(not set)" as GA4 shows them.
type joinDef struct {
	alias  string
	column string // events column holding the dims id
}

// metricDef is an allowlisted metric. Every metric is an integer aggregate
// over events rows (SQL bigint), reported as TYPE_INTEGER.
type metricDef struct {
	name string
	expr string
	typ  string // GA4 MetricType name
}

// notSet is GA4's value for a dimension that has no value on a row.
const notSet = "(not set)"

var (
	joinEventName = &joinDef{alias: "d_name", column: "name_id"}
	joinPagePath  = &joinDef{alias: "d_page", column: "page_id"}
	joinHostName  = &joinDef{alias: "d_host", column: "host_id"}
	joinPageTitle = &joinDef{alias: "d_title", column: "title_id"}
	joinReferrer  = &joinDef{alias: "d_referrer", column: "referrer_id"}
)

// dictValue is the expression for a dictionary-backed dimension.
func dictValue(j *joinDef) string { return "COALESCE(" + j.alias + ".value, '" + notSet + "')" }

// dateRangeDim is the dimension GA4 adds when a request has several date
// ranges; its value is the range's name or date_range_N.
const dateRangeDim = "dateRange"

// dimensions is the dimension allowlist, by GA4 API name.
var dimensions = map[string]*dimDef{
	// The day of the event in the site's time zone, YYYYMMDD.
	"date":         {name: "date", expr: "to_char(e.ts AT TIME ZONE r.tz, 'YYYYMMDD')"},
	"eventName":    {name: "eventName", expr: dictValue(joinEventName), join: joinEventName},
	"pagePath":     {name: "pagePath", expr: dictValue(joinPagePath), join: joinPagePath},
	"hostName":     {name: "hostName", expr: dictValue(joinHostName), join: joinHostName},
	"pageTitle":    {name: "pageTitle", expr: dictValue(joinPageTitle), join: joinPageTitle},
	"pageReferrer": {name: "pageReferrer", expr: dictValue(joinReferrer), join: joinReferrer},
}

// metrics is the metric allowlist, by GA4 API name.
var metrics = map[string]*metricDef{
	"eventCount": {name: "eventCount", expr: "count(*)", typ: "TYPE_INTEGER"},
	// page_view's dictionary id is looked up once per statement (an InitPlan),
	// so counting page views reads no dictionary row per event.
	"screenPageViews": {name: "screenPageViews", typ: "TYPE_INTEGER",
		expr: "count(*) FILTER (WHERE e.name_id = (SELECT id FROM dims WHERE site_id = $1 AND kind = 1 AND value = 'page_view'))"},
	// Visitors are daily keyed hashes, so a distinct count is the number of
	// visitor-days; within one day it is the number of visitors.
	"activeUsers": {name: "activeUsers", expr: "count(DISTINCT e.visitor_id)", typ: "TYPE_INTEGER"},
}
