package query

import (
	"maps"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/avila-analytics/avila/storage/postgres"
)

// Reports over whole local days read the daily rollups (rollup_days, see
// storage/postgres) when the rollups hold everything the report asks: time
// dimensions of a day (or of an hour, from the hourly rows, when no
// dictionary dimension is asked), at most one dictionary dimension among the rolled
// kinds (in the report and its dimension filter together), metrics the
// rollups carry, no metric filter, and dates from the site's first rolled
// day on. Event reports by the session's traffic source or landing page
// read the rows that count each event under its session's
// (postgres.RollupSessionTraffic, RollupLandingPage), and sessions by page
// path or title alone the sessions sketches by page (RollupPageSessions,
// RollupTitleSessions). Anything else reads events, among them other event
// reports by session- or user-scoped dimensions and other event-session
// reports (schema.go), which join events to their sessions. Counters are
// exact; user and session counts merge HyperLogLog sketches (about 0.8%
// standard error, exact for small counts).

// route says which tables a report may read.
type route int

const (
	routeAuto    route = iota // rollups when they cover the report, else events
	routeEvents               // events only
	routeRollups              // rollups only; a report they do not cover fails (tests)
)

// rollupDayExprs are the time dimensions a rollup day answers, over the
// rollup row "e" (e.day is the local date).
var rollupDayExprs = map[string]string{
	"date":          "to_char(e.day, 'YYYYMMDD')",
	"year":          "to_char(e.day, 'YYYY')",
	"yearMonth":     "to_char(e.day, 'YYYYMM')",
	"month":         "to_char(e.day, 'MM')",
	"day":           "to_char(e.day, 'DD')",
	"dayOfWeek":     "extract(dow FROM e.day)::int::text",
	"dayOfWeekName": "to_char(e.day, 'FMDay')",
}

// rollupHourExprs are the time dimensions the hourly rows (kind
// postgres.RollupHour, dim_id the local hour) answer besides the day's.
var rollupHourExprs = map[string]string{
	"dateHour": "to_char(e.day, 'YYYYMMDD') || lpad(e.dim_id::text, 2, '0')",
	"hour":     "lpad(e.dim_id::text, 2, '0')",
}

// rollupKindOf maps an events dims column to its rollup kind.
var rollupKindOf = func() map[string]postgres.DimKind {
	m := make(map[string]postgres.DimKind, len(postgres.RollupKinds))
	for _, k := range postgres.RollupKinds {
		m[postgres.RollupColumns[k]] = k
	}
	return m
}()

// itemRollupKindOf maps an item dimension's column (item profile, list,
// promotion) to its rollup kind.
var itemRollupKindOf = func() map[string]postgres.DimKind {
	m := make(map[string]postgres.DimKind, len(postgres.ItemRollupKinds))
	for _, k := range postgres.ItemRollupKinds {
		m[postgres.DimColumns[k]] = k
	}
	return m
}()

// sessionRollupKindOf maps a sessions dims column to its session rollup kind.
var sessionRollupKindOf = func() map[string]postgres.DimKind {
	m := make(map[string]postgres.DimKind, len(postgres.SessionRollupKinds))
	for _, k := range postgres.SessionRollupKinds {
		m[postgres.DimColumns[k]] = k
	}
	return m
}()

// pageSessionsKindOf maps an events dims column to the rollup kind whose
// sketch holds the sessions with an event of its value
// (postgres.SessionSketchKinds): event-session reports by that dimension.
var pageSessionsKindOf = func() map[string]postgres.DimKind {
	m := make(map[string]postgres.DimKind, len(postgres.SessionSketchKinds))
	for k, base := range postgres.SessionSketchKinds {
		m[postgres.DimColumns[base]] = k
	}
	return m
}()

// rollupMetric computes a metric from a group's rollup cell.
type rollupMetric func(c *rollupCell) (int64, float64)

