package query

import (
	"cmp"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/avila-analytics/avila/aggregator/channel"
	"github.com/avila-analytics/avila/protocol"
	"github.com/avila-analytics/avila/protocol/names"
	"github.com/avila-analytics/avila/query/plan"
)

// oracleDates is zone's location and a resolver of the API's relative
// dates (today, yesterday, NdaysAgo) to ISO dates there, at now.
func oracleDates(zone string, now time.Time) (*time.Location, func(string) string) {
	loc, err := time.LoadLocation(zone)
	if err != nil {
		panic(err)
	}
	today := now.In(loc)
	resolve := func(s string) string {
		switch {
		case s == "today":
			return today.Format(time.DateOnly)
		case s == "yesterday":
			return today.AddDate(0, 0, -1).Format(time.DateOnly)
		case strings.HasSuffix(s, "daysAgo"):
			n, _ := strconv.Atoi(strings.TrimSuffix(s, "daysAgo"))
			return today.AddDate(0, 0, -n).Format(time.DateOnly)
		}
		return s
	}
	return loc, resolve
}

// oracle computes a runReport answer from the test's own events, the plain
// way: each event's local time by time.In, ranges compared as ISO date
// strings, dimension values and filters read straight off the event, groups
// in maps, sorting with slices.SortFunc. It shares no code with the SQL path
// (only the display-name tables), so agreement means the statement is right.
func oracle(req plan.RunReportRequest, zone string, now time.Time, events []protocol.Event, siteID uint32) *plan.RunReportResponse {
	loc, resolve := oracleDates(zone, now)
	multi := len(req.DateRanges) > 1
	resp := &plan.RunReportResponse{Kind: "analyticsData#runReport", Metadata: plan.ResponseMetadata{CurrencyCode: "USD", TimeZone: zone}}
	for _, d := range req.Dimensions {
		resp.DimensionHeaders = append(resp.DimensionHeaders, plan.DimensionHeader{Name: d.Name})
	}
	if multi {
		resp.DimensionHeaders = append(resp.DimensionHeaders, plan.DimensionHeader{Name: "dateRange"})
	}
	for _, m := range req.Metrics {
		resp.MetricHeaders = append(resp.MetricHeaders, plan.MetricHeader{Name: m.Name, Type: oracleMetricType(m.Name)})
	}

	type group struct {
		rng  int
		keys []string
		acc  *oracleAcc
	}
	groups := map[string]*group{}
	totals := make([]*oracleAcc, len(req.DateRanges))
	for i := range totals {
		totals[i] = newOracleAcc()
	}
	for _, it := range oracleItems(req, events, siteID, loc) {
		date := it.local.Format(time.DateOnly)
		if req.DimensionFilter != nil && !oracleFilterBy(req.DimensionFilter, it.dim) {
			continue
		}
		for ri, r := range req.DateRanges {
			if date < resolve(r.StartDate) || date > resolve(r.EndDate) {
				continue
			}
			var keys []string
			for _, d := range req.Dimensions {
				keys = append(keys, it.dim(d.Name))
			}
			id := strconv.Itoa(ri) + "\x00" + strings.Join(keys, "\x00")
			g := groups[id]
			if g == nil {
				g = &group{rng: ri, keys: keys, acc: newOracleAcc()}
				groups[id] = g
			}
			it.add(g.acc)
			it.add(totals[ri])
		}
	}

	type row struct {
		rng  int
		keys []string
		ms   []float64
	}
	metricsOf := func(a *oracleAcc) []float64 {
		var out []float64
		for _, m := range req.Metrics {
			out = append(out, a.metric(m.Name))
		}
		return out
	}
	var rows []row
	for _, g := range groups {
		ms := metricsOf(g.acc)
		if !req.KeepEmptyRows && len(ms) > 0 && !slices.ContainsFunc(ms, func(v float64) bool { return v != 0 }) {
			continue
		}
		if req.MetricFilter != nil && !oracleMetricFilter(req.MetricFilter, g.acc) {
			continue
		}
		rows = append(rows, row{g.rng, g.keys, ms})
	}
	dimIndex := func(name string) int {
		return slices.IndexFunc(req.Dimensions, func(d plan.Dimension) bool { return d.Name == name })
	}
	metricIndex := func(name string) int {
		return slices.IndexFunc(req.Metrics, func(m plan.Metric) bool { return m.Name == name })
	}
	slices.SortFunc(rows, func(a, b row) int {
		orderBys := req.OrderBys
		if len(orderBys) == 0 && len(req.Metrics) > 0 {
			orderBys = []plan.OrderBy{{Metric: &plan.MetricOrderBy{MetricName: req.Metrics[0].Name}, Desc: true}}
		}
		for _, o := range orderBys {
			var c int
			switch {
			case o.Metric != nil:
				i := metricIndex(o.Metric.MetricName)
				c = cmp.Compare(a.ms[i], b.ms[i])
			case o.Dimension.DimensionName == "dateRange":
				c = cmp.Compare(a.rng, b.rng)
			case o.Dimension.OrderType == "CASE_INSENSITIVE_ALPHANUMERIC":
				i := dimIndex(o.Dimension.DimensionName)
				c = strings.Compare(strings.ToLower(a.keys[i]), strings.ToLower(b.keys[i]))
			case o.Dimension.OrderType == "NUMERIC":
				i := dimIndex(o.Dimension.DimensionName)
				c = compareNumeric(a.keys[i], b.keys[i])
			default:
				i := dimIndex(o.Dimension.DimensionName)
				c = strings.Compare(a.keys[i], b.keys[i])
			}
			if o.Desc {
				c = -c
			}
			if c != 0 {
				return c
			}
		}
		return cmp.Or(cmp.Compare(a.rng, b.rng), slices.Compare(a.keys, b.keys))
	})

	rangeName := func(i int) string {
		return cmp.Or(req.DateRanges[i].Name, "date_range_"+strconv.Itoa(i))
	}
	values := func(ss []string) []plan.Value {
		var out []plan.Value
		for _, s := range ss {
			out = append(out, plan.Value{Value: s})
		}
		return out
	}
	format := func(ms []float64) []plan.Value {
		var out []plan.Value
		for i, m := range ms {
			if oracleMetricType(req.Metrics[i].Name) == "TYPE_INTEGER" {
				out = append(out, plan.Value{Value: strconv.FormatInt(int64(m), 10)})
			} else {
				out = append(out, plan.Value{Value: strconv.FormatFloat(m, 'f', -1, 64)})
			}
		}
		return out
	}
	resp.RowCount = int64(len(rows))
	limit := cmp.Or(int(req.Limit), 10000)
	for i := int(req.Offset); i < len(rows) && i < int(req.Offset)+limit; i++ {
		r := rows[i]
		dv := slices.Clone(r.keys)
		if multi {
			dv = append(dv, rangeName(r.rng))
		}
		resp.Rows = append(resp.Rows, plan.Row{DimensionValues: values(dv), MetricValues: format(r.ms)})
	}

	summary := func(reserved string, pick func(ri int) []float64) []plan.Row {
		var out []plan.Row
		for ri := range req.DateRanges {
			var dv []string
			for range req.Dimensions {
				dv = append(dv, reserved)
			}
			if multi {
				dv = append(dv, rangeName(ri))
			}
			out = append(out, plan.Row{DimensionValues: values(dv), MetricValues: format(pick(ri))})
		}
		return out
	}
	extreme := func(better func(a, b float64) bool) func(ri int) []float64 {
		return func(ri int) []float64 {
			out := make([]float64, len(req.Metrics))
			seen := false
			for _, r := range rows {
				if r.rng != ri {
					continue
				}
				for i, v := range r.ms {
					if !seen || better(v, out[i]) {
						out[i] = v
					}
				}
				seen = true
			}
			return out
		}
	}
	if len(req.Metrics) > 0 {
		for _, a := range req.MetricAggregations {
			switch a {
			case "TOTAL":
				resp.Totals = summary("RESERVED_TOTAL", func(ri int) []float64 { return metricsOf(totals[ri]) })
			case "MAXIMUM":
				resp.Maximums = summary("RESERVED_MAX", extreme(func(a, b float64) bool { return a > b }))
			case "MINIMUM":
				resp.Minimums = summary("RESERVED_MIN", extreme(func(a, b float64) bool { return a < b }))
			}
		}
	}
	return resp
}

