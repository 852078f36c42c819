package plan

import (
	"cmp"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
)

// Funnel bounds, GA4's where it has them.
const (
	maxFunnelSteps        = 10
	defaultBreakdownLimit = 5
	maxBreakdownLimit     = 15
	maxStepNameLen        = 100
	// maxStepDuration bounds withinDurationFromPriorStep: longer than any
	// date range, so a larger value means the same.
	maxStepDuration = 100 * 365 * 24 * time.Hour
)

// FunnelPlan is a validated funnel report: allowlisted definitions, fixed
// operators and values to bind, as in plan.
type FunnelPlan struct {
	Site      Site
	Rng       RangePlan
	Open      bool
	Steps     []funnelStepPlan
	Breakdown *DimDef // nil: none
	BdLimit   int
	Limit     int64 // funnel table rows
}

type funnelStepPlan struct {
	Name   string      // "1. Name", as the response shows it
	Cond   *FilterNode // events that satisfy the step
	Direct bool        // must be the visitor's next event after the prior step's
	Within int64       // microseconds from the prior step's event; 0: unbounded
}

// ValidateFunnel checks req against the allowlist and GA4's rules and
// resolves it for s at now.
func ValidateFunnel(req *RunFunnelReportRequest, s Site, now time.Time) (*FunnelPlan, *Error) {
	if req.Property != "" && req.Property != "properties/"+strconv.FormatUint(uint64(s.ID), 10) {
		return nil, InvalidArgument("property %s does not match the property in the URL.", QuoteName(req.Property))
	}
	for _, f := range []struct {
		name string
		raw  []byte
	}{{"funnelNextAction", req.FunnelNextAction}, {"segments", req.Segments}, {"dimensionFilter", req.DimensionFilter}} {
		if len(f.raw) > 0 && string(f.raw) != "null" {
			return nil, InvalidArgument("%s is not supported by this server for funnel reports.", f.name)
		}
	}
	switch req.FunnelVisualizationType {
	case "", "FUNNEL_VISUALIZATION_TYPE_UNSPECIFIED", "STANDARD_FUNNEL":
	default:
		return nil, InvalidArgument("funnelVisualizationType: %s is not supported; use STANDARD_FUNNEL.", QuoteName(req.FunnelVisualizationType))
	}
	fp := &FunnelPlan{Site: s}
	// Date ranges resolve like runReport's; a funnel counts users over one.
	p := &Plan{Site: s}
	if err := p.addRanges(req.DateRanges, DayOf(now, s.Loc)); err != nil {
		return nil, err
	}
	if len(p.Ranges) != 1 {
		return nil, InvalidArgument("dateRanges: a funnel report takes exactly one date range, got %d.", len(p.Ranges))
	}
	fp.Rng = p.Ranges[0]
	var err *Error
	if fp.Limit, err = RowLimit(req.Limit); err != nil {
		return nil, err
	}
	if req.Funnel == nil || len(req.Funnel.Steps) == 0 {
		return nil, InvalidArgument("funnel.steps: a funnel report needs at least one step.")
	}
	if len(req.Funnel.Steps) > maxFunnelSteps {
		return nil, InvalidArgument("funnel.steps: at most %d steps, got %d.", maxFunnelSteps, len(req.Funnel.Steps))
	}
	fp.Open = req.Funnel.IsOpenFunnel
	for i := range req.Funnel.Steps {
		st, err := compileStep(&req.Funnel.Steps[i], i)
		if err != nil {
			return nil, err
		}
		fp.Steps = append(fp.Steps, st)
	}
	if err := fp.addBreakdown(req.FunnelBreakdown); err != nil {
		return nil, err
	}
	return fp, nil
}

