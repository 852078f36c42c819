package query

import (
	"cmp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/avila-analytics/avila/protocol"
	"github.com/avila-analytics/avila/query/engine/funnel"
	"github.com/avila-analytics/avila/query/plan"
)

// funnelOracle computes a runFunnelReport answer from the test's own
// events the plain way: each visitor's events sorted by time, and for every
// step and event an explicit search over all earlier events for a
// predecessor that reached the prior step (no window frames, no "latest
// predecessor" shortcut). It shares no code with the SQL path.
func funnelOracle(req plan.RunFunnelReportRequest, zone string, now time.Time, events []protocol.Event, siteID uint32) *plan.RunFunnelReportResponse {
	loc, resolve := oracleDates(zone, now)
	from, to := resolve(req.DateRanges[0].StartDate), resolve(req.DateRanges[0].EndDate)
	type ev struct {
		e     *protocol.Event
		local time.Time
	}
	byVisitor := map[uint64][]ev{}
	for i := range events {
		e := &events[i]
		local := time.UnixMicro(e.TimeMicros).In(loc)
		if d := local.Format(time.DateOnly); e.Site != siteID || d < from || d > to {
			continue
		}
		byVisitor[e.Visitor] = append(byVisitor[e.Visitor], ev{e, local})
	}
	steps := req.Funnel.Steps
	n := len(steps)
	within := make([]int64, n)
	for i, st := range steps {
		if st.WithinDurationFromPriorStep != "" {
			d, err := time.ParseDuration(st.WithinDurationFromPriorStep)
			if err != nil {
				panic(err)
			}
			within[i] = d.Microseconds()
		}
	}
	var bdName string
	if req.FunnelBreakdown != nil {
		bdName = req.FunnelBreakdown.BreakdownDimension.Name
	}
	totals := make([]funnel.Counts, n)
	byValue := map[string][]funnel.Counts{}
	for _, evs := range byVisitor {
		slices.SortStableFunc(evs, func(a, b ev) int { return cmp.Compare(a.e.TimeMicros, b.e.TimeMicros) })
		m := len(evs)
		// rank: events at the same instant share one.
		rank := make([]int, m)
		for j := 1; j < m; j++ {
			rank[j] = rank[j-1]
			if evs[j].e.TimeMicros != evs[j-1].e.TimeMicros {
				rank[j]++
			}
		}
		reach := make([][]bool, n)
		prog := make([][]bool, n)
		for i := range n {
			reach[i], prog[i] = make([]bool, m), make([]bool, m)
			for j := range m {
				sat := oracleFunnelMatch(steps[i].FilterExpression, evs[j].e, evs[j].local)
				if i > 0 && sat {
					for k := range m {
						if !reach[i-1][k] || rank[k] >= rank[j] {
							continue
						}
						if steps[i].IsDirectlyFollowedBy && rank[k] != rank[j]-1 {
							continue
						}
						if within[i] > 0 && evs[j].e.TimeMicros-evs[k].e.TimeMicros > within[i] {
							continue
						}
						prog[i][j] = true
					}
				}
				reach[i][j] = sat && (i == 0 || req.Funnel.IsOpenFunnel || prog[i][j])
			}
		}
		value := func(j int) string {
			if bdName == "" {
				return ""
			}
			return oracleDim(bdName, evs[j].e, evs[j].local)
		}
		for i := range n {
			first := -1
			for j := range m {
				if !reach[i][j] {
					continue
				}
				if first < 0 || rank[j] < rank[first] ||
					rank[j] == rank[first] && value(j) < value(first) {
					first = j
				}
			}
			if first < 0 {
				continue
			}
			completed := i+1 < n && slices.Contains(prog[i+1], true)
			add := func(c *funnel.Counts) {
				c.Users++
				if completed {
					c.Completers++
				}
			}
			add(&totals[i])
			if bdName != "" {
				v := value(first)
				if byValue[v] == nil {
					byValue[v] = make([]funnel.Counts, n)
				}
				add(&byValue[v][i])
			}
		}
	}

	resp := &plan.RunFunnelReportResponse{
		Kind: "analyticsData#runFunnelReport",
		FunnelTable: &plan.FunnelSubReport{
			DimensionHeaders: []plan.DimensionHeader{{Name: "funnelStepName"}},
			MetricHeaders: []plan.MetricHeader{{Name: "activeUsers", Type: "TYPE_INTEGER"}, {Name: "funnelStepCompletionRate", Type: "TYPE_FLOAT"},
				{Name: "funnelStepAbandonments", Type: "TYPE_INTEGER"}, {Name: "funnelStepAbandonmentRate", Type: "TYPE_FLOAT"}},
		},
		FunnelVisualization: &plan.FunnelSubReport{
			DimensionHeaders: []plan.DimensionHeader{{Name: "funnelStepName"}},
			MetricHeaders:    []plan.MetricHeader{{Name: "activeUsers", Type: "TYPE_INTEGER"}},
		},
	}
	var values []string
	if bdName != "" {
		resp.FunnelTable.DimensionHeaders = append(resp.FunnelTable.DimensionHeaders, plan.DimensionHeader{Name: bdName})
		type vu struct {
			v string
			u int64
		}
		var all []vu
		for v, cs := range byValue {
			var u int64
			for _, c := range cs {
				u += c.Users
			}
			all = append(all, vu{v, u})
		}
		slices.SortFunc(all, func(a, b vu) int {
			if a.u != b.u {
				return cmp.Compare(b.u, a.u)
			}
			return strings.Compare(a.v, b.v)
		})
		limit := cmp.Or(int(req.FunnelBreakdown.Limit), 5)
		for i := 0; i < len(all) && i < limit; i++ {
			values = append(values, all[i].v)
		}
	}
	metrics := func(c funnel.Counts, last bool) []plan.Value {
		done := c.Completers
		if last {
			done = c.Users
		}
		frac := func(x int64) string {
			if c.Users == 0 {
				return "0"
			}
			return strconv.FormatFloat(float64(x)/float64(c.Users), 'f', -1, 64)
		}
		return []plan.Value{{Value: strconv.FormatInt(c.Users, 10)}, {Value: frac(done)}, {Value: strconv.FormatInt(c.Users-done, 10)}, {Value: frac(c.Users - done)}}
	}
	for i, st := range steps {
		name := strconv.Itoa(i+1) + ". " + st.Name
		last := i == n-1
		resp.FunnelVisualization.Rows = append(resp.FunnelVisualization.Rows,
			plan.Row{DimensionValues: []plan.Value{{Value: name}}, MetricValues: []plan.Value{{Value: strconv.FormatInt(totals[i].Users, 10)}}})
		if bdName == "" {
			resp.FunnelTable.Rows = append(resp.FunnelTable.Rows, plan.Row{DimensionValues: []plan.Value{{Value: name}}, MetricValues: metrics(totals[i], last)})
			continue
		}
		resp.FunnelTable.Rows = append(resp.FunnelTable.Rows, plan.Row{DimensionValues: []plan.Value{{Value: name}, {Value: "RESERVED_TOTAL"}}, MetricValues: metrics(totals[i], last)})
		for _, v := range values {
			var c funnel.Counts
			if cs := byValue[v]; cs != nil {
				c = cs[i]
			}
			resp.FunnelTable.Rows = append(resp.FunnelTable.Rows, plan.Row{DimensionValues: []plan.Value{{Value: name}, {Value: v}}, MetricValues: metrics(c, last)})
		}
	}
	if req.Limit > 0 && int(req.Limit) < len(resp.FunnelTable.Rows) {
		resp.FunnelTable.Rows = resp.FunnelTable.Rows[:req.Limit]
	}
	return resp
}