// oracleAcc accumulates one group's events.
type oracleAcc struct {
	events, views, keyEvents, engageMs int64
	users, active, first               map[uint64]bool
	// Session and event-session reports: sessions, engaged ones, sum of
	// durations; seen holds an event-session report's sessions counted.
	sessions, engaged, durationMicros int64
	seen                              map[*oracleSession]bool
}

func newOracleAcc() *oracleAcc {
	return &oracleAcc{users: map[uint64]bool{}, active: map[uint64]bool{}, first: map[uint64]bool{}, seen: map[*oracleSession]bool{}}
}

// oracleEventActive is whether e makes its user active (GA4: an engaged
// session's flag, a first visit, engagement time).
func oracleEventActive(e *protocol.Event) bool {
	return e.Flags&(protocol.FlagEngaged|protocol.FlagFirstVisit) != 0 || e.EngageMs > 0
}

// oracleUserDay is a visitor's local date.
type oracleUserDay struct {
	visitor uint64
	date    string
}

// oracleActiveDays are the user-days of site's events on which the user
// was active (BigQuery export's is_active_user: active at any point in the
// calendar day), by one of its events of the day.
func oracleActiveDays(events []protocol.Event, siteID uint32, loc *time.Location) map[oracleUserDay]bool {
	out := map[oracleUserDay]bool{}
	for i := range events {
		if e := &events[i]; e.Site == siteID && oracleEventActive(e) {
			out[oracleUserDay{e.Visitor, time.UnixMicro(e.TimeMicros).In(loc).Format(time.DateOnly)}] = true
		}
	}
	return out
}