func compileStep(st *FunnelStep, i int) (funnelStepPlan, *Error) {
	path := fmt.Sprintf("funnel.steps[%d]", i)
	out := funnelStepPlan{Name: strconv.Itoa(i+1) + ". " + st.Name, Direct: st.IsDirectlyFollowedBy}
	switch {
	case len(st.Name) > maxStepNameLen:
		return out, InvalidArgument("%s.name: longer than %d bytes.", path, maxStepNameLen)
	case strings.IndexByte(st.Name, 0) >= 0:
		return out, InvalidArgument("%s.name: must not contain NUL characters.", path)
	case i == 0 && st.IsDirectlyFollowedBy:
		return out, InvalidArgument("%s.isDirectlyFollowedBy: the first step has no prior step to follow.", path)
	case i == 0 && st.WithinDurationFromPriorStep != "":
		return out, InvalidArgument("%s.withinDurationFromPriorStep: the first step has no prior step.", path)
	case st.FilterExpression == nil:
		return out, InvalidArgument("%s.filterExpression: every step needs a filter expression.", path)
	}
	if st.WithinDurationFromPriorStep != "" {
		d, ok := parseProtoDuration(st.WithinDurationFromPriorStep)
		if !ok || d <= 0 {
			return out, InvalidArgument("%s.withinDurationFromPriorStep: %s is not a positive duration; write seconds with an s, e.g. \"300s\".",
				path, QuoteName(st.WithinDurationFromPriorStep))
		}
		out.Within = min(d, maxStepDuration).Microseconds()
	}
	c := &filterCompiler{}
	var err *Error
	out.Cond, err = c.funnelExpr(st.FilterExpression, path+".filterExpression", 0)
	if err != nil {
		return out, err
	}
	out.Cond.All(func(l *FilterLeaf) bool {
		if l.Dim != nil && (l.Dim.itemOnly() || l.Dim.sessionOnly()) {
			err = InvalidArgument("%s.filterExpression: the dimension %s is not event-scoped; funnel steps filter events.", path, QuoteName(l.Dim.Name))
			return false
		}
		return true
	})
	return out, err
}

// parseProtoDuration reads proto3 JSON's Duration: decimal seconds with
// up to nine fractional digits and an "s" suffix.
func parseProtoDuration(s string) (time.Duration, bool) {
	num, ok := strings.CutSuffix(s, "s")
	if !ok || num == "" || strings.TrimLeft(num, "0123456789.") != "" || strings.Count(num, ".") > 1 {
		return 0, false
	}
	whole, frac, _ := strings.Cut(num, ".")
	if len(frac) > 9 || whole == "" && frac == "" {
		return 0, false
	}
	sec, err := strconv.ParseInt(cmp.Or(whole, "0"), 10, 64)
	if err != nil || sec > math.MaxInt64/int64(time.Second)-1 {
		return 0, false
	}
	nanos := int64(0)
	if frac != "" {
		n, err := strconv.ParseInt(frac+strings.Repeat("0", 9-len(frac)), 10, 64)
		if err != nil {
			return 0, false
		}
		nanos = n
	}
	return time.Duration(sec)*time.Second + time.Duration(nanos), true
}

// funnelExpr compiles a step's expression to a dimension filter tree.
func (c *filterCompiler) funnelExpr(e *FunnelFilterExpression, path string, depth int) (*FilterNode, *Error) {
	c.nodes++
	switch {
	case c.nodes > maxFilterNodes:
		return nil, InvalidArgument("%s: a step's filter may hold at most %d expressions.", path, maxFilterNodes)
	case depth > maxFilterDepth:
		return nil, InvalidArgument("%s: filters may nest at most %d levels deep.", path, maxFilterDepth)
	case CountSet(e.AndGroup != nil, e.OrGroup != nil, e.NotExpression != nil, e.FunnelFieldFilter != nil, e.FunnelEventFilter != nil) != 1:
		return nil, InvalidArgument("%s: set exactly one of andGroup, orGroup, notExpression, funnelFieldFilter or funnelEventFilter.", path)
	case e.AndGroup != nil:
		return funnelGroup(e.AndGroup.Expressions, true, path, depth, c.funnelExpr)
	case e.OrGroup != nil:
		return funnelGroup(e.OrGroup.Expressions, false, path, depth, c.funnelExpr)
	case e.NotExpression != nil:
		kid, err := c.funnelExpr(e.NotExpression, path+".notExpression", depth+1)
		return &FilterNode{Not: kid}, err
	case e.FunnelFieldFilter != nil:
		f := e.FunnelFieldFilter
		leaf, err := c.filter(&Filter{FieldName: f.FieldName, StringFilter: f.StringFilter, InListFilter: f.InListFilter,
			NumericFilter: f.NumericFilter, BetweenFilter: f.BetweenFilter}, path+".funnelFieldFilter")
		return &FilterNode{Leaf: leaf}, err
	}
	return c.eventFilter(e.FunnelEventFilter, path+".funnelEventFilter", depth)
}

// funnelGroup compiles the members of a funnel step expression's andGroup
// (and) or orGroup with each, one level deeper.
func funnelGroup[E any](exprs []E, and bool, path string, depth int, each func(*E, string, int) (*FilterNode, *Error)) (*FilterNode, *Error) {
	name := ".orGroup"
	if and {
		name = ".andGroup"
	}
	if len(exprs) == 0 {
		return nil, InvalidArgument("%s%s.expressions: a group needs at least one expression.", path, name)
	}
	kids := make([]*FilterNode, len(exprs))
	for i := range exprs {
		kid, err := each(&exprs[i], fmt.Sprintf("%s%s.expressions[%d]", path, name, i), depth+1)
		if err != nil {
			return nil, err
		}
		kids[i] = kid
	}
	if and {
		return &FilterNode{And: kids}, nil
	}
	return &FilterNode{Or: kids}, nil
}

