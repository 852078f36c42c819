package query

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Request bounds, GA4's where it has them.
const (
	maxDimensions = 9
	maxMetrics    = 10
	maxDateRanges = 4
	defaultLimit  = 10000
	maxLimit      = 250000 // GA4 returns at most this many rows, whatever the limit
	maxNameLen    = 100    // date range names
)

// site is what a report needs to know about its property.
type site struct {
	id       uint32
	timeZone string // IANA name, as stored
	loc      *time.Location
	currency string
	// rollupsFrom is the first local day (as UTC midnight) the rollups
	// hold completely; zero: none.
	rollupsFrom time.Time
	// hourRollupsFrom is the same for the hourly rollups (never before
	// rollupsFrom).
	hourRollupsFrom time.Time
	// trafficRollupsFrom is the same for the rows by the session's traffic
	// source (postgres.RollupSessionTraffic; never before rollupsFrom).
	trafficRollupsFrom time.Time
	// pageRollupsFrom is the same for the rows by landing page and the
	// sessions sketches by page (postgres.RollupLandingPage,
	// RollupPageSessions, RollupTitleSessions; never before rollupsFrom).
	pageRollupsFrom time.Time
	// sessionRollupsFrom is the first local day whose sessions the
	// session rollups hold completely; zero: none.
	sessionRollupsFrom time.Time
	// commerceRollupsFrom is the first local day whose rollups hold every
	// ecommerce amount and item (never before rollupsFrom).
	commerceRollupsFrom time.Time
	// keyEvents are the event names the property counts as key events
	// (metadata lists keyEvents:<name> for each).
	keyEvents []string
}

// plan is a validated report: only allowlisted definitions, resolved
// instants and bounded integers. Nothing in it that reaches SQL text came
// from the request.
type plan struct {
	site      site
	ranges    []rangePlan
	dims      []*dimDef
	metrics   []*metricDef
	dimFilter *filterNode // WHERE: before aggregation; nil for none
	// metricFilter is HAVING: after aggregation; nil for none.
	metricFilter *filterNode
	order        []orderTerm
	limit        int64
	offset       int64
	totals       bool
	maximums     bool
	minimums     bool
	keepEmpty    bool
	rangeNames   []string // dateRange values, by range index
	route        route    // tables the report may read
	// sessions: the report reads the sessions table; mixed: events
	// joined to their sessions, counted per session (see schema.go).
	sessions bool
	mixed    bool
	// items: the report reads the item rows (see commerce.go).
	items bool
}

// rangePlan is a date range as the half-open interval [lo, hi) of instants:
// from the start of its first day to the start of the day after its last, in
// the site's time zone.
type rangePlan struct {
	lo, hi time.Time
}

// orderTerm sorts by one grouped column: key (0 = date range index,
// 1.. = dimensions in request order) or metric (by index).
type orderTerm struct {
	metric  bool
	idx     int
	desc    bool
	fold    bool // case-insensitive
	numeric bool // by numeric value
}

// validate checks req against the allowlist and GA4's rules and resolves it
// for s at now.
func validate(req *RunReportRequest, s site, now time.Time) (*plan, *apiError) {
	if req.Property != "" && req.Property != "properties/"+strconv.FormatUint(uint64(s.id), 10) {
		return nil, invalidArgument("property %s does not match the property in the URL.", quoteName(req.Property))
	}
	for _, f := range []struct {
		name string
		raw  []byte
	}{{"cohortSpec", req.CohortSpec}, {"comparisons", req.Comparisons}} {
		if len(f.raw) > 0 && string(f.raw) != "null" {
			return nil, invalidArgument("%s is not supported by this server.", f.name)
		}
	}
	if req.CurrencyCode != "" && req.CurrencyCode != s.currency {
		return nil, invalidArgument("currencyCode %s: this property reports in %s and currencies are not converted.", quoteName(req.CurrencyCode), s.currency)
	}
	p := &plan{site: s, keepEmpty: req.KeepEmptyRows}
	if err := p.addFields(req); err != nil {
		return nil, err
	}
	var err *apiError
	if p.dimFilter, err = compileFilter(req.DimensionFilter, "dimensionFilter", false); err != nil {
		return nil, err
	}
	if p.metricFilter, err = compileFilter(req.MetricFilter, "metricFilter", true); err != nil {
		return nil, err
	}
	if err := p.setScope(); err != nil {
		return nil, err
	}
	if err := p.addRanges(req.DateRanges, dayOf(now, s.loc)); err != nil {
		return nil, err
	}
	if err := p.addPaging(req); err != nil {
		return nil, err
	}
	if err := p.addOrder(req.OrderBys); err != nil {
		return nil, err
	}
	return p, nil
}