// add counts e; active: its user counts as active under it (the user is
// active on e's day, or in e's session for session reports).
func (a *oracleAcc) add(e *protocol.Event, active bool) {
	a.events++
	if e.Name == "page_view" {
		a.views++
	}
	if e.Flags&protocol.FlagKeyEvent != 0 {
		a.keyEvents++
	}
	a.engageMs += e.EngageMs
	a.users[e.Visitor] = true
	if active {
		a.active[e.Visitor] = true
	}
	if e.Flags&protocol.FlagFirstVisit != 0 {
		a.first[e.Visitor] = true
	}
}

func (a *oracleAcc) metric(name string) float64 {
	switch name {
	case "eventCount":
		return float64(a.events)
	case "screenPageViews":
		return float64(a.views)
	case "keyEvents":
		return float64(a.keyEvents)
	case "totalUsers":
		return float64(len(a.users))
	case "activeUsers":
		return float64(len(a.active))
	case "newUsers":
		return float64(len(a.first))
	case "eventCountPerUser":
		if len(a.active) == 0 {
			return 0
		}
		return float64(a.events) / float64(len(a.active))
	case "userEngagementDuration":
		return float64(a.engageMs) / 1000
	}
	per := func(x int64, n int) float64 {
		if n == 0 {
			return 0
		}
		return float64(x) / float64(n)
	}
	switch name {
	case "sessions":
		return float64(a.sessions)
	case "engagedSessions":
		return float64(a.engaged)
	case "engagementRate":
		return per(a.engaged, int(a.sessions))
	case "bounceRate":
		return per(a.sessions-a.engaged, int(a.sessions))
	case "averageSessionDuration":
		if a.sessions == 0 {
			return 0
		}
		return float64(a.durationMicros) / 1000000 / float64(a.sessions)
	case "screenPageViewsPerSession":
		return per(a.views, int(a.sessions))
	case "eventsPerSession":
		return per(a.events, int(a.sessions))
	case "sessionsPerUser":
		return per(a.sessions, len(a.active))
	}
	panic("oracle: unknown metric " + name)
}