// eventFilter matches the event name exactly (case-sensitive, as GA4 event
// names are), and the parameter expression when there is one.
func (c *filterCompiler) eventFilter(f *FunnelEventFilter, path string, depth int) (*FilterNode, *Error) {
	if f.EventName == "" {
		return nil, InvalidArgument("%s.eventName: give the event name.", path)
	}
	if err := CheckText(f.EventName, path+".eventName"); err != nil {
		return nil, err
	}
	name := &FilterNode{Leaf: &FilterLeaf{Dim: DimensionsByName["eventName"], Kind: MatchExact, Value: f.EventName}}
	if f.FunnelParameterFilterExpression == nil {
		return name, nil
	}
	params, err := c.paramExpr(f.FunnelParameterFilterExpression, path+".funnelParameterFilterExpression", depth+1)
	if err != nil {
		return nil, err
	}
	return &FilterNode{And: []*FilterNode{name, params}}, nil
}

func (c *filterCompiler) paramExpr(e *FunnelParameterFilterExpression, path string, depth int) (*FilterNode, *Error) {
	c.nodes++
	switch {
	case c.nodes > maxFilterNodes:
		return nil, InvalidArgument("%s: a step's filter may hold at most %d expressions.", path, maxFilterNodes)
	case depth > maxFilterDepth:
		return nil, InvalidArgument("%s: filters may nest at most %d levels deep.", path, maxFilterDepth)
	case CountSet(e.AndGroup != nil, e.OrGroup != nil, e.NotExpression != nil, e.FunnelParameterFilter != nil) != 1:
		return nil, InvalidArgument("%s: set exactly one of andGroup, orGroup, notExpression or funnelParameterFilter.", path)
	case e.AndGroup != nil:
		return funnelGroup(e.AndGroup.Expressions, true, path, depth, c.paramExpr)
	case e.OrGroup != nil:
		return funnelGroup(e.OrGroup.Expressions, false, path, depth, c.paramExpr)
	case e.NotExpression != nil:
		kid, err := c.paramExpr(e.NotExpression, path+".notExpression", depth+1)
		return &FilterNode{Not: kid}, err
	}
	f := e.FunnelParameterFilter
	path += ".funnelParameterFilter"
	switch {
	case f.ItemParameterName != "":
		return nil, InvalidArgument("%s.itemParameterName: item parameters are not stored by this server.", path)
	case !paramName.MatchString(f.EventParameterName):
		return nil, InvalidArgument("%s.eventParameterName: %s is not a parameter name (a letter followed by up to 39 letters, digits or underscores).",
			path, QuoteName(f.EventParameterName))
	}
	leaf, err := c.filter(&Filter{FieldName: CustomEventPrefix + f.EventParameterName, StringFilter: f.StringFilter, InListFilter: f.InListFilter,
		NumericFilter: f.NumericFilter, BetweenFilter: f.BetweenFilter}, path)
	return &FilterNode{Leaf: leaf}, err
}

func (fp *FunnelPlan) addBreakdown(b *FunnelBreakdown) *Error {
	if b == nil {
		return nil
	}
	if b.BreakdownDimension == nil {
		return InvalidArgument("funnelBreakdown.breakdownDimension: give the dimension to break down by.")
	}
	name := b.BreakdownDimension.Name
	if raw := b.BreakdownDimension.DimensionExpression; len(raw) > 0 && string(raw) != "null" {
		return InvalidArgument("funnelBreakdown.breakdownDimension.dimensionExpression is not supported by this server.")
	}
	def, ok, why := LookupDimension(name)
	if !ok {
		return InvalidArgument("funnelBreakdown.breakdownDimension.name: %s", NotValid(name, "dimension", why))
	}
	if def.itemOnly() || def.sessionOnly() {
		return InvalidArgument("funnelBreakdown.breakdownDimension.name: the dimension %s is not event-scoped; a funnel breaks down by event dimensions.", QuoteName(name))
	}
	fp.Breakdown = def
	switch {
	case b.Limit < 0 || b.Limit > maxBreakdownLimit:
		return InvalidArgument("funnelBreakdown.limit: must be between 1 and %d, got %d.", maxBreakdownLimit, b.Limit)
	case b.Limit == 0:
		fp.BdLimit = defaultBreakdownLimit
	default:
		fp.BdLimit = int(b.Limit)
	}
	return nil
}