// aggregations reads metricAggregations: which of the totals, maximums
// and minimums rows a report asks for.
func aggregations(aggs []MetricAggregation) (totals, maximums, minimums bool, err *apiError) {
	for _, a := range aggs {
		switch a {
		case "TOTAL":
			totals = true
		case "MAXIMUM":
			maximums = true
		case "MINIMUM":
			minimums = true
		default:
			return false, false, false, invalidArgument("metricAggregations: %s is not supported; use TOTAL, MAXIMUM or MINIMUM.", quoteName(string(a)))
		}
	}
	return totals, maximums, minimums, nil
}

// checkFieldCounts checks a report's numbers of dimensions and metrics.
func checkFieldCounts(dims, metrics int) *apiError {
	switch {
	case dims == 0 && metrics == 0:
		return invalidArgument("A report needs at least one dimension or metric.")
	case dims > maxDimensions:
		return invalidArgument("Requested %d dimensions; the limit is %d.", dims, maxDimensions)
	case metrics > maxMetrics:
		return invalidArgument("Requested %d metrics; the limit is %d.", metrics, maxMetrics)
	}
	return nil
}

func (p *plan) addFields(req *RunReportRequest) *apiError {
	if err := checkFieldCounts(len(req.Dimensions), len(req.Metrics)); err != nil {
		return err
	}
	seen := make(map[string]bool)
	for i, d := range req.Dimensions {
		def, ok, why := lookupDimension(d.Name)
		switch {
		case len(d.DimensionExpression) > 0 && string(d.DimensionExpression) != "null":
			return invalidArgument("dimensionExpression (dimension %s) is not supported by this server.", quoteName(d.Name))
		case !ok:
			return withField(invalidArgument("%s", notValid(d.Name, "dimension", why)), fmt.Sprintf("dimensions[%d].name", i))
		case seen[d.Name]:
			return invalidArgument("Duplicate dimension name %s.", quoteName(d.Name))
		}
		seen[d.Name] = true
		p.dims = append(p.dims, def)
	}
	for i, m := range req.Metrics {
		def, ok, why := lookupMetric(m.Name)
		switch {
		case m.Expression != "" || m.Invisible:
			return invalidArgument("Metric expressions and invisible metrics (metric %s) are not supported by this server.", quoteName(m.Name))
		case !ok:
			return withField(invalidArgument("%s", notValid(m.Name, "metric", why)), fmt.Sprintf("metrics[%d].name", i))
		case seen[m.Name]:
			return invalidArgument("Duplicate metric name %s.", quoteName(m.Name))
		}
		seen[m.Name] = true
		p.metrics = append(p.metrics, def)
	}
	var err *apiError
	p.totals, p.maximums, p.minimums, err = aggregations(req.MetricAggregations)
	return err
}

// setScope chooses p's shape (schema.go) from the scopes of the names it
// uses anywhere, and refuses what GA4 refuses (scope_rules.go): a session
// metric makes a session report, or an event-session report when some
// dimension has no session value; otherwise p groups events.
func (p *plan) setScope() *apiError {
	dims, metrics := slices.Clone(p.dims), slices.Clone(p.metrics)
	var leaves []*filterLeaf
	for _, f := range []*filterNode{p.dimFilter, p.metricFilter} {
		f.all(func(l *filterLeaf) bool {
			leaves = append(leaves, l)
			if l.dim != nil {
				dims = append(dims, l.dim)
			}
			if l.metric != nil {
				metrics = append(metrics, l.metric)
			}
			return true
		})
	}
	if item := p.itemScoped(leaves); item != "" {
		return p.setItemScope(item, leaves)
	}
	if c := conflict(dims, metrics); c != nil {
		return invalidArgument("%s", c.message())
	}
	if !slices.ContainsFunc(metrics, (*metricDef).sessionOnly) {
		return nil
	}
	if mixedMode(dims, metrics) {
		p.mixed = true
		return nil
	}
	p.sessions = true
	for _, m := range metrics {
		if m.sess == "" {
			return invalidArgument("The metric %s is event-scoped and is not reported in session reports (with session metrics such as sessions or engagementRate); "+
				"report it in its own request.", quoteName(m.name))
		}
	}
	return nil
}