func oracleMetricType(name string) string {
	switch name {
	case "eventCountPerUser", "engagementRate", "bounceRate", "screenPageViewsPerSession", "eventsPerSession", "sessionsPerUser":
		return "TYPE_FLOAT"
	case "userEngagementDuration", "averageSessionDuration":
		return "TYPE_SECONDS"
	}
	return "TYPE_INTEGER"
}

func orNotSet(s string) string { return cmp.Or(s, "(not set)") }

// oracleTraffic is a traffic dimension of the session e starts.
func oracleTraffic(name string, e *protocol.Event) string {
	t := channel.Attribute(e.Path, e.Referrer)
	return map[string]string{"sessionSource": t.Source, "sessionMedium": t.Medium,
		"sessionCampaignName": t.Campaign, "sessionDefaultChannelGroup": t.Group(),
		"sessionSourceMedium": t.Source + " / " + t.Medium}[name]
}

// oracleDim is dimension name's value for e at local time.
func oracleDim(name string, e *protocol.Event, local time.Time) string {
	switch name {
	case "date":
		return local.Format("20060102")
	case "dateHour":
		return local.Format("2006010215")
	case "dateHourMinute":
		return local.Format("200601021504")
	case "year":
		return local.Format("2006")
	case "yearMonth":
		return local.Format("200601")
	case "month":
		return local.Format("01")
	case "day":
		return local.Format("02")
	case "hour":
		return local.Format("15")
	case "minute":
		return local.Format("04")
	case "dayOfWeek":
		return strconv.Itoa(int(local.Weekday()))
	case "dayOfWeekName":
		return local.Weekday().String()
	case "pagePath":
		path, _, _ := strings.Cut(e.Path, "?")
		return orNotSet(path)
	case "pagePathPlusQueryString":
		return orNotSet(e.Path)
	case "pageTitle":
		return orNotSet(e.Title)
	case "transactionId":
		return orNotSet(e.TransactionID)
	case "currencyCode":
		return orNotSet(e.Currency)
	case "hostName":
		return orNotSet(e.Host)
	case "fullPageUrl":
		return orNotSet(e.Host + e.Path)
	case "pageReferrer":
		return orNotSet(e.Referrer)
	case "eventName":
		return e.Name
	case "isKeyEvent":
		return strconv.FormatBool(e.Flags&protocol.FlagKeyEvent != 0)
	case "country":
		return orNotSet(cmp.Or(plan.CountryNames[e.Country], e.Country))
	case "countryId":
		return orNotSet(e.Country)
	case "region":
		return orNotSet(e.Region)
	case "city":
		return orNotSet(e.City)
	case "language":
		base, _, _ := strings.Cut(e.Language, "-")
		return orNotSet(cmp.Or(plan.LanguageNames[base], e.Language))
	case "languageCode":
		return orNotSet(e.Language)
	case "browser":
		return orNotSet(cmp.Or(names.Stored[e.Browser], e.Browser))
	case "operatingSystem":
		return orNotSet(cmp.Or(names.Stored[e.OS], e.OS))
	case "deviceCategory":
		return orNotSet(e.Device)
	case "screenResolution":
		return orNotSet(e.Screen)
	case "sessionSource", "sessionMedium", "sessionCampaignName", "sessionDefaultChannelGroup", "sessionSourceMedium",
		"landingPage", "landingPagePlusQueryString", "newVsReturning", "firstUserSource":
		// The session's value, on each of its events.
		s := oracleSessionOf[e]
		if s == nil {
			panic("oracle: event of no session (markSessions)")
		}
		return s.dim(name, local)
	}
	if p, ok := strings.CutPrefix(name, "customEvent:"); ok {
		return orNotSet(e.Params[p])
	}
	if p, ok := strings.CutPrefix(name, "customUser:"); ok {
		return orNotSet(e.UserProps[p])
	}
	panic("oracle: unknown dimension " + name)
}

// oracleNumber is the number a value reads as for NUMERIC ordering and
// numeric dimension filters.
var oracleNumber = regexp.MustCompile(`^-?[0-9]+(\.[0-9]+)?$`)