// rollupMetrics are the metrics the rollups carry, with the sketches each
// needs (bits of sketchUsers, sketchActive, sketchNew).
var rollupMetrics = map[string]struct {
	sketches int
	value    rollupMetric
}{
	"eventCount":      {0, func(c *rollupCell) (int64, float64) { return c.events, 0 }},
	"screenPageViews": {0, func(c *rollupCell) (int64, float64) { return c.views, 0 }},
	"keyEvents":       {0, func(c *rollupCell) (int64, float64) { return c.keyEvents, 0 }},
	"totalUsers":      {sketchUsers, func(c *rollupCell) (int64, float64) { return c.estimate(sketchUsers), 0 }},
	"activeUsers":     {sketchActive, func(c *rollupCell) (int64, float64) { return c.estimate(sketchActive), 0 }},
	"newUsers":        {sketchNew, func(c *rollupCell) (int64, float64) { return c.estimate(sketchNew), 0 }},
	"eventCountPerUser": {sketchActive, func(c *rollupCell) (int64, float64) {
		a := c.estimate(sketchActive)
		if a == 0 {
			return 0, 0
		}
		return 0, float64(c.events) / float64(a)
	}},
	"userEngagementDuration": {0, func(c *rollupCell) (int64, float64) { return 0, float64(c.engageMs) / 1000 }},
}

// amountValue is the metric of one amounts slot, an integer count or an
// amount of money.
func amountValue(slot int, integer bool) rollupMetric {
	return func(c *rollupCell) (int64, float64) {
		if integer {
			return int64(c.amounts[slot]), 0
		}
		return 0, c.amounts[slot]
	}
}

// commerceRollupMetrics are the ecommerce metrics the event rollups carry
// in their amounts (postgres.Amounts), as commerce.go defines them over
// events joined to event_commerce.
var commerceRollupMetrics = map[string]rollupMetric{
	"totalRevenue": func(c *rollupCell) (int64, float64) {
		return 0, c.amounts[postgres.AmountPurchaseRevenue] + c.amounts[postgres.AmountInAppRevenue] - c.amounts[postgres.AmountRefund]
	},
	"purchaseRevenue": func(c *rollupCell) (int64, float64) {
		return 0, c.amounts[postgres.AmountPurchaseRevenue] - c.amounts[postgres.AmountRefund]
	},
	"refundAmount":       amountValue(postgres.AmountRefund, false),
	"shippingAmount":     amountValue(postgres.AmountShipping, false),
	"taxAmount":          amountValue(postgres.AmountTax, false),
	"transactions":       amountValue(postgres.AmountTransactions, true),
	"ecommercePurchases": amountValue(postgres.AmountPurchases, true),
	"averagePurchaseRevenue": func(c *rollupCell) (int64, float64) {
		n := c.amounts[postgres.AmountPurchases]
		if n == 0 {
			return 0, 0
		}
		return 0, (c.amounts[postgres.AmountPurchaseRevenue] - c.amounts[postgres.AmountRefund]) / n
	},
}

// itemRollupMetrics are the item metrics the item kinds' rollups carry.
var itemRollupMetrics = map[string]struct {
	sketches int
	value    rollupMetric
}{
	"itemRevenue": {0, func(c *rollupCell) (int64, float64) {
		return 0, c.amounts[postgres.AmountItemRevenue] - c.amounts[postgres.AmountItemRefund]
	}},
	"itemsPurchased":   {0, amountValue(postgres.AmountItemsPurchased, true)},
	"itemsViewed":      {0, amountValue(postgres.AmountItemsViewed, true)},
	"itemsAddedToCart": {0, amountValue(postgres.AmountItemsAdded, true)},
}

// eventRollupMetrics are rollupMetrics and commerceRollupMetrics: what
// rollup_days answers for event reports.
var eventRollupMetrics = func() map[string]struct {
	sketches int
	value    rollupMetric
} {
	m := maps.Clone(rollupMetrics)
	for name, v := range commerceRollupMetrics {
		m[name] = struct {
			sketches int
			value    rollupMetric
		}{0, v}
	}
	return m
}()

// readsAmounts reports whether metric name reads the rollups' amounts.
func readsAmounts(name string) bool {
	_, ev := commerceRollupMetrics[name]
	_, it := itemRollupMetrics[name]
	return ev || it
}

// perSessionValue divides x by the cell's sessions; 0 without sessions.
func perSessionValue(x int64, c *rollupCell) float64 {
	if c.sessions == 0 {
		return 0
	}
	return float64(x) / float64(c.sessions)
}