func oracleFunnelMatch(f *plan.FunnelFilterExpression, e *protocol.Event, local time.Time) bool {
	switch {
	case f.AndGroup != nil:
		for i := range f.AndGroup.Expressions {
			if !oracleFunnelMatch(&f.AndGroup.Expressions[i], e, local) {
				return false
			}
		}
		return true
	case f.OrGroup != nil:
		for i := range f.OrGroup.Expressions {
			if oracleFunnelMatch(&f.OrGroup.Expressions[i], e, local) {
				return true
			}
		}
		return false
	case f.NotExpression != nil:
		return !oracleFunnelMatch(f.NotExpression, e, local)
	case f.FunnelFieldFilter != nil:
		ff := f.FunnelFieldFilter
		return oracleDimFilter(&plan.FilterExpression{Filter: &plan.Filter{FieldName: ff.FieldName, StringFilter: ff.StringFilter,
			InListFilter: ff.InListFilter, NumericFilter: ff.NumericFilter, BetweenFilter: ff.BetweenFilter}}, e, local)
	}
	ef := f.FunnelEventFilter
	return e.Name == ef.EventName && (ef.FunnelParameterFilterExpression == nil || oracleParamMatch(ef.FunnelParameterFilterExpression, e, local))
}

func oracleParamMatch(f *plan.FunnelParameterFilterExpression, e *protocol.Event, local time.Time) bool {
	switch {
	case f.AndGroup != nil:
		for i := range f.AndGroup.Expressions {
			if !oracleParamMatch(&f.AndGroup.Expressions[i], e, local) {
				return false
			}
		}
		return true
	case f.OrGroup != nil:
		for i := range f.OrGroup.Expressions {
			if oracleParamMatch(&f.OrGroup.Expressions[i], e, local) {
				return true
			}
		}
		return false
	case f.NotExpression != nil:
		return !oracleParamMatch(f.NotExpression, e, local)
	}
	p := f.FunnelParameterFilter
	return oracleDimFilter(&plan.FilterExpression{Filter: &plan.Filter{FieldName: "customEvent:" + p.EventParameterName, StringFilter: p.StringFilter,
		InListFilter: p.InListFilter, NumericFilter: p.NumericFilter, BetweenFilter: p.BetweenFilter}}, e, local)
}
