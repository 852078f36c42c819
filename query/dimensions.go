package query

import (
	"slices"
	"strconv"

	"github.com/avila-analytics/avila/protocol"
	"github.com/avila-analytics/avila/protocol/names"
	"github.com/avila-analytics/avila/storage/postgres"
)

//go:generate go run gen_names.go

// Dictionary joins, one per dims-coded events column.
var (
	joinEventName = &joinDef{alias: "d_name", column: "name_id"}
	joinPagePath  = &joinDef{alias: "d_page", column: "page_id", profile: postgres.ContentProfile}
	joinHostName  = &joinDef{alias: "d_host", column: "host_id", profile: postgres.ContentProfile}
	joinPageTitle = &joinDef{alias: "d_title", column: "title_id", profile: postgres.ContentProfile}
	joinReferrer  = &joinDef{alias: "d_referrer", column: "referrer_id"}
	joinLanguage  = &joinDef{alias: "d_language", column: "language_id", profile: postgres.ClientProfile}
	joinScreen    = &joinDef{alias: "d_screen", column: "screen_id", profile: postgres.ClientProfile}
	joinCountry   = &joinDef{alias: "d_country", column: "country_id", profile: postgres.ClientProfile}
	joinRegion    = &joinDef{alias: "d_region", column: "region_id", profile: postgres.ClientProfile}
	joinCity      = &joinDef{alias: "d_city", column: "city_id", profile: postgres.ClientProfile}
	joinDevice    = &joinDef{alias: "d_device", column: "device_id", profile: postgres.ClientProfile}
	joinSource    = &joinDef{alias: "d_source", column: "source_id", profile: postgres.TrafficProfile}
	joinMedium    = &joinDef{alias: "d_medium", column: "medium_id", profile: postgres.TrafficProfile}
	joinCampaign  = &joinDef{alias: "d_campaign", column: "campaign_id", profile: postgres.TrafficProfile}
	joinChannel   = &joinDef{alias: "d_channel", column: "channel_id", profile: postgres.TrafficProfile}

	// The session's landing page (sessions.page_id) and the source of the
	// user's first session (first_source_id): columns of sessions rows, and
	// of events rows joined to their session (events_source.go).
	joinLanding     = &joinDef{alias: "d_landing", column: "page_id"}
	joinFirstSource = &joinDef{alias: "d_first_source", column: "first_source_id"}

	// Countries are stored as ISO 3166-1 alpha-2 codes, languages as
	// lower-case tags (en-us); GA4's country and language show English
	// names, matched on the code and on the tag's base language. A code
	// without a name shows as stored.
	joinCountryName = &joinDef{alias: "d_country_name", column: "country_id", profile: postgres.ClientProfile,
		names: newNameTable("country", int(postgres.DimCountry), "upper(d.value)", countryNames)}
	joinLanguageName = &joinDef{alias: "d_language_name", column: "language_id", profile: postgres.ClientProfile,
		names: newNameTable("language", int(postgres.DimLanguage), "split_part(replace(lower(d.value), '_', '-'), '-', 1)", languageNames)}
	// Browsers and operating systems are stored under GA4's names; values
	// stored by earlier agents (the parser's macOS, ChromeOS, Samsung
	// Browser …) show under GA4's names through protocol/names.
	joinBrowserName = &joinDef{alias: "d_browser_name", column: "browser_id", profile: postgres.ClientProfile,
		names: newNameTable("browser", int(postgres.DimBrowser), "d.value", names.Stored)}
	joinOSName = &joinDef{alias: "d_os_name", column: "os_id", profile: postgres.ClientProfile,
		names: newNameTable("os", int(postgres.DimOS), "d.value", names.Stored)}
)

func newNameTable(key string, kind int, codeSQL string, m map[string]string) *nameTable {
	t := &nameTable{key: key, cte: "names_" + key, kind: kind, codeSQL: codeSQL}
	for code := range m {
		t.codes = append(t.codes, code)
	}
	slices.Sort(t.codes)
	for _, code := range t.codes {
		t.names = append(t.names, m[code])
	}
	return t
}

// localTime formats the event's time in the site's time zone.
func localTime(format string) string {
	return "to_char(e.ts AT TIME ZONE r.tz, '" + format + "')"
}

// dictDim is a dimension showing the values of one dictionary join.
func dictDim(name, uiName, category, desc string, j *joinDef) *dimDef {
	return &dimDef{name: name, uiName: uiName, category: category, desc: desc, expr: dictValue(j), joins: []*joinDef{j}}
}