func (p *plan) addRanges(ranges []DateRange, today day) *apiError {
	if len(ranges) == 0 {
		return invalidArgument("A report needs at least one date range (dateRanges).")
	}
	if len(ranges) > maxDateRanges {
		return invalidArgument("Requested %d date ranges; the limit is %d.", len(ranges), maxDateRanges)
	}
	for i, r := range ranges {
		start, ok := parseDate(r.StartDate, today)
		if !ok {
			return invalidArgument("dateRanges[%d]: invalid startDate %s; use YYYY-MM-DD, today, yesterday or NdaysAgo.", i, quoteName(r.StartDate))
		}
		end, ok := parseDate(r.EndDate, today)
		if !ok {
			return invalidArgument("dateRanges[%d]: invalid endDate %s; use YYYY-MM-DD, today, yesterday or NdaysAgo.", i, quoteName(r.EndDate))
		}
		if end.before(start) {
			return invalidArgument("dateRanges[%d]: startDate %s is after endDate %s.", i, start, end)
		}
		name, err := rangeName("dateRanges", i, r.Name)
		if err != nil {
			return err
		}
		p.ranges = append(p.ranges, rangePlan{lo: start.start(p.site.loc), hi: end.addDays(1).start(p.site.loc)})
		p.rangeNames = append(p.rangeNames, name)
	}
	return nil
}

// rowLimit reads a request's limit: defaultLimit when unset, at most
// maxLimit.
func rowLimit(limit Int64) (int64, *apiError) {
	switch {
	case limit < 0:
		return 0, invalidArgument("limit must be positive, got %d.", limit)
	case limit == 0:
		return defaultLimit, nil
	}
	return min(int64(limit), maxLimit), nil
}

func (p *plan) addPaging(req *RunReportRequest) *apiError {
	var err *apiError
	if p.limit, err = rowLimit(req.Limit); err != nil {
		return err
	}
	if req.Offset < 0 {
		return invalidArgument("offset must not be negative, got %d.", req.Offset)
	}
	p.offset = int64(req.Offset)
	return nil
}

func (p *plan) addOrder(orderBys []OrderBy) *apiError {
	for i, o := range orderBys {
		t := orderTerm{desc: o.Desc}
		switch {
		case len(o.Pivot) > 0 && string(o.Pivot) != "null":
			return invalidArgument("orderBys[%d]: pivot ordering is not supported by this server.", i)
		case o.Metric != nil && o.Dimension != nil, o.Metric == nil && o.Dimension == nil:
			return invalidArgument("orderBys[%d]: set exactly one of metric or dimension.", i)
		case o.Metric != nil:
			t.metric, t.idx = true, p.metricIndex(o.Metric.MetricName)
			if t.idx < 0 {
				return invalidArgument("orderBys[%d]: metric %s is not in the request's metrics.", i, quoteName(o.Metric.MetricName))
			}
		default:
			t.idx = p.keyIndex(o.Dimension.DimensionName)
			if t.idx < 0 {
				return invalidArgument("orderBys[%d]: dimension %s is not in the request's dimensions.", i, quoteName(o.Dimension.DimensionName))
			}
			var err *apiError
			if t.fold, t.numeric, err = dimensionOrderType(i, o.Dimension.OrderType); err != nil {
				return err
			}
		}
		p.order = append(p.order, t)
	}
	return nil
}

// rangeName checks the name of field[i] (a date or minute range), or
// gives it GA4's default, date_range_<i>.
func rangeName(field string, i int, name string) (string, *apiError) {
	switch {
	case len(name) > maxNameLen:
		return "", invalidArgument("%s[%d]: name is longer than %d bytes.", field, i, maxNameLen)
	case strings.HasPrefix(name, "date_range_") || strings.HasPrefix(name, "RESERVED_"):
		return "", invalidArgument("%s[%d]: name %s may not begin with date_range_ or RESERVED_.", field, i, quoteName(name))
	case name == "":
		return "date_range_" + strconv.Itoa(i), nil
	}
	return name, nil
}