func parseNumber(s string) (float64, bool) {
	if !oracleNumber.MatchString(s) {
		return 0, false
	}
	f, err := strconv.ParseFloat(s, 64)
	return f, err == nil
}

// compareNumeric orders values that are no number below all numbers.
func compareNumeric(a, b string) int {
	x, xok := parseNumber(a)
	y, yok := parseNumber(b)
	switch {
	case !xok && !yok:
		return 0
	case !xok:
		return -1
	case !yok:
		return 1
	}
	return cmp.Compare(x, y)
}

func oracleDimFilter(f *plan.FilterExpression, e *protocol.Event, local time.Time) bool {
	return oracleFilterBy(f, func(name string) string { return oracleDim(name, e, local) })
}

// oracleFilterBy evaluates a dimension filter over the values dim gives.
func oracleFilterBy(f *plan.FilterExpression, dim func(name string) string) bool {
	return oracleEval(f, func(leaf *plan.Filter) bool {
		v := dim(leaf.FieldName)
		switch {
		case leaf.StringFilter != nil:
			return oracleString(leaf.StringFilter, v)
		case leaf.InListFilter != nil:
			for _, x := range leaf.InListFilter.Values {
				if v == x || (!leaf.InListFilter.CaseSensitive && strings.EqualFold(v, x)) {
					return true
				}
			}
			return false
		case leaf.EmptyFilter != nil:
			return v == "" || v == "(not set)"
		}
		n, ok := parseNumber(v)
		return ok && oracleNumeric(leaf, n)
	})
}

func oracleMetricFilter(f *plan.FilterExpression, a *oracleAcc) bool {
	return oracleEval(f, func(leaf *plan.Filter) bool { return oracleNumeric(leaf, a.metric(leaf.FieldName)) })
}

func oracleEval(f *plan.FilterExpression, leaf func(*plan.Filter) bool) bool {
	switch {
	case f.AndGroup != nil:
		for i := range f.AndGroup.Expressions {
			if !oracleEval(&f.AndGroup.Expressions[i], leaf) {
				return false
			}
		}
		return true
	case f.OrGroup != nil:
		for i := range f.OrGroup.Expressions {
			if oracleEval(&f.OrGroup.Expressions[i], leaf) {
				return true
			}
		}
		return false
	case f.NotExpression != nil:
		return !oracleEval(f.NotExpression, leaf)
	}
	return leaf(f.Filter)
}

// oracleString matches like GA4 with RE2 semantics: case-insensitive
// means equal under Unicode simple case folding, as (?i) does.
func oracleString(f *plan.StringFilter, v string) bool {
	value := f.Value
	switch f.MatchType {
	case "FULL_REGEXP":
		value = "^(?:" + value + ")$"
	case "PARTIAL_REGEXP":
	case "BEGINS_WITH":
		if f.CaseSensitive {
			return strings.HasPrefix(v, value)
		}
		value = `\A` + regexp.QuoteMeta(value)
	case "ENDS_WITH":
		if f.CaseSensitive {
			return strings.HasSuffix(v, value)
		}
		value = regexp.QuoteMeta(value) + `\z`
	case "CONTAINS":
		if f.CaseSensitive {
			return strings.Contains(v, value)
		}
		value = regexp.QuoteMeta(value)
	default:
		return v == value || (!f.CaseSensitive && strings.EqualFold(v, value))
	}
	if !f.CaseSensitive {
		value = "(?i)" + value
	}
	return regexp.MustCompile(value).MatchString(v)
}

func oracleNumeric(f *plan.Filter, x float64) bool {
	num := func(v plan.NumericValue) float64 {
		if v.Int64Value != nil {
			return float64(*v.Int64Value)
		}
		return *v.DoubleValue
	}
	if b := f.BetweenFilter; b != nil {
		return x >= num(b.FromValue) && x <= num(b.ToValue)
	}
	y := num(f.NumericFilter.Value)
	switch f.NumericFilter.Operation {
	case "EQUAL":
		return x == y
	case "LESS_THAN":
		return x < y
	case "LESS_THAN_OR_EQUAL":
		return x <= y
	case "GREATER_THAN":
		return x > y
	}
	return x >= y
}
