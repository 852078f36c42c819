package plan

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
	joinEventName = &JoinDef{Alias: "d_name", Column: "name_id"}
	joinPagePath  = &JoinDef{Alias: "d_page", Column: "page_id", Profile: postgres.ContentProfile}
	joinHostName  = &JoinDef{Alias: "d_host", Column: "host_id", Profile: postgres.ContentProfile}
	joinPageTitle = &JoinDef{Alias: "d_title", Column: "title_id", Profile: postgres.ContentProfile}
	joinReferrer  = &JoinDef{Alias: "d_referrer", Column: "referrer_id"}
	joinLanguage  = &JoinDef{Alias: "d_language", Column: "language_id", Profile: postgres.ClientProfile}
	joinScreen    = &JoinDef{Alias: "d_screen", Column: "screen_id", Profile: postgres.ClientProfile}
	joinCountry   = &JoinDef{Alias: "d_country", Column: "country_id", Profile: postgres.ClientProfile}
	joinRegion    = &JoinDef{Alias: "d_region", Column: "region_id", Profile: postgres.ClientProfile}
	joinCity      = &JoinDef{Alias: "d_city", Column: "city_id", Profile: postgres.ClientProfile}
	joinDevice    = &JoinDef{Alias: "d_device", Column: "device_id", Profile: postgres.ClientProfile}
	joinSource    = &JoinDef{Alias: "d_source", Column: "source_id", Profile: postgres.TrafficProfile}
	joinMedium    = &JoinDef{Alias: "d_medium", Column: "medium_id", Profile: postgres.TrafficProfile}
	joinCampaign  = &JoinDef{Alias: "d_campaign", Column: "campaign_id", Profile: postgres.TrafficProfile}
	joinChannel   = &JoinDef{Alias: "d_channel", Column: "channel_id", Profile: postgres.TrafficProfile}

	// The session's landing page (sessions.page_id) and the source of the
	// user's first session (first_source_id): columns of sessions rows, and
	// of events rows joined to their session (events_source.go).
	JoinLanding     = &JoinDef{Alias: "d_landing", Column: "page_id"}
	joinFirstSource = &JoinDef{Alias: "d_first_source", Column: "first_source_id"}

	// Countries are stored as ISO 3166-1 alpha-2 codes, languages as
	// lower-case tags (en-us); GA4's country and language show English
	// names, matched on the code and on the tag's base language. A code
	// without a name shows as stored.
	joinCountryName = &JoinDef{Alias: "d_country_name", Column: "country_id", Profile: postgres.ClientProfile,
		Names: newNameTable("country", int(postgres.DimCountry), "upper(d.value)", CountryNames)}
	joinLanguageName = &JoinDef{Alias: "d_language_name", Column: "language_id", Profile: postgres.ClientProfile,
		Names: newNameTable("language", int(postgres.DimLanguage), "split_part(replace(lower(d.value), '_', '-'), '-', 1)", LanguageNames)}
	// Browsers and operating systems are stored under GA4's names; values
	// stored by earlier agents (the parser's macOS, ChromeOS, Samsung
	// Browser …) show under GA4's names through protocol/names.
	joinBrowserName = &JoinDef{Alias: "d_browser_name", Column: "browser_id", Profile: postgres.ClientProfile,
		Names: newNameTable("browser", int(postgres.DimBrowser), "d.value", names.Stored)}
	joinOSName = &JoinDef{Alias: "d_os_name", Column: "os_id", Profile: postgres.ClientProfile,
		Names: newNameTable("os", int(postgres.DimOS), "d.value", names.Stored)}
)

func newNameTable(key string, kind int, codeSQL string, m map[string]string) *NameTable {
	t := &NameTable{Key: key, CTE: "names_" + key, Kind: kind, CodeSQL: codeSQL}
	for code := range m {
		t.Codes = append(t.Codes, code)
	}
	slices.Sort(t.Codes)
	for _, code := range t.Codes {
		t.Names = append(t.Names, m[code])
	}
	return t
}