// dimensionOrderType reads orderBys[i].dimension.orderType: whether values
// compare case-folded or as numbers.
func dimensionOrderType(i int, orderType string) (fold, numeric bool, err *apiError) {
	switch orderType {
	case "", "ORDER_TYPE_UNSPECIFIED", "ALPHANUMERIC":
		return false, false, nil
	case "CASE_INSENSITIVE_ALPHANUMERIC":
		return true, false, nil
	case "NUMERIC":
		return false, true, nil
	}
	return false, false, invalidArgument("orderBys[%d].dimension.orderType: %s is not supported; use ALPHANUMERIC, CASE_INSENSITIVE_ALPHANUMERIC or NUMERIC.", i, quoteName(orderType))
}

func (p *plan) metricIndex(name string) int {
	for i, m := range p.metrics {
		if m.name == name {
			return i
		}
	}
	return -1
}

// keyIndex is the grouped key column of a dimension: 0 for dateRange (only
// when the report has several ranges), 1.. for requested dimensions.
func (p *plan) keyIndex(name string) int {
	if name == dateRangeDim && len(p.ranges) > 1 {
		return 0
	}
	for i, d := range p.dims {
		if d.name == name {
			return i + 1
		}
	}
	return -1
}

// quoteName quotes a client-supplied name for an error message, bounded so
// a huge name cannot make a huge response.
func quoteName(s string) string {
	const max = 120
	if len(s) > max {
		s = s[:max] + "…"
	}
	return fmt.Sprintf("%q", s)
}

// itemScoped returns the first item-scoped name of p ("" for none), as
// setScope names it.
func (p *plan) itemScoped(leaves []*filterLeaf) string {
	for _, m := range p.metrics {
		if m.itemOnly() {
			return "metric " + m.name
		}
	}
	for _, d := range p.dims {
		if d.itemOnly() {
			return "dimension " + d.name
		}
	}
	for _, l := range leaves {
		switch {
		case l.metric != nil && l.metric.itemOnly():
			return "metric " + l.metric.name + " (metricFilter)"
		case l.dim != nil && l.dim.itemOnly():
			return "dimension " + l.dim.name + " (dimensionFilter)"
		}
	}
	return ""
}

// setItemScope makes p an item report (item names first), refusing
// event- and session-scoped metrics and the dimensions item rows cannot
// answer, as GA4 refuses incompatible names.
func (p *plan) setItemScope(item string, leaves []*filterLeaf) *apiError {
	p.items = true
	metric := func(m *metricDef, where string) *apiError {
		switch {
		case m.item != "":
			return nil
		case incompatible(scopeItem, m.scope) != "":
			return invalidArgument("The metric %s%s is not item-scoped and is incompatible with the item-scoped %s; "+
				"report items with itemRevenue, itemsPurchased, itemsViewed, itemsAddedToCart, cartToViewRate, purchaseToViewRate, "+
				"totalUsers, activeUsers or sessions.", quoteName(m.name), where, item)
		}
		return invalidArgument("The metric %s%s is not reported with the item-scoped %s by this server; "+
			"of the user and session metrics it reports totalUsers, activeUsers and sessions by item.", quoteName(m.name), where, item)
	}
	dim := func(d *dimDef, where string) *apiError {
		if d.item == "" && (d.sessionOnly() || itemRowsLack(d)) {
			return invalidArgument("The dimension %s%s is incompatible with the item-scoped %s.", quoteName(d.name), where, item)
		}
		return nil
	}
	for _, m := range p.metrics {
		if err := metric(m, ""); err != nil {
			return err
		}
	}
	for _, d := range p.dims {
		if err := dim(d, ""); err != nil {
			return err
		}
	}
	for _, l := range leaves {
		if l.metric != nil {
			if err := metric(l.metric, " (metricFilter)"); err != nil {
				return err
			}
		}
		if l.dim != nil {
			if err := dim(l.dim, " (dimensionFilter)"); err != nil {
				return err
			}
		}
	}
	return nil
}

// route says which tables a report may read.
type route int

const (
	routeAuto    route = iota // rollups when they cover the report, else events
	routeEvents               // events only
	routeRollups              // rollups only; a report they do not cover fails (tests)
)
