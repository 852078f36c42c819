package query

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

// funnelPlan is a validated funnel report: allowlisted definitions, fixed
// operators and values to bind, as in plan.
type funnelPlan struct {
	site      site
	rng       rangePlan
	open      bool
	steps     []funnelStepPlan
	breakdown *dimDef // nil: none
	bdLimit   int
	limit     int64 // funnel table rows
}

type funnelStepPlan struct {
	name   string      // "1. Name", as the response shows it
	cond   *filterNode // events that satisfy the step
	direct bool        // must be the visitor's next event after the prior step's
	within int64       // microseconds from the prior step's event; 0: unbounded
}

// validateFunnel checks req against the allowlist and GA4's rules and
// resolves it for s at now.
func validateFunnel(req *RunFunnelReportRequest, s site, now time.Time) (*funnelPlan, *apiError) {
	if req.Property != "" && req.Property != "properties/"+strconv.FormatUint(uint64(s.id), 10) {
		return nil, invalidArgument("property %s does not match the property in the URL.", quoteName(req.Property))
	}
	for _, f := range []struct {
		name string
		raw  []byte
	}{{"funnelNextAction", req.FunnelNextAction}, {"segments", req.Segments}, {"dimensionFilter", req.DimensionFilter}} {
		if len(f.raw) > 0 && string(f.raw) != "null" {
			return nil, invalidArgument("%s is not supported by this server for funnel reports.", f.name)
		}
	}
	switch req.FunnelVisualizationType {
	case "", "FUNNEL_VISUALIZATION_TYPE_UNSPECIFIED", "STANDARD_FUNNEL":
	default:
		return nil, invalidArgument("funnelVisualizationType: %s is not supported; use STANDARD_FUNNEL.", quoteName(req.FunnelVisualizationType))
	}
	fp := &funnelPlan{site: s}
	// Date ranges resolve like runReport's; a funnel counts users over one.
	p := &plan{site: s}
	if err := p.addRanges(req.DateRanges, dayOf(now, s.loc)); err != nil {
		return nil, err
	}
	if len(p.ranges) != 1 {
		return nil, invalidArgument("dateRanges: a funnel report takes exactly one date range, got %d.", len(p.ranges))
	}
	fp.rng = p.ranges[0]
	var err *apiError
	if fp.limit, err = rowLimit(req.Limit); err != nil {
		return nil, err
	}
	if req.Funnel == nil || len(req.Funnel.Steps) == 0 {
		return nil, invalidArgument("funnel.steps: a funnel report needs at least one step.")
	}
	if len(req.Funnel.Steps) > maxFunnelSteps {
		return nil, invalidArgument("funnel.steps: at most %d steps, got %d.", maxFunnelSteps, len(req.Funnel.Steps))
	}
	fp.open = req.Funnel.IsOpenFunnel
	for i := range req.Funnel.Steps {
		st, err := compileStep(&req.Funnel.Steps[i], i)
		if err != nil {
			return nil, err
		}
		fp.steps = append(fp.steps, st)
	}
	if err := fp.addBreakdown(req.FunnelBreakdown); err != nil {
		return nil, err
	}
	return fp, nil
}