// localTime formats the event's time in the site's time zone.
func localTime(format string) string {
	return "to_char(e.ts AT TIME ZONE r.tz, '" + format + "')"
}

// dictDim is a dimension showing the values of one dictionary join.
func dictDim(name, uiName, category, desc string, j *JoinDef) *DimDef {
	return &DimDef{Name: name, UIName: uiName, Category: category, Desc: desc, Expr: dictValue(j), Joins: []*JoinDef{j}}
}

// DimensionList is the dimension allowlist in the order metadata lists it.
var DimensionList = slices.Concat([]*DimDef{
	{Name: "date", UIName: "Date", Category: "Time", Desc: "The day of the event in the property's time zone, YYYYMMDD.", Expr: localTime("YYYYMMDD")},
	{Name: "dateHour", UIName: "Date + hour (YYYYMMDDHH)", Category: "Time", Desc: "The day and hour of the event, YYYYMMDDHH.", Expr: localTime("YYYYMMDDHH24")},
	{Name: "dateHourMinute", UIName: "Date hour and minute", Category: "Time", Desc: "The day, hour and minute of the event, YYYYMMDDHHMM.", Expr: localTime("YYYYMMDDHH24MI")},
	{Name: "year", UIName: "Year", Category: "Time", Desc: "The four-digit year of the event.", Expr: localTime("YYYY")},
	{Name: "yearMonth", UIName: "Year month", Category: "Time", Desc: "The year and month of the event, YYYYMM.", Expr: localTime("YYYYMM")},
	{Name: "month", UIName: "Month", Category: "Time", Desc: "The month of the event, 01 to 12.", Expr: localTime("MM")},
	{Name: "day", UIName: "Day", Category: "Time", Desc: "The day of the month of the event, 01 to 31.", Expr: localTime("DD")},
	{Name: "hour", UIName: "Hour", Category: "Time", Desc: "The hour of the event, 00 to 23.", Expr: localTime("HH24")},
	{Name: "minute", UIName: "Minute", Category: "Time", Desc: "The minute of the event, 00 to 59.", Expr: localTime("MI")},
	{Name: "dayOfWeek", UIName: "Day of week", Category: "Time", Desc: "The day of the week of the event, 0 (Sunday) to 6 (Saturday).",
		Expr: "extract(dow FROM e.ts AT TIME ZONE r.tz)::int::text"},
	{Name: "dayOfWeekName", UIName: "Day of week name", Category: "Time", Desc: "The English name of the day of the week of the event.",
		Expr: localTime("FMDay")},

	{Name: "pagePath", UIName: "Page path", Category: "Page / screen", Desc: "The path of the page, without its query string.",
		Expr: "COALESCE(NULLIF(split_part(" + joinPagePath.Alias + ".value, '?', 1), ''), '" + NotSet + "')", Joins: []*JoinDef{joinPagePath}},
	dictDim("pagePathPlusQueryString", "Page path + query string", "Page / screen", "The path of the page with the query parameters kept at collection.", joinPagePath),
	dictDim("pageTitle", "Page title", "Page / screen", "The title of the page.", joinPageTitle),
	dictDim("hostName", "Hostname", "Page / screen", "The host name of the page.", joinHostName),
	{Name: "fullPageUrl", UIName: "Full page URL", Category: "Page / screen", Desc: "Host name, path and kept query parameters of the page.",
		Expr:  "COALESCE(NULLIF(COALESCE(" + joinHostName.Alias + ".value, '') || COALESCE(" + joinPagePath.Alias + ".value, ''), ''), '" + NotSet + "')",
		Joins: []*JoinDef{joinHostName, joinPagePath}},
	dictDim("pageReferrer", "Page referrer", "Page / screen", "The referring URL, scrubbed at collection; empty for self-referrals.", joinReferrer),

	dictDim("eventName", "Event name", "Event", "The name of the event.", joinEventName),
	{Name: "isKeyEvent", UIName: "Is key event", Category: "Event", Desc: "true when the event is a key event, else false.",
		Expr: "CASE WHEN e.flags & " + strconv.Itoa(int(protocol.FlagKeyEvent)) + " <> 0 THEN 'true' ELSE 'false' END"},

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
	{Name: "sessionSourceMedium", UIName: "Session source / medium", Category: "Traffic source", Scope: ScopeSession,
		Desc: "The session's source and medium joined by \" / \" (google / organic); on each of the session's events.",
		// No source (id 0, no dims row): an event whose session is not stored.
		Expr:  "CASE WHEN " + joinSource.Alias + ".id IS NULL THEN '" + NotSet + "' ELSE " + dictValue(joinSource) + " || ' / ' || " + dictValue(joinMedium) + " END",
		Joins: []*JoinDef{joinSource, joinMedium}},

	{Name: "landingPage", UIName: "Landing page", Category: "Page / screen", Scope: ScopeSession,
		Desc:  "The path of the session's first page_view (that has a path), without its query string; (not set) for a session without page views. On each of the session's events.",
		Expr:  landingPathExpr,
		Sess:  landingPathExpr,
		Joins: []*JoinDef{JoinLanding}},
	{Name: "landingPagePlusQueryString", UIName: "Landing page + query string", Category: "Page / screen", Scope: ScopeSession,
		Desc: "The path of the session's first page_view with the query parameters kept at collection; on each of the session's events.",
		Expr: dictValue(JoinLanding), Sess: dictValue(JoinLanding), Joins: []*JoinDef{JoinLanding}},
	{Name: "newVsReturning", UIName: "New / returning", Category: "User", Scope: ScopeUser,
		Desc: "new for a session of a new user (the sender's first_visit, _fv or session count 1; without them, the user's first session), else returning; on each of the session's events. Cookieless visitors have daily ids, so without the sender's word they are new each day.",
		Expr: "CASE WHEN e.session_flags & " + strconv.Itoa(int(postgres.SessionFlagNew)) + " <> 0 THEN 'new' ELSE 'returning' END",
		Sess: "CASE WHEN e.flags & " + strconv.Itoa(int(postgres.SessionFlagNew)) + " <> 0 THEN 'new' ELSE 'returning' END"},
	{Name: "firstUserSource", UIName: "First user source", Category: "Traffic source", Scope: ScopeUser,
		Desc: "The source of the user's first session (within the user id's life, and sessions up to 24 hours apart); on each of the user's events.",
		Expr: dictValue(joinFirstSource), Sess: dictValue(joinFirstSource), Joins: []*JoinDef{joinFirstSource}},
}, CommerceDimensions)

// landingPathExpr is the landing page's path without its query string.
var landingPathExpr = "COALESCE(NULLIF(split_part(" + JoinLanding.Alias + ".value, '?', 1), ''), '" + NotSet + "')"

// sessionDim is a session-scoped traffic dimension.
func sessionDim(name, uiName, desc string, j *JoinDef) *DimDef {
	d := dictDim(name, uiName, "Traffic source", desc, j)
	d.Scope = ScopeSession
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
		d := DimensionsByName[name]
		d.Sess = d.Expr
	}
	// What has no session value and no scope of its own (item …)
	// describes one event.
	for _, d := range DimensionList {
		switch {
		case d.itemOnly():
			d.Scope = ScopeItem
		case d.Sess == "" && d.Scope == scopeShared:
			d.Scope = ScopeEvent
		}
	}
}

// DimensionsByName indexes dimensionList by API name.
var DimensionsByName = IndexByName(DimensionList, func(d *DimDef) string { return d.Name })

func IndexByName[T any](list []T, name func(T) string) map[string]T {
	m := make(map[string]T, len(list))
	for _, v := range list {
		m[name(v)] = v
	}
	return m
}