// sessionRollupMetrics are the metrics the session rollups carry, as
// session reports define them over sessions rows (metrics.go): event
// counters are the sessions' counters, users those of the sessions.
var sessionRollupMetrics = func() map[string]struct {
	sketches int
	value    rollupMetric
} {
	m := maps.Clone(rollupMetrics)
	for name, def := range map[string]struct {
		sketches int
		value    rollupMetric
	}{
		"sessions":        {0, func(c *rollupCell) (int64, float64) { return c.sessions, 0 }},
		"engagedSessions": {0, func(c *rollupCell) (int64, float64) { return c.engaged, 0 }},
		"engagementRate":  {0, func(c *rollupCell) (int64, float64) { return 0, perSessionValue(c.engaged, c) }},
		"bounceRate":      {0, func(c *rollupCell) (int64, float64) { return 0, perSessionValue(c.sessions-c.engaged, c) }},
		"averageSessionDuration": {0, func(c *rollupCell) (int64, float64) {
			if c.sessions == 0 {
				return 0, 0
			}
			return 0, float64(c.durationUs) / 1000000 / float64(c.sessions)
		}},
		"screenPageViewsPerSession": {0, func(c *rollupCell) (int64, float64) { return 0, perSessionValue(c.views, c) }},
		"eventsPerSession":          {0, func(c *rollupCell) (int64, float64) { return 0, perSessionValue(c.events, c) }},
		"sessionsPerUser": {sketchActive, func(c *rollupCell) (int64, float64) {
			a := c.estimate(sketchActive)
			if a == 0 {
				return 0, 0
			}
			return 0, float64(c.sessions) / float64(a)
		}},
	} {
		m[name] = def
	}
	return m
}()

// pageSessionsRollupMetrics are the metrics of event-session reports the
// sessions sketches by page answer (postgres.RollupPageSessions,
// RollupTitleSessions): the sessions in which the value occurred, whose
// hashes the users sketch holds, and the value's event counters, which
// mixedMetricExprs sums over the same events.
var pageSessionsRollupMetrics = map[string]struct {
	sketches int
	value    rollupMetric
}{
	"sessions":               {sketchUsers, func(c *rollupCell) (int64, float64) { return c.estimate(sketchUsers), 0 }},
	"eventCount":             rollupMetrics["eventCount"],
	"screenPageViews":        rollupMetrics["screenPageViews"],
	"keyEvents":              rollupMetrics["keyEvents"],
	"userEngagementDuration": rollupMetrics["userEngagementDuration"],
}

// metricsOf are the rollup metrics of p's kind of report.
func metricsOf(p *plan) map[string]struct {
	sketches int
	value    rollupMetric
} {
	switch {
	case p.mixed:
		return pageSessionsRollupMetrics
	case p.sessions:
		return sessionRollupMetrics
	case p.items:
		return itemRollupMetrics
	}
	return eventRollupMetrics
}

// Sketch columns of rollup_days, as bits.
const (
	sketchUsers = 1 << iota
	sketchActive
	sketchNew
)

var sketchColumns = []string{"users", "active_users", "new_users"}

// rollupPlan is how a covered report reads the rollups.
type rollupPlan struct {
	sessions bool             // session_rollups (a session report), else rollup_days
	items    bool             // the item kinds' rows (an item report)
	amounts  bool             // the report reads amounts
	kind     postgres.DimKind // 0: all events (no dictionary dimension); RollupHour: by hour; RollupItems: all items
	column   string           // the events column of kind, "" for 0
	sketches int              // sketch columns the report counts
}

// reads are the sketch columns rp reads: its sketches, and the active one
// with the users one from rollup_days, whose users sketch may be stored
// as a marker for the active one (expandRaw).
func (rp rollupPlan) reads() int {
	if !rp.sessions && rp.sketches&sketchUsers != 0 {
		return rp.sketches | sketchActive
	}
	return rp.sketches
}

// expandRaw replaces the markers among raw's users sketches (read with
// rp.reads) by the active sketches beside them (postgres.ExpandUsers) and
// drops the active sketches when rp does not count them.
func (rp rollupPlan) expandRaw(raw *[3][][]byte) {
	if raw[0] == nil || raw[1] == nil {
		return
	}
	for k, b := range raw[0] {
		raw[0][k] = postgres.ExpandUsers(b, raw[1][k])
	}
	if rp.sketches&sketchActive == 0 {
		raw[1] = nil
	}
}