func compileStep(st *FunnelStep, i int) (funnelStepPlan, *apiError) {
	path := fmt.Sprintf("funnel.steps[%d]", i)
	out := funnelStepPlan{name: strconv.Itoa(i+1) + ". " + st.Name, direct: st.IsDirectlyFollowedBy}
	switch {
	case len(st.Name) > maxStepNameLen:
		return out, invalidArgument("%s.name: longer than %d bytes.", path, maxStepNameLen)
	case strings.IndexByte(st.Name, 0) >= 0:
		return out, invalidArgument("%s.name: must not contain NUL characters.", path)
	case i == 0 && st.IsDirectlyFollowedBy:
		return out, invalidArgument("%s.isDirectlyFollowedBy: the first step has no prior step to follow.", path)
	case i == 0 && st.WithinDurationFromPriorStep != "":
		return out, invalidArgument("%s.withinDurationFromPriorStep: the first step has no prior step.", path)
	case st.FilterExpression == nil:
		return out, invalidArgument("%s.filterExpression: every step needs a filter expression.", path)
	}
	if st.WithinDurationFromPriorStep != "" {
		d, ok := parseProtoDuration(st.WithinDurationFromPriorStep)
		if !ok || d <= 0 {
			return out, invalidArgument("%s.withinDurationFromPriorStep: %s is not a positive duration; write seconds with an s, e.g. \"300s\".",
				path, quoteName(st.WithinDurationFromPriorStep))
		}
		out.within = min(d, maxStepDuration).Microseconds()
	}
	c := &filterCompiler{}
	var err *apiError
	out.cond, err = c.funnelExpr(st.FilterExpression, path+".filterExpression", 0)
	if err != nil {
		return out, err
	}
	out.cond.all(func(l *filterLeaf) bool {
		if l.dim != nil && (l.dim.itemOnly() || l.dim.sessionOnly()) {
			err = invalidArgument("%s.filterExpression: the dimension %s is not event-scoped; funnel steps filter events.", path, quoteName(l.dim.name))
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
func (c *filterCompiler) funnelExpr(e *FunnelFilterExpression, path string, depth int) (*filterNode, *apiError) {
	c.nodes++
	switch {
	case c.nodes > maxFilterNodes:
		return nil, invalidArgument("%s: a step's filter may hold at most %d expressions.", path, maxFilterNodes)
	case depth > maxFilterDepth:
		return nil, invalidArgument("%s: filters may nest at most %d levels deep.", path, maxFilterDepth)
	case countSet(e.AndGroup != nil, e.OrGroup != nil, e.NotExpression != nil, e.FunnelFieldFilter != nil, e.FunnelEventFilter != nil) != 1:
		return nil, invalidArgument("%s: set exactly one of andGroup, orGroup, notExpression, funnelFieldFilter or funnelEventFilter.", path)
	case e.AndGroup != nil:
		return funnelGroup(e.AndGroup.Expressions, true, path, depth, c.funnelExpr)
	case e.OrGroup != nil:
		return funnelGroup(e.OrGroup.Expressions, false, path, depth, c.funnelExpr)
	case e.NotExpression != nil:
		kid, err := c.funnelExpr(e.NotExpression, path+".notExpression", depth+1)
		return &filterNode{not: kid}, err
	case e.FunnelFieldFilter != nil:
		f := e.FunnelFieldFilter
		leaf, err := c.filter(&Filter{FieldName: f.FieldName, StringFilter: f.StringFilter, InListFilter: f.InListFilter,
			NumericFilter: f.NumericFilter, BetweenFilter: f.BetweenFilter}, path+".funnelFieldFilter")
		return &filterNode{leaf: leaf}, err
	}
	return c.eventFilter(e.FunnelEventFilter, path+".funnelEventFilter", depth)
}

// funnelGroup compiles the members of a funnel step expression's andGroup
// (and) or orGroup with each, one level deeper.
func funnelGroup[E any](exprs []E, and bool, path string, depth int, each func(*E, string, int) (*filterNode, *apiError)) (*filterNode, *apiError) {
	name := ".orGroup"
	if and {
		name = ".andGroup"
	}
	if len(exprs) == 0 {
		return nil, invalidArgument("%s%s.expressions: a group needs at least one expression.", path, name)
	}
	kids := make([]*filterNode, len(exprs))
	for i := range exprs {
		kid, err := each(&exprs[i], fmt.Sprintf("%s%s.expressions[%d]", path, name, i), depth+1)
		if err != nil {
			return nil, err
		}
		kids[i] = kid
	}
	if and {
		return &filterNode{and: kids}, nil
	}
	return &filterNode{or: kids}, nil
}

// eventFilter matches the event name exactly (case-sensitive, as GA4 event
// names are), and the parameter expression when there is one.
func (c *filterCompiler) eventFilter(f *FunnelEventFilter, path string, depth int) (*filterNode, *apiError) {
	if f.EventName == "" {
		return nil, invalidArgument("%s.eventName: give the event name.", path)
	}
	if err := checkText(f.EventName, path+".eventName"); err != nil {
		return nil, err
	}
	name := &filterNode{leaf: &filterLeaf{dim: dimensionsByName["eventName"], kind: matchExact, value: f.EventName}}
	if f.FunnelParameterFilterExpression == nil {
		return name, nil
	}
	params, err := c.paramExpr(f.FunnelParameterFilterExpression, path+".funnelParameterFilterExpression", depth+1)
	if err != nil {
		return nil, err
	}
	return &filterNode{and: []*filterNode{name, params}}, nil
}

func (c *filterCompiler) paramExpr(e *FunnelParameterFilterExpression, path string, depth int) (*filterNode, *apiError) {
	c.nodes++
	switch {
	case c.nodes > maxFilterNodes:
		return nil, invalidArgument("%s: a step's filter may hold at most %d expressions.", path, maxFilterNodes)
	case depth > maxFilterDepth:
		return nil, invalidArgument("%s: filters may nest at most %d levels deep.", path, maxFilterDepth)
	case countSet(e.AndGroup != nil, e.OrGroup != nil, e.NotExpression != nil, e.FunnelParameterFilter != nil) != 1:
		return nil, invalidArgument("%s: set exactly one of andGroup, orGroup, notExpression or funnelParameterFilter.", path)
	case e.AndGroup != nil:
		return funnelGroup(e.AndGroup.Expressions, true, path, depth, c.paramExpr)
	case e.OrGroup != nil:
		return funnelGroup(e.OrGroup.Expressions, false, path, depth, c.paramExpr)
	case e.NotExpression != nil:
		kid, err := c.paramExpr(e.NotExpression, path+".notExpression", depth+1)
		return &filterNode{not: kid}, err
	}
	f := e.FunnelParameterFilter
	path += ".funnelParameterFilter"
	switch {
	case f.ItemParameterName != "":
		return nil, invalidArgument("%s.itemParameterName: item parameters are not stored by this server.", path)
	case !paramName.MatchString(f.EventParameterName):
		return nil, invalidArgument("%s.eventParameterName: %s is not a parameter name (a letter followed by up to 39 letters, digits or underscores).",
			path, quoteName(f.EventParameterName))
	}
	leaf, err := c.filter(&Filter{FieldName: customEventPrefix + f.EventParameterName, StringFilter: f.StringFilter, InListFilter: f.InListFilter,
		NumericFilter: f.NumericFilter, BetweenFilter: f.BetweenFilter}, path)
	return &filterNode{leaf: leaf}, err
}

func (fp *funnelPlan) addBreakdown(b *FunnelBreakdown) *apiError {
	if b == nil {
		return nil
	}
	if b.BreakdownDimension == nil {
		return invalidArgument("funnelBreakdown.breakdownDimension: give the dimension to break down by.")
	}
	name := b.BreakdownDimension.Name
	if raw := b.BreakdownDimension.DimensionExpression; len(raw) > 0 && string(raw) != "null" {
		return invalidArgument("funnelBreakdown.breakdownDimension.dimensionExpression is not supported by this server.")
	}
	def, ok, why := lookupDimension(name)
	if !ok {
		return invalidArgument("funnelBreakdown.breakdownDimension.name: %s", notValid(name, "dimension", why))
	}
	if def.itemOnly() || def.sessionOnly() {
		return invalidArgument("funnelBreakdown.breakdownDimension.name: the dimension %s is not event-scoped; a funnel breaks down by event dimensions.", quoteName(name))
	}
	fp.breakdown = def
	switch {
	case b.Limit < 0 || b.Limit > maxBreakdownLimit:
		return invalidArgument("funnelBreakdown.limit: must be between 1 and %d, got %d.", maxBreakdownLimit, b.Limit)
	case b.Limit == 0:
		fp.bdLimit = defaultBreakdownLimit
	default:
		fp.bdLimit = int(b.Limit)
	}
	return nil
}