// dimensionList is the dimension allowlist in the order metadata lists it.
var dimensionList = slices.Concat([]*dimDef{
	{name: "date", uiName: "Date", category: "Time", desc: "The day of the event in the property's time zone, YYYYMMDD.", expr: localTime("YYYYMMDD")},
	{name: "dateHour", uiName: "Date + hour (YYYYMMDDHH)", category: "Time", desc: "The day and hour of the event, YYYYMMDDHH.", expr: localTime("YYYYMMDDHH24")},
	{name: "dateHourMinute", uiName: "Date hour and minute", category: "Time", desc: "The day, hour and minute of the event, YYYYMMDDHHMM.", expr: localTime("YYYYMMDDHH24MI")},
	{name: "year", uiName: "Year", category: "Time", desc: "The four-digit year of the event.", expr: localTime("YYYY")},
	{name: "yearMonth", uiName: "Year month", category: "Time", desc: "The year and month of the event, YYYYMM.", expr: localTime("YYYYMM")},
	{name: "month", uiName: "Month", category: "Time", desc: "The month of the event, 01 to 12.", expr: localTime("MM")},
	{name: "day", uiName: "Day", category: "Time", desc: "The day of the month of the event, 01 to 31.", expr: localTime("DD")},
	{name: "hour", uiName: "Hour", category: "Time", desc: "The hour of the event, 00 to 23.", expr: localTime("HH24")},
	{name: "minute", uiName: "Minute", category: "Time", desc: "The minute of the event, 00 to 59.", expr: localTime("MI")},
	{name: "dayOfWeek", uiName: "Day of week", category: "Time", desc: "The day of the week of the event, 0 (Sunday) to 6 (Saturday).",
		expr: "extract(dow FROM e.ts AT TIME ZONE r.tz)::int::text"},
	{name: "dayOfWeekName", uiName: "Day of week name", category: "Time", desc: "The English name of the day of the week of the event.",
		expr: localTime("FMDay")},

	{name: "pagePath", uiName: "Page path", category: "Page / screen", desc: "The path of the page, without its query string.",
		expr: "COALESCE(NULLIF(split_part(" + joinPagePath.alias + ".value, '?', 1), ''), '" + notSet + "')", joins: []*joinDef{joinPagePath}},
	dictDim("pagePathPlusQueryString", "Page path + query string", "Page / screen", "The path of the page with the query parameters kept at collection.", joinPagePath),
	dictDim("pageTitle", "Page title", "Page / screen", "The title of the page.", joinPageTitle),
	dictDim("hostName", "Hostname", "Page / screen", "The host name of the page.", joinHostName),
	{name: "fullPageUrl", uiName: "Full page URL", category: "Page / screen", desc: "Host name, path and kept query parameters of the page.",
		expr:  "COALESCE(NULLIF(COALESCE(" + joinHostName.alias + ".value, '') || COALESCE(" + joinPagePath.alias + ".value, ''), ''), '" + notSet + "')",
		joins: []*joinDef{joinHostName, joinPagePath}},
	dictDim("pageReferrer", "Page referrer", "Page / screen", "The referring URL, scrubbed at collection; empty for self-referrals.", joinReferrer),

	dictDim("eventName", "Event name", "Event", "The name of the event.", joinEventName),
	{name: "isKeyEvent", uiName: "Is key event", category: "Event", desc: "true when the event is a key event, else false.",
		expr: "CASE WHEN e.flags & " + strconv.Itoa(int(protocol.FlagKeyEvent)) + " <> 0 THEN 'true' ELSE 'false' END"},

	dictDim("country", "Country", "Geography", "The English name of the country the event came from.", joinCountryName),
	dictDim("countryId", "Country ID", "Geography", "The ISO 3166-1 alpha-2 code of the country the event came from.", joinCountry),
	dictDim("region", "Region", "Geography", "The region the event came from.", joinRegion),
	dictDim("city", "City", "Geography", "The city the event came from.", joinCity),

	dictDim("language", "Language", "Platform / device", "The English name of the browser's language.", joinLanguageName),
	dictDim("languageCode", "Language code", "Platform / device", "The browser's language tag, lower case (en-us).", joinLanguage),
	dictDim("browser", "Browser", "Platform / device", "The browser family as GA4 names it (Chrome, Safari, Edge, Samsung Internet …).", joinBrowserName),
	dictDim("operatingSystem", "Operating system", "Platform / device", "The operating system family as GA4 names it (Windows, Macintosh, iOS, Android, Chrome OS …).", joinOSName),
	dictDim("deviceCategory", "Device category", "Platform / device", "desktop, mobile or tablet.", joinDevice),
	dictDim("screenResolution", "Screen resolution", "Platform / device", "The screen size, WIDTHxHEIGHT.", joinScreen),

	// Session- and user-scoped dimensions hold on every event of their
	// session: event reports read them off the event's session row (the
	// events source joins it when a statement reads traffic_id, page_id,
	// first_source_id or session_flags, see events_source.go).
	sessionDim("sessionSource", "Session source",
		"Where the session came from (utm_source, google for a gclid, the search engine or referring host, or (direct)); on each of the session's events.", joinSource),
	sessionDim("sessionMedium", "Session medium",
		"The session's medium (utm_medium, cpc, organic, referral or (none)); on each of the session's events.", joinMedium),
	sessionDim("sessionCampaignName", "Session campaign",
		"The session's campaign (utm_campaign, or (organic), (referral), (direct)); on each of the session's events.", joinCampaign),
	sessionDim("sessionDefaultChannelGroup", "Session default channel group",
		"The session's GA4 default channel group (Direct, Organic Search, Paid Social, Email, …); on each of the session's events.", joinChannel),
	{name: "sessionSourceMedium", uiName: "Session source / medium", category: "Traffic source", scope: scopeSession,
		desc: "The session's source and medium joined by \" / \" (google / organic); on each of the session's events.",
		// No source (id 0, no dims row): an event whose session is not stored.
		expr:  "CASE WHEN " + joinSource.alias + ".id IS NULL THEN '" + notSet + "' ELSE " + dictValue(joinSource) + " || ' / ' || " + dictValue(joinMedium) + " END",
		joins: []*joinDef{joinSource, joinMedium}},

	{name: "landingPage", uiName: "Landing page", category: "Page / screen", scope: scopeSession,
		desc:  "The path of the session's first page_view (that has a path), without its query string; (not set) for a session without page views. On each of the session's events.",
		expr:  landingPathExpr,
		sess:  landingPathExpr,
		joins: []*joinDef{joinLanding}},
	{name: "landingPagePlusQueryString", uiName: "Landing page + query string", category: "Page / screen", scope: scopeSession,
		desc: "The path of the session's first page_view with the query parameters kept at collection; on each of the session's events.",
		expr: dictValue(joinLanding), sess: dictValue(joinLanding), joins: []*joinDef{joinLanding}},
	{name: "newVsReturning", uiName: "New / returning", category: "User", scope: scopeUser,
		desc: "new for a session of a new user (the sender's first_visit, _fv or session count 1; without them, the user's first session), else returning; on each of the session's events. Cookieless visitors have daily ids, so without the sender's word they are new each day.",
		expr: "CASE WHEN e.session_flags & " + strconv.Itoa(int(postgres.SessionFlagNew)) + " <> 0 THEN 'new' ELSE 'returning' END",
		sess: "CASE WHEN e.flags & " + strconv.Itoa(int(postgres.SessionFlagNew)) + " <> 0 THEN 'new' ELSE 'returning' END"},
	{name: "firstUserSource", uiName: "First user source", category: "Traffic source", scope: scopeUser,
		desc: "The source of the user's first session (within the user id's life, and sessions up to 24 hours apart); on each of the user's events.",
		expr: dictValue(joinFirstSource), sess: dictValue(joinFirstSource), joins: []*joinDef{joinFirstSource}},
}, commerceDimensions)