// coverByRollups returns how p reads the rollups, or false when they do not
// hold what p asks.
func coverByRollups(p *plan) (rollupPlan, bool) {
	rp := rollupPlan{sessions: p.sessions, items: p.items}
	kindOf, from := rollupKindOf, p.site.rollupsFrom
	switch {
	case p.sessions:
		kindOf, from = sessionRollupKindOf, p.site.sessionRollupsFrom
	case p.items:
		// Item rows are rolled up by item dimension and day only.
		kindOf, from = itemRollupKindOf, p.site.commerceRollupsFrom
	case p.mixed:
		// Sessions by a page's path or title: the sessions sketches.
		kindOf, from = pageSessionsKindOf, p.site.pageRollupsFrom
	}
	for _, m := range p.metrics {
		if readsAmounts(m.name) {
			rp.amounts = true
			from = p.site.commerceRollupsFrom
		}
	}
	if p.metricFilter != nil || from.IsZero() || (p.mixed && rp.amounts) {
		return rp, false
	}
	hourly := false
	dimOK := func(d *dimDef) bool {
		if _, ok := rollupDayExprs[d.name]; ok {
			return true
		}
		if _, ok := rollupHourExprs[d.name]; ok && !p.sessions && !p.items {
			hourly = true
			return true
		}
		if d.param != "" || len(d.joins) == 0 {
			return false
		}
		if !p.sessions && !p.mixed && !p.items && landingDim(d) {
			// The RollupLandingPage rows count each event under its
			// session's landing page.
			if rp.column != "" && rp.column != landingColumn {
				return false
			}
			rp.column = landingColumn
			return true
		}
		if !p.sessions && (d.scope == scopeSession || d.scope == scopeUser) {
			// rollup_days' dims kinds count events by their own traffic
			// columns, set on a session's first event only; the session's
			// traffic source on every event is the RollupSessionTraffic
			// rows'. Other session and user values need the events joined
			// to their sessions.
			if !sessionTrafficDim(d) || (rp.column != "" && rp.column != sessionTrafficColumn) {
				return false
			}
			rp.column = sessionTrafficColumn
			return true
		}
		for _, j := range d.joins {
			if _, ok := kindOf[j.column]; !ok || (rp.column != "" && rp.column != j.column) {
				return false
			}
			rp.column = j.column
		}
		return true
	}
	for _, d := range p.dims {
		if !dimOK(d) {
			return rp, false
		}
	}
	if !p.dimFilter.all(func(l *filterLeaf) bool { return l.dim != nil && dimOK(l.dim) }) {
		return rp, false
	}
	if hourly && rp.column != "" {
		return rp, false // hours are rolled up for all events only
	}
	if hourly && p.site.hourRollupsFrom.After(from) {
		from = p.site.hourRollupsFrom
	}
	switch {
	case rp.column == sessionTrafficColumn:
		from = p.site.trafficRollupsFrom
	case rp.column == landingColumn:
		if rp.amounts {
			return rp, false // landing page rows count events only
		}
		from = p.site.pageRollupsFrom
	case p.mixed && rp.column == "":
		return rp, false // sessions sketches are kept by page only
	}
	for _, r := range p.ranges {
		y, m, d := r.lo.In(p.site.loc).Date()
		if from.IsZero() || time.Date(y, m, d, 0, 0, 0, 0, time.UTC).Before(from) {
			return rp, false
		}
	}
	for _, m := range p.metrics {
		rm, ok := metricsOf(p)[m.name]
		if !ok {
			return rp, false
		}
		if rp.column == landingColumn && rm.sketches != 0 {
			return rp, false // landing page rows hold no users
		}
		rp.sketches |= rm.sketches
	}
	switch rp.column {
	case "":
	case sessionTrafficColumn:
		rp.kind = postgres.RollupSessionTraffic
	case landingColumn:
		rp.kind = postgres.RollupLandingPage
	default:
		rp.kind = kindOf[rp.column]
	}
	if hourly {
		rp.kind = postgres.RollupHour
	}
	if p.items && rp.column == "" {
		rp.kind = postgres.RollupItems
	}
	return rp, true
}

// all reports whether every leaf of n satisfies ok (true for nil).
func (n *filterNode) all(ok func(*filterLeaf) bool) bool {
	if n == nil {
		return true
	}
	if n.leaf != nil && !ok(n.leaf) {
		return false
	}
	if n.not != nil && !n.not.all(ok) {
		return false
	}
	for _, k := range append(slices.Clip(n.and), n.or...) {
		if !k.all(ok) {
			return false
		}
	}
	return true
}

// eventCounters are rollup_days' counter columns; sessionCounters are
// session_rollups', the same first. A rollupCell holds them in this order.
var (
	eventCounters   = []string{"events", "page_views", "key_events", "engagement_ms"}
	sessionCounters = append(slices.Clip(eventCounters), "sessions", "engaged", "duration_us")
)

