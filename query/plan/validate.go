package plan

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
	DefaultLimit  = 10000
	MaxLimit      = 250000 // GA4 returns at most this many rows, whatever the limit
	maxNameLen    = 100    // date range names
)

// Site is what a report needs to know about its property.
type Site struct {
	ID       uint32
	TimeZone string // IANA name, as stored
	Loc      *time.Location
	Currency string
	// RollupsFrom is the first local day (as UTC midnight) the rollups
	// hold completely; zero: none.
	RollupsFrom time.Time
	// HourRollupsFrom is the same for the hourly rollups (never before
	// rollupsFrom).
	HourRollupsFrom time.Time
	// TrafficRollupsFrom is the same for the rows by the session's traffic
	// source (postgres.RollupSessionTraffic; never before rollupsFrom).
	TrafficRollupsFrom time.Time
	// PageRollupsFrom is the same for the rows by landing page and the
	// sessions sketches by page (postgres.RollupLandingPage,
	// RollupPageSessions, RollupTitleSessions; never before rollupsFrom).
	PageRollupsFrom time.Time
	// SessionRollupsFrom is the first local day whose sessions the
	// session rollups hold completely; zero: none.
	SessionRollupsFrom time.Time
	// CommerceRollupsFrom is the first local day whose rollups hold every
	// ecommerce amount and item (never before rollupsFrom).
	CommerceRollupsFrom time.Time
	// KeyEvents are the event names the property counts as key events
	// (metadata lists keyEvents:<name> for each).
	KeyEvents []string
}

// Plan is a validated report: only allowlisted definitions, resolved
// instants and bounded integers. Nothing in it that reaches SQL text came
// from the request.
type Plan struct {
	Site      Site
	Ranges    []RangePlan
	Dims      []*DimDef
	Metrics   []*MetricDef
	DimFilter *FilterNode // WHERE: before aggregation; nil for none
	// MetricFilter is HAVING: after aggregation; nil for none.
	MetricFilter *FilterNode
	Order        []OrderTerm
	Limit        int64
	Offset       int64
	Totals       bool
	Maximums     bool
	Minimums     bool
	KeepEmpty    bool
	RangeNames   []string // dateRange values, by range index
	Route        Route    // tables the report may read
	// Sessions: the report reads the sessions table; mixed: events
	// joined to their sessions, counted per session (see schema.go).
	Sessions bool
	Mixed    bool
	// Items: the report reads the item rows (see commerce.go).
	Items bool
}

// RangePlan is a date range as the half-open interval [lo, hi) of instants:
// from the start of its first day to the start of the day after its last, in
// the site's time zone.
type RangePlan struct {
	Lo, Hi time.Time
}

// OrderTerm sorts by one grouped column: key (0 = date range index,
// 1.. = dimensions in request order) or metric (by index).
type OrderTerm struct {
	Metric  bool
	Idx     int
	Desc    bool
	Fold    bool // case-insensitive
	Numeric bool // by numeric value
}

