package rollups

import (
	"maps"
	"slices"
	"strconv"
	"time"

	"github.com/avila-analytics/avila/query/engine/sql"
	"github.com/avila-analytics/avila/query/plan"
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
			return int64(c.amount(slot)), 0
		}
		return 0, c.amount(slot)
	}
}

// commerceRollupMetrics are the ecommerce metrics the event rollups carry
// in their amounts (postgres.Amounts), as commerce.go defines them over
// events joined to event_commerce.
var commerceRollupMetrics = map[string]rollupMetric{
	"totalRevenue": func(c *rollupCell) (int64, float64) {
		return 0, c.amount(postgres.AmountPurchaseRevenue) + c.amount(postgres.AmountInAppRevenue) - c.amount(postgres.AmountRefund)
	},
	"purchaseRevenue": func(c *rollupCell) (int64, float64) {
		return 0, c.amount(postgres.AmountPurchaseRevenue) - c.amount(postgres.AmountRefund)
	},
	"refundAmount":       amountValue(postgres.AmountRefund, false),
	"shippingAmount":     amountValue(postgres.AmountShipping, false),
	"taxAmount":          amountValue(postgres.AmountTax, false),
	"transactions":       amountValue(postgres.AmountTransactions, true),
	"ecommercePurchases": amountValue(postgres.AmountPurchases, true),
	"averagePurchaseRevenue": func(c *rollupCell) (int64, float64) {
		n := c.amount(postgres.AmountPurchases)
		if n == 0 {
			return 0, 0
		}
		return 0, (c.amount(postgres.AmountPurchaseRevenue) - c.amount(postgres.AmountRefund)) / n
	},
}