// counters are the counter columns of rp's table.
func (rp rollupPlan) counters() []string {
	if rp.sessions {
		return sessionCounters
	}
	return eventCounters
}

// buildRollupSQL writes the statement reading p's groups from the rollups:
// columns k0 (date range index), k1..kN (dimensions), the summed counters
// (events, page views, key events, engagement ms) and, per sketch column
// read, the array of the group's sketches. Parameters: $1 site id, $2 time
// zone, $3/$4 earliest start and latest end, $5/$6/$7 the ranges, then
// filter values and name tables.
//
// Without sketches, time dimensions or a filter, the rows are first summed
// per dictionary id ("pre"), so the dimension expressions (a page path cut
// from its query string, display names) run once per distinct value rather
// than once per day and value.
//
// With ids, a last column lists each group's rollup dim_ids; with only,
// the statement reads the rows of those dim_ids and no other.
func buildRollupSQL(p *plan, rp rollupPlan, ids bool, only []int32) reportSQL {
	w := &sqlWriter{args: fixedArgValues(p)[:7], rollup: true, rollupHour: rp.kind == postgres.RollupHour,
		rollupTraffic: rp.kind == postgres.RollupSessionTraffic, items: p.items}
	w.Grow(1024)
	joins := append(joinsOf(p.dims), p.dimFilter.joins()...)
	pre := presummable(p, rp, only)
	w.WriteString("WITH ")
	w.writeNameTables(joins)
	w.WriteString("r AS (SELECT r.*, $2::text AS tz FROM unnest($5::int[], $6::timestamptz[], $7::timestamptz[]) AS r(idx, lo, hi))\n")
	const where = " WHERE e.site_id = $1 AND e.day >= ($3::timestamptz AT TIME ZONE $2::text)::date AND e.day < ($4::timestamptz AT TIME ZONE $2::text)::date AND e.kind = "
	source := rollupSource(rp.reads(), rp.amounts)
	if rp.sessions {
		source = "session_rollups e"
	}
	fromRanges := " FROM " + source + " JOIN r ON e.day >= (r.lo AT TIME ZONE r.tz)::date AND e.day < (r.hi AT TIME ZONE r.tz)::date"
	counters := rp.counters()
	if pre {
		w.WriteString(", pre AS (SELECT r.idx, e.dim_id")
		for _, c := range counters {
			w.WriteString(", sum(e." + c + ") AS " + c)
		}
		for _, a := range rp.amountColumns() {
			w.WriteString(", sum(e." + a + ") AS " + a)
		}
		w.WriteString(fromRanges + where + strconv.Itoa(int(rp.kind)) + " GROUP BY 1, 2)\n")
		w.WriteString("SELECT e.idx")
	} else {
		w.WriteString("SELECT r.idx")
	}
	for _, d := range p.dims {
		w.WriteString(", ")
		w.WriteString(w.dimExpr(d))
	}
	for _, c := range counters {
		w.WriteString(", sum(e." + c + ")::bigint")
	}
	for _, a := range rp.amountColumns() {
		w.WriteString(", COALESCE(sum(e." + a + "), 0)::float8")
	}
	for i, col := range sketchColumns {
		if rp.reads()&(1<<i) != 0 {
			w.WriteString(", array_agg(e." + col + ")")
		}
	}
	if ids {
		w.WriteString(", array_agg(DISTINCT e.dim_id)")
	}
	if pre {
		w.WriteString(" FROM pre e")
	} else {
		w.WriteString(fromRanges)
	}
	w.writeRollupJoins(joins)
	if !pre {
		w.WriteString(where + strconv.Itoa(int(rp.kind)))
	}
	if p.dimFilter != nil {
		w.WriteString(" AND ")
		w.WriteString(w.filterSQL(p.dimFilter))
	}
	if only != nil {
		w.WriteString(" AND e.dim_id = ANY(" + w.bind(only) + "::int[])")
	}
	w.WriteString(" GROUP BY 1")
	for i := range p.dims {
		w.WriteString(", " + strconv.Itoa(i+2))
	}
	return reportSQL{text: w.String(), args: w.args}
}