// Validate checks req against the allowlist and GA4's rules and resolves it
// for s at now.
func Validate(req *RunReportRequest, s Site, now time.Time) (*Plan, *Error) {
	if req.Property != "" && req.Property != "properties/"+strconv.FormatUint(uint64(s.ID), 10) {
		return nil, InvalidArgument("property %s does not match the property in the URL.", QuoteName(req.Property))
	}
	for _, f := range []struct {
		name string
		raw  []byte
	}{{"cohortSpec", req.CohortSpec}, {"comparisons", req.Comparisons}} {
		if len(f.raw) > 0 && string(f.raw) != "null" {
			return nil, InvalidArgument("%s is not supported by this server.", f.name)
		}
	}
	if req.CurrencyCode != "" && req.CurrencyCode != s.Currency {
		return nil, InvalidArgument("currencyCode %s: this property reports in %s and currencies are not converted.", QuoteName(req.CurrencyCode), s.Currency)
	}
	p := &Plan{Site: s, KeepEmpty: req.KeepEmptyRows}
	if err := p.addFields(req); err != nil {
		return nil, err
	}
	var err *Error
	if p.DimFilter, err = CompileFilter(req.DimensionFilter, "dimensionFilter", false); err != nil {
		return nil, err
	}
	if p.MetricFilter, err = CompileFilter(req.MetricFilter, "metricFilter", true); err != nil {
		return nil, err
	}
	if err := p.SetScope(); err != nil {
		return nil, err
	}
	if err := p.addRanges(req.DateRanges, DayOf(now, s.Loc)); err != nil {
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

// Aggregations reads metricAggregations: which of the totals, maximums
// and minimums rows a report asks for.
func Aggregations(aggs []MetricAggregation) (totals, maximums, minimums bool, err *Error) {
	for _, a := range aggs {
		switch a {
		case "TOTAL":
			totals = true
		case "MAXIMUM":
			maximums = true
		case "MINIMUM":
			minimums = true
		default:
			return false, false, false, InvalidArgument("metricAggregations: %s is not supported; use TOTAL, MAXIMUM or MINIMUM.", QuoteName(string(a)))
		}
	}
	return totals, maximums, minimums, nil
}

// CheckFieldCounts checks a report's numbers of dimensions and metrics.
func CheckFieldCounts(dims, metrics int) *Error {
	switch {
	case dims == 0 && metrics == 0:
		return InvalidArgument("A report needs at least one dimension or metric.")
	case dims > maxDimensions:
		return InvalidArgument("Requested %d dimensions; the limit is %d.", dims, maxDimensions)
	case metrics > maxMetrics:
		return InvalidArgument("Requested %d metrics; the limit is %d.", metrics, maxMetrics)
	}
	return nil
}

func (p *Plan) addFields(req *RunReportRequest) *Error {
	if err := CheckFieldCounts(len(req.Dimensions), len(req.Metrics)); err != nil {
		return err
	}
	seen := make(map[string]bool)
	for i, d := range req.Dimensions {
		def, ok, why := LookupDimension(d.Name)
		switch {
		case len(d.DimensionExpression) > 0 && string(d.DimensionExpression) != "null":
			return InvalidArgument("dimensionExpression (dimension %s) is not supported by this server.", QuoteName(d.Name))
		case !ok:
			return withField(InvalidArgument("%s", NotValid(d.Name, "dimension", why)), fmt.Sprintf("dimensions[%d].name", i))
		case seen[d.Name]:
			return InvalidArgument("Duplicate dimension name %s.", QuoteName(d.Name))
		}
		seen[d.Name] = true
		p.Dims = append(p.Dims, def)
	}
	for i, m := range req.Metrics {
		def, ok, why := LookupMetric(m.Name)
		switch {
		case m.Expression != "" || m.Invisible:
			return InvalidArgument("Metric expressions and invisible metrics (metric %s) are not supported by this server.", QuoteName(m.Name))
		case !ok:
			return withField(InvalidArgument("%s", NotValid(m.Name, "metric", why)), fmt.Sprintf("metrics[%d].name", i))
		case seen[m.Name]:
			return InvalidArgument("Duplicate metric name %s.", QuoteName(m.Name))
		}
		seen[m.Name] = true
		p.Metrics = append(p.Metrics, def)
	}
	var err *Error
	p.Totals, p.Maximums, p.Minimums, err = Aggregations(req.MetricAggregations)
	return err
}

// SetScope chooses p's shape (schema.go) from the scopes of the names it
// uses anywhere, and refuses what GA4 refuses (scope_rules.go): a session
// metric makes a session report, or an event-session report when some
// dimension has no session value; otherwise p groups events.
func (p *Plan) SetScope() *Error {
	dims, metrics := slices.Clone(p.Dims), slices.Clone(p.Metrics)
	var leaves []*FilterLeaf
	for _, f := range []*FilterNode{p.DimFilter, p.MetricFilter} {
		f.All(func(l *FilterLeaf) bool {
			leaves = append(leaves, l)
			if l.Dim != nil {
				dims = append(dims, l.Dim)
			}
			if l.Metric != nil {
				metrics = append(metrics, l.Metric)
			}
			return true
		})
	}
	if item := p.itemScoped(leaves); item != "" {
		return p.setItemScope(item, leaves)
	}
	if c := Conflict(dims, metrics); c != nil {
		return InvalidArgument("%s", c.Message())
	}
	if !slices.ContainsFunc(metrics, (*MetricDef).SessionOnly) {
		return nil
	}
	if mixedMode(dims, metrics) {
		p.Mixed = true
		return nil
	}
	p.Sessions = true
	for _, m := range metrics {
		if m.Sess == "" {
			return InvalidArgument("The metric %s is event-scoped and is not reported in session reports (with session metrics such as sessions or engagementRate); "+
				"report it in its own request.", QuoteName(m.Name))
		}
	}
	return nil
}

func (p *Plan) addRanges(ranges []DateRange, today Day) *Error {
	if len(ranges) == 0 {
		return InvalidArgument("A report needs at least one date range (dateRanges).")
	}
	if len(ranges) > maxDateRanges {
		return InvalidArgument("Requested %d date ranges; the limit is %d.", len(ranges), maxDateRanges)
	}
	for i, r := range ranges {
		start, ok := ParseDate(r.StartDate, today)
		if !ok {
			return InvalidArgument("dateRanges[%d]: invalid startDate %s; use YYYY-MM-DD, today, yesterday or NdaysAgo.", i, QuoteName(r.StartDate))
		}
		end, ok := ParseDate(r.EndDate, today)
		if !ok {
			return InvalidArgument("dateRanges[%d]: invalid endDate %s; use YYYY-MM-DD, today, yesterday or NdaysAgo.", i, QuoteName(r.EndDate))
		}
		if end.before(start) {
			return InvalidArgument("dateRanges[%d]: startDate %s is after endDate %s.", i, start, end)
		}
		name, err := RangeName("dateRanges", i, r.Name)
		if err != nil {
			return err
		}
		p.Ranges = append(p.Ranges, RangePlan{Lo: start.Start(p.Site.Loc), Hi: end.AddDays(1).Start(p.Site.Loc)})
		p.RangeNames = append(p.RangeNames, name)
	}
	return nil
}

// RowLimit reads a request's limit: defaultLimit when unset, at most
// maxLimit.
func RowLimit(limit Int64) (int64, *Error) {
	switch {
	case limit < 0:
		return 0, InvalidArgument("limit must be positive, got %d.", limit)
	case limit == 0:
		return DefaultLimit, nil
	}
	return min(int64(limit), MaxLimit), nil
}

func (p *Plan) addPaging(req *RunReportRequest) *Error {
	var err *Error
	if p.Limit, err = RowLimit(req.Limit); err != nil {
		return err
	}
	if req.Offset < 0 {
		return InvalidArgument("offset must not be negative, got %d.", req.Offset)
	}
	p.Offset = int64(req.Offset)
	return nil
}

func (p *Plan) addOrder(orderBys []OrderBy) *Error {
	for i, o := range orderBys {
		t := OrderTerm{Desc: o.Desc}
		switch {
		case len(o.Pivot) > 0 && string(o.Pivot) != "null":
			return InvalidArgument("orderBys[%d]: pivot ordering is not supported by this server.", i)
		case o.Metric != nil && o.Dimension != nil, o.Metric == nil && o.Dimension == nil:
			return InvalidArgument("orderBys[%d]: set exactly one of metric or dimension.", i)
		case o.Metric != nil:
			t.Metric, t.Idx = true, p.metricIndex(o.Metric.MetricName)
			if t.Idx < 0 {
				return InvalidArgument("orderBys[%d]: metric %s is not in the request's metrics.", i, QuoteName(o.Metric.MetricName))
			}
		default:
			t.Idx = p.keyIndex(o.Dimension.DimensionName)
			if t.Idx < 0 {
				return InvalidArgument("orderBys[%d]: dimension %s is not in the request's dimensions.", i, QuoteName(o.Dimension.DimensionName))
			}
			var err *Error
			if t.Fold, t.Numeric, err = DimensionOrderType(i, o.Dimension.OrderType); err != nil {
				return err
			}
		}
		p.Order = append(p.Order, t)
	}
	return nil
}

// RangeName checks the name of field[i] (a date or minute range), or
// gives it GA4's default, date_range_<i>.
func RangeName(field string, i int, name string) (string, *Error) {
	switch {
	case len(name) > maxNameLen:
		return "", InvalidArgument("%s[%d]: name is longer than %d bytes.", field, i, maxNameLen)
	case strings.HasPrefix(name, "date_range_") || strings.HasPrefix(name, "RESERVED_"):
		return "", InvalidArgument("%s[%d]: name %s may not begin with date_range_ or RESERVED_.", field, i, QuoteName(name))
	case name == "":
		return "date_range_" + strconv.Itoa(i), nil
	}
	return name, nil
}

// DimensionOrderType reads orderBys[i].dimension.orderType: whether values
// compare case-folded or as numbers.
func DimensionOrderType(i int, orderType string) (fold, numeric bool, err *Error) {
	switch orderType {
	case "", "ORDER_TYPE_UNSPECIFIED", "ALPHANUMERIC":
		return false, false, nil
	case "CASE_INSENSITIVE_ALPHANUMERIC":
		return true, false, nil
	case "NUMERIC":
		return false, true, nil
	}
	return false, false, InvalidArgument("orderBys[%d].dimension.orderType: %s is not supported; use ALPHANUMERIC, CASE_INSENSITIVE_ALPHANUMERIC or NUMERIC.", i, QuoteName(orderType))
}

func (p *Plan) metricIndex(name string) int {
	for i, m := range p.Metrics {
		if m.Name == name {
			return i
		}
	}
	return -1
}

// keyIndex is the grouped key column of a dimension: 0 for dateRange (only
// when the report has several ranges), 1.. for requested dimensions.
func (p *Plan) keyIndex(name string) int {
	if name == DateRangeDim && len(p.Ranges) > 1 {
		return 0
	}
	for i, d := range p.Dims {
		if d.Name == name {
			return i + 1
		}
	}
	return -1
}

// QuoteName quotes a client-supplied name for an error message, bounded so
// a huge name cannot make a huge response.
func QuoteName(s string) string {
	const max = 120
	if len(s) > max {
		s = s[:max] + "…"
	}
	return fmt.Sprintf("%q", s)
}

// itemScoped returns the first item-scoped name of p ("" for none), as
// setScope names it.
func (p *Plan) itemScoped(leaves []*FilterLeaf) string {
	for _, m := range p.Metrics {
		if m.itemOnly() {
			return "metric " + m.Name
		}
	}
	for _, d := range p.Dims {
		if d.itemOnly() {
			return "dimension " + d.Name
		}
	}
	for _, l := range leaves {
		switch {
		case l.Metric != nil && l.Metric.itemOnly():
			return "metric " + l.Metric.Name + " (metricFilter)"
		case l.Dim != nil && l.Dim.itemOnly():
			return "dimension " + l.Dim.Name + " (dimensionFilter)"
		}
	}
	return ""
}

// setItemScope makes p an item report (item names first), refusing
// event- and session-scoped metrics and the dimensions item rows cannot
// answer, as GA4 refuses incompatible names.
func (p *Plan) setItemScope(item string, leaves []*FilterLeaf) *Error {
	p.Items = true
	metric := func(m *MetricDef, where string) *Error {
		switch {
		case m.Item != "":
			return nil
		case incompatible(ScopeItem, m.Scope) != "":
			return InvalidArgument("The metric %s%s is not item-scoped and is incompatible with the item-scoped %s; "+
				"report items with itemRevenue, itemsPurchased, itemsViewed, itemsAddedToCart, cartToViewRate, purchaseToViewRate, "+
				"totalUsers, activeUsers or sessions.", QuoteName(m.Name), where, item)
		}
		return InvalidArgument("The metric %s%s is not reported with the item-scoped %s by this server; "+
			"of the user and session metrics it reports totalUsers, activeUsers and sessions by item.", QuoteName(m.Name), where, item)
	}
	dim := func(d *DimDef, where string) *Error {
		if d.Item == "" && (d.sessionOnly() || itemRowsLack(d)) {
			return InvalidArgument("The dimension %s%s is incompatible with the item-scoped %s.", QuoteName(d.Name), where, item)
		}
		return nil
	}
	for _, m := range p.Metrics {
		if err := metric(m, ""); err != nil {
			return err
		}
	}
	for _, d := range p.Dims {
		if err := dim(d, ""); err != nil {
			return err
		}
	}
	for _, l := range leaves {
		if l.Metric != nil {
			if err := metric(l.Metric, " (metricFilter)"); err != nil {
				return err
			}
		}
		if l.Dim != nil {
			if err := dim(l.Dim, " (dimensionFilter)"); err != nil {
				return err
			}
		}
	}
	return nil
}

// Route says which tables a report may read.
type Route int

const (
	RouteAuto    Route = iota // rollups when they cover the report, else events
	RouteEvents               // events only
	RouteRollups              // rollups only; a report they do not cover fails (tests)
)