// landingPathExpr is the landing page's path without its query string.
var landingPathExpr = "COALESCE(NULLIF(split_part(" + joinLanding.alias + ".value, '?', 1), ''), '" + notSet + "')"

// sessionDim is a session-scoped traffic dimension.
func sessionDim(name, uiName, desc string, j *joinDef) *dimDef {
	d := dictDim(name, uiName, "Traffic source", desc, j)
	d.scope = scopeSession
	return d
}

// sessionDims are the event dimensions that also describe a session: time
// dimensions (of its start), its first event's geography and platform, and
// its traffic source.
var sessionDims = []string{"date", "dateHour", "dateHourMinute", "year", "yearMonth", "month", "day", "hour", "minute",
	"dayOfWeek", "dayOfWeekName", "country", "countryId", "region", "city", "language", "languageCode", "browser",
	"operatingSystem", "deviceCategory", "screenResolution",
	"sessionSource", "sessionMedium", "sessionCampaignName", "sessionDefaultChannelGroup", "sessionSourceMedium"}

func init() {
	for _, name := range sessionDims {
		d := dimensionsByName[name]
		d.sess = d.expr
	}
	// What has no session value and no scope of its own (item …)
	// describes one event.
	for _, d := range dimensionList {
		switch {
		case d.itemOnly():
			d.scope = scopeItem
		case d.sess == "" && d.scope == scopeShared:
			d.scope = scopeEvent
		}
	}
}

// dimensionsByName indexes dimensionList by API name.
var dimensionsByName = indexByName(dimensionList, func(d *dimDef) string { return d.name })

func indexByName[T any](list []T, name func(T) string) map[string]T {
	m := make(map[string]T, len(list))
	for _, v := range list {
		m[name(v)] = v
	}
	return m
}