// writeRollupJoins joins each of joins (once) on the rollup row "e"'s
// dim_id, or, for RollupSessionTraffic rows (rollupTraffic), on the
// column of the traffic profile dim_id names.
func (w *sqlWriter) writeRollupJoins(joins []*joinDef) {
	if !w.rollupTraffic {
		w.writeDictJoins(joins, func(*joinDef) string { return "e.dim_id" })
		return
	}
	w.WriteString(" LEFT JOIN " + postgres.TrafficProfile.Table + " " + trafficProfileAlias + " ON " + trafficProfileAlias + ".id = e.dim_id")
	w.writeDictJoins(joins, func(j *joinDef) string { return trafficProfileAlias + "." + j.column })
}

// sessionTrafficColumn stands in rollupPlan.column for the session's
// traffic profile, the dim_id of RollupSessionTraffic rows.
const sessionTrafficColumn = "session:traffic_id"

// landingColumn stands in rollupPlan.column for the session's landing
// page, the dim_id of RollupLandingPage rows.
const landingColumn = "session:page_id"

// landingDim reports whether d is the session's landing page
// (landingPage, landingPagePlusQueryString): every join the landing's.
func landingDim(d *dimDef) bool {
	if d.scope != scopeSession || len(d.joins) == 0 {
		return false
	}
	for _, j := range d.joins {
		if j != joinLanding {
			return false
		}
	}
	return true
}

// trafficProfileAlias is the traffic profile joined to RollupSessionTraffic
// rows.
const trafficProfileAlias = "r_traffic"

// sessionTrafficDim reports whether d is a session's traffic source
// (sessionSource, sessionMedium, sessionSourceMedium, sessionCampaignName,
// sessionDefaultChannelGroup): session-scoped, every join through the
// traffic profile.
func sessionTrafficDim(d *dimDef) bool {
	if d.scope != scopeSession || len(d.joins) == 0 {
		return false
	}
	for _, j := range d.joins {
		if j.profile != postgres.TrafficProfile {
			return false
		}
	}
	return true
}

// usesSessionTraffic reports whether an event report p read from the
// rollups reads RollupSessionTraffic rows.
func usesSessionTraffic(p *plan) bool {
	if p.sessions {
		return false
	}
	return slices.ContainsFunc(p.dims, sessionTrafficDim) ||
		!p.dimFilter.all(func(l *filterLeaf) bool { return l.dim == nil || !sessionTrafficDim(l.dim) })
}

// amountColumns are the columns a0, a1 … of the amounts slots rollupSource
// gives when rp reads amounts, else none.
func (rp rollupPlan) amountColumns() []string {
	if !rp.amounts {
		return nil
	}
	out := make([]string, postgres.NumAmounts)
	for i := range out {
		out[i] = "a" + strconv.Itoa(i)
	}
	return out
}

// rollupSource is the rollup rows "e" a statement reads: rollup_days and
// the packed days of rollup_packs unnested into rows of the same columns,
// with the sketch columns of sketches only (a pack's sketch arrays are
// large, and read only when asked for) and, with amounts, a column per
// amounts slot (a0 …; NULL: 0). The statement's conditions on site, kind
// and day reach both tables' keys.
func rollupSource(sketches int, amounts bool) string {
	cols := "dim_id, events, page_views, key_events, engagement_ms"
	arrays := "p.dim_ids, p.events, p.page_views, p.key_events, p.engagement_ms"
	for i, col := range sketchColumns {
		if sketches&(1<<i) != 0 {
			cols += ", " + col
			arrays += ", p." + col
		}
	}
	if !amounts {
		return "(SELECT site_id, kind, day, " + cols + " FROM rollup_days UNION ALL SELECT p.site_id, p.kind, p.day, u.* FROM rollup_packs p, unnest(" +
			arrays + ") AS u(" + cols + ")) e"
	}
	dayAmounts, packAmounts := "", ""
	for i := range postgres.NumAmounts {
		n := strconv.Itoa(i)
		dayAmounts += ", amounts[" + n + " + 1] AS a" + n
		// A pack's cell i (from 1) has its slots from (i - 1) * slots + 1.
		packAmounts += ", p.amounts[(u.ord - 1) * " + strconv.Itoa(postgres.NumAmounts) + " + " + n + " + 1]"
	}
	return "(SELECT site_id, kind, day, " + cols + dayAmounts + " FROM rollup_days UNION ALL SELECT p.site_id, p.kind, p.day, u." +
		strings.ReplaceAll(cols, ", ", ", u.") + packAmounts + " FROM rollup_packs p, unnest(" +
		arrays + ") WITH ORDINALITY AS u(" + cols + ", ord)) e"
}