// itemRollupMetrics are the item metrics the item kinds' rollups carry.
var itemRollupMetrics = map[string]struct {
	sketches int
	value    rollupMetric
}{
	"itemRevenue": {0, func(c *rollupCell) (int64, float64) {
		return 0, c.amount(postgres.AmountItemRevenue) - c.amount(postgres.AmountItemRefund)
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

// ReadsAmounts reports whether metric name reads the rollups' amounts.
func ReadsAmounts(name string) bool {
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
func metricsOf(p *plan.Plan) map[string]struct {
	sketches int
	value    rollupMetric
} {
	switch {
	case p.Mixed:
		return pageSessionsRollupMetrics
	case p.Sessions:
		return sessionRollupMetrics
	case p.Items:
		return itemRollupMetrics
	}
	return eventRollupMetrics
}

// Sketch columns of the rollups, as bits (postgres.RollupSketchColumns).
const (
	sketchUsers  = postgres.SketchUsers
	sketchActive = postgres.SketchActive
	sketchNew    = postgres.SketchNew
)

// Plan is how a covered report reads the rollups.
type Plan struct {
	sessions bool             // session_rollups (a session report), else rollup_days
	items    bool             // the item kinds' rows (an item report)
	amounts  bool             // the report reads amounts
	kind     postgres.DimKind // 0: all events (no dictionary dimension); RollupHour: by hour; RollupItems: all items
	column   string           // the events column of kind, "" for 0
	sketches int              // sketch columns the report counts
	// packs keeps the dim_ids of the packs the counters' read met, for the
	// sketches' read of the page's groups (postgres.RollupsOf.Packs).
	packs *postgres.PackDims
	// names keeps the values of dim_ids named before (nil: none kept).
	names *Names
}

// reads are the sketch columns rp reads: its sketches, and those its
// users and new users sketches need, their markers standing for the active
// sketch in rollup_days and session_rollups alike
// (postgres.RollupSketchReads).
func (rp Plan) reads() int {
	return postgres.RollupSketchReads(rp.sketches)
}

// expandRaw turns raw's sketches, read with rp.reads, into rp's
// (postgres.ExpandRollupSketches).
func (rp Plan) expandRaw(raw *[3][][]byte) {
	postgres.ExpandRollupSketches(raw, rp.sketches)
}

// Cover returns how p reads the rollups, or false when they do not
// hold what p asks.
func Cover(p *plan.Plan) (Plan, bool) {
	rp := Plan{sessions: p.Sessions, items: p.Items}
	kindOf, from := rollupKindOf, p.Site.RollupsFrom
	switch {
	case p.Sessions:
		kindOf, from = sessionRollupKindOf, p.Site.SessionRollupsFrom
	case p.Items:
		// Item rows are rolled up by item dimension and day only.
		kindOf, from = itemRollupKindOf, p.Site.CommerceRollupsFrom
	case p.Mixed:
		// Sessions by a page's path or title: the sessions sketches.
		kindOf, from = pageSessionsKindOf, p.Site.PageRollupsFrom
	}
	for _, m := range p.Metrics {
		if ReadsAmounts(m.Name) {
			rp.amounts = true
			from = p.Site.CommerceRollupsFrom
		}
	}
	if p.MetricFilter != nil || from.IsZero() || (p.Mixed && rp.amounts) {
		return rp, false
	}
	hourly := false
	dimOK := func(d *plan.DimDef) bool {
		if _, ok := sql.RollupDayExprs[d.Name]; ok {
			return true
		}
		if _, ok := sql.RollupHourExprs[d.Name]; ok && !p.Sessions && !p.Items {
			hourly = true
			return true
		}
		if d.Param != "" || len(d.Joins) == 0 {
			return false
		}
		if !p.Sessions && !p.Mixed && !p.Items && landingDim(d) {
			// The RollupLandingPage rows count each event under its
			// session's landing page.
			if rp.column != "" && rp.column != landingColumn {
				return false
			}
			rp.column = landingColumn
			return true
		}
		if !p.Sessions && (d.Scope == plan.ScopeSession || d.Scope == plan.ScopeUser) {
			// rollup_days' dims kinds count events by their own traffic
			// columns, set on a session's first event only; the session's
			// traffic source on every event is the RollupSessionTraffic
			// rows'. Other session and user values need the events joined
			// to their sessions.
			if !SessionTrafficDim(d) || (rp.column != "" && rp.column != sessionTrafficColumn) {
				return false
			}
			rp.column = sessionTrafficColumn
			return true
		}
		for _, j := range d.Joins {
			if _, ok := kindOf[j.Column]; !ok || (rp.column != "" && rp.column != j.Column) {
				return false
			}
			rp.column = j.Column
		}
		return true
	}
	for _, d := range p.Dims {
		if !dimOK(d) {
			return rp, false
		}
	}
	if !p.DimFilter.All(func(l *plan.FilterLeaf) bool { return l.Dim != nil && dimOK(l.Dim) }) {
		return rp, false
	}
	if hourly && rp.column != "" {
		return rp, false // hours are rolled up for all events only
	}
	if hourly && p.Site.HourRollupsFrom.After(from) {
		from = p.Site.HourRollupsFrom
	}
	switch {
	case rp.column == sessionTrafficColumn:
		from = p.Site.TrafficRollupsFrom
	case rp.column == landingColumn:
		if rp.amounts {
			return rp, false // landing page rows count events only
		}
		from = p.Site.PageRollupsFrom
	case p.Mixed && rp.column == "":
		return rp, false // sessions sketches are kept by page only
	}
	for _, r := range p.Ranges {
		y, m, d := r.Lo.In(p.Site.Loc).Date()
		if from.IsZero() || time.Date(y, m, d, 0, 0, 0, 0, time.UTC).Before(from) {
			return rp, false
		}
	}
	for _, m := range p.Metrics {
		rm, ok := metricsOf(p)[m.Name]
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
	if p.Items && rp.column == "" {
		rp.kind = postgres.RollupItems
	}
	return rp, true
}

// eventCounters are rollup_days' counter columns; sessionCounters are
// session_rollups', the same first. A rollupCell holds them in this order.
var (
	eventCounters   = postgres.RollupCounterColumns
	sessionCounters = postgres.SessionRollupCounterColumns
)

// counters are the counter columns of rp's table.
func (rp Plan) counters() []string {
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
func buildRollupSQL(p *plan.Plan, rp Plan, ids bool, only []int32) sql.Statement {
	w := &sql.Writer{Args: sql.FixedArgValues(p)[:7], Rollup: true, RollupHour: rp.kind == postgres.RollupHour,
		RollupTraffic: rp.kind == postgres.RollupSessionTraffic, Items: p.Items}
	w.Grow(1024)
	joins := append(sql.JoinsOf(p.Dims), p.DimFilter.Joins()...)
	pre := presummable(p, rp, only)
	w.WriteString("WITH ")
	w.WriteNameTables(joins)
	w.WriteString("r AS (SELECT r.*, $2::text AS tz FROM unnest($5::int[], $6::timestamptz[], $7::timestamptz[]) AS r(idx, lo, hi))\n")
	const where = " WHERE e.site_id = $1 AND e.day >= ($3::timestamptz AT TIME ZONE $2::text)::date AND e.day < ($4::timestamptz AT TIME ZONE $2::text)::date AND e.kind = "
	source := postgres.RollupsIn(rp.reads(), rp.amounts) + " e"
	if rp.sessions {
		source = postgres.SessionRollupsIn() + " e"
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
	for _, d := range p.Dims {
		w.WriteString(", ")
		w.WriteString(w.DimExpr(d))
	}
	for _, c := range counters {
		w.WriteString(", sum(e." + c + ")::bigint")
	}
	for _, a := range rp.amountColumns() {
		w.WriteString(", COALESCE(sum(e." + a + "), 0)::float8")
	}
	for i, col := range postgres.RollupSketchColumns {
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
	w.WriteRollupJoins(joins)
	if !pre {
		w.WriteString(where + strconv.Itoa(int(rp.kind)))
	}
	if p.DimFilter != nil {
		w.WriteString(" AND ")
		w.WriteString(w.FilterSQL(p.DimFilter))
	}
	if only != nil {
		w.WriteString(" AND e.dim_id = ANY(" + w.Bind(only) + "::int[])")
	}
	w.WriteString(" GROUP BY 1")
	for i := range p.Dims {
		w.WriteString(", " + strconv.Itoa(i+2))
	}
	return sql.Statement{Text: w.String(), Args: w.Args}
}

// sessionTrafficColumn stands in Plan.column for the session's
// traffic profile, the dim_id of RollupSessionTraffic rows.
const sessionTrafficColumn = "session:traffic_id"

// landingColumn stands in Plan.column for the session's landing
// page, the dim_id of RollupLandingPage rows.
const landingColumn = "session:page_id"

// landingDim reports whether d is the session's landing page
// (landingPage, landingPagePlusQueryString): every join the landing's.
func landingDim(d *plan.DimDef) bool {
	if d.Scope != plan.ScopeSession || len(d.Joins) == 0 {
		return false
	}
	for _, j := range d.Joins {
		if j != plan.JoinLanding {
			return false
		}
	}
	return true
}

// SessionTrafficDim reports whether d is a session's traffic source
// (sessionSource, sessionMedium, sessionSourceMedium, sessionCampaignName,
// sessionDefaultChannelGroup): session-scoped, every join through the
// traffic profile.
func SessionTrafficDim(d *plan.DimDef) bool {
	if d.Scope != plan.ScopeSession || len(d.Joins) == 0 {
		return false
	}
	for _, j := range d.Joins {
		if j.Profile != postgres.TrafficProfile {
			return false
		}
	}
	return true
}

// usesSessionTraffic reports whether an event report p read from the
// rollups reads RollupSessionTraffic rows.
func usesSessionTraffic(p *plan.Plan) bool {
	if p.Sessions {
		return false
	}
	return slices.ContainsFunc(p.Dims, SessionTrafficDim) ||
		!p.DimFilter.All(func(l *plan.FilterLeaf) bool { return l.Dim == nil || !SessionTrafficDim(l.Dim) })
}

// amountColumns are the columns of the amounts slots
// (postgres.RollupAmountColumns) when rp reads amounts, else none.
func (rp Plan) amountColumns() []string {
	if !rp.amounts {
		return nil
	}
	return postgres.RollupAmountColumns
}
