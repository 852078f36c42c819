package realtime

import (
	"cmp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/avila-analytics/avila/query/plan"
	"github.com/avila-analytics/avila/storage/redis"
)

// Acc accumulates one row's (or one range's total) metrics. activeUsers
// are the row's visitors that are active users (redis.Window's
// ActiveVisitors: active on the window's day, whatever the report's
// filter), as runReport counts the users active at some point of an
// event's day.
type Acc struct {
	events, views int64
	visitors      map[uint64]struct{} // active ones
}

func NewAcc() *Acc { return &Acc{visitors: map[uint64]struct{}{}} }

func (a *Acc) Add(c *redis.Cell, n int64, active map[uint64]bool) {
	a.events += n
	if c.EventName == "page_view" {
		a.views += n
	}
	if active[c.Visitor] {
		a.visitors[c.Visitor] = struct{}{}
	}
}

func (a *Acc) Metrics() [MetricCount]int64 {
	var m [MetricCount]int64
	m[ActiveUsers], m[EventCount], m[ScreenPageViews] = int64(len(a.visitors)), a.events, a.views
	return m
}

// rtRow is one grouped row before sorting.
type rtRow struct {
	rng     int
	keys    []string
	metrics [MetricCount]int64
}

// Run answers p from w, as runReport would from the events: rows
// grouped by the requested dimensions (and the minute range with several),
// the dimension filter before grouping, the metric filter after, ordered by
// the request (default: the first metric descending), then by the keys;
// totals count each range's events again (a visitor in several rows counts
// once) with the dimension filter and without the metric filter. loc is
// the property's time zone, whose day decides who is active.
func Run(p *Plan, w redis.Window, loc *time.Location) *RunRealtimeReportResponse {
	resp := &RunRealtimeReportResponse{Kind: ResponseKind}
	for _, n := range p.dimNames {
		resp.DimensionHeaders = append(resp.DimensionHeaders, plan.DimensionHeader{Name: n})
	}
	multi := len(p.ranges) > 1
	if multi {
		resp.DimensionHeaders = append(resp.DimensionHeaders, plan.DimensionHeader{Name: plan.DateRangeDim})
	}
	for _, n := range p.metricNames {
		resp.MetricHeaders = append(resp.MetricHeaders, plan.MetricHeader{Name: n, Type: plan.TypeInteger})
	}

	groups := map[string]*rtRow{}
	accs := map[string]*Acc{}
	totals := make([]*Acc, len(p.ranges))
	for i := range totals {
		totals[i] = NewAcc()
	}
	active := w.ActiveVisitors(loc)
	var key strings.Builder
	for _, m := range w.Minutes {
		ago := w.Now - m.Minute
		for c, n := range m.Cells {
			vals := realtimeValues(&c, ago)
			if p.dimFilter != nil && !p.dimFilter.matchDims(&vals) {
				continue
			}
			for ri, r := range p.ranges {
				if ago < r.end || ago > r.start {
					continue
				}
				totals[ri].Add(&c, n, active)
				key.Reset()
				key.WriteString(strconv.Itoa(ri))
				for _, d := range p.dims {
					key.WriteByte(0)
					key.WriteString(vals[d])
				}
				k := key.String()
				acc := accs[k]
				if acc == nil {
					acc = NewAcc()
					accs[k] = acc
					row := &rtRow{rng: ri}
					for _, d := range p.dims {
						row.keys = append(row.keys, vals[d])
					}
					groups[k] = row
				}
				acc.Add(&c, n, active)
			}
		}
	}
	rows := make([]*rtRow, 0, len(groups))
	for k, row := range groups {
		row.metrics = accs[k].Metrics()
		if p.metricFilter != nil && !p.metricFilter.matchMetrics(&row.metrics) {
			continue
		}
		rows = append(rows, row)
	}
	slices.SortFunc(rows, p.compareRows)
	resp.RowCount = int64(len(rows))

	nm := len(p.metrics)
	maxs, mins := make([][]int64, len(p.ranges)), make([][]int64, len(p.ranges))
	for _, row := range rows {
		vals := p.metricValues(&row.metrics)
		if nm > 0 {
			maxs[row.rng] = foldMetrics(maxs[row.rng], vals, func(a, b int64) int64 { return max(a, b) })
			mins[row.rng] = foldMetrics(mins[row.rng], vals, func(a, b int64) int64 { return min(a, b) })
		}
		if int64(len(resp.Rows)) >= p.limit {
			continue
		}
		out := plan.Row{MetricValues: formatInts(vals)}
		for _, k := range row.keys {
			out.DimensionValues = append(out.DimensionValues, plan.Value{Value: k})
		}
		if multi {
			out.DimensionValues = append(out.DimensionValues, plan.Value{Value: p.ranges[row.rng].name})
		}
		resp.Rows = append(resp.Rows, out)
	}
	if nm == 0 {
		return resp
	}
	if p.totals {
		resp.Totals = p.summaryRows(plan.ReservedTotal, func(ri int) []int64 {
			m := totals[ri].Metrics()
			return p.metricValues(&m)
		})
	}
	if p.maximums {
		resp.Maximums = p.summaryRows(plan.ReservedMax, func(ri int) []int64 { return maxs[ri] })
	}
	if p.minimums {
		resp.Minimums = p.summaryRows(plan.ReservedMin, func(ri int) []int64 { return mins[ri] })
	}
	return resp
}

// metricValues picks the requested metrics, in request order.
func (p *Plan) metricValues(m *[MetricCount]int64) []int64 {
	out := make([]int64, len(p.metrics))
	for i, id := range p.metrics {
		out[i] = m[id]
	}
	return out
}

func foldMetrics(acc, vals []int64, f func(a, b int64) int64) []int64 {
	if acc == nil {
		return slices.Clone(vals)
	}
	for i := range acc {
		acc[i] = f(acc[i], vals[i])
	}
	return acc
}

func formatInts(vals []int64) []plan.Value {
	out := make([]plan.Value, len(vals))
	for i, v := range vals {
		out[i] = plan.Value{Value: strconv.FormatInt(v, 10)}
	}
	return out
}

// summaryRows is one summary row per minute range, shaped like runReport's:
// reserved in every dimension, the range's name with several ranges, zeros
// for a range without rows.
func (p *Plan) summaryRows(reserved string, values func(ri int) []int64) []plan.Row {
	out := make([]plan.Row, 0, len(p.ranges))
	for ri, r := range p.ranges {
		vals := values(ri)
		if vals == nil {
			vals = make([]int64, len(p.metrics))
		}
		row := plan.Row{MetricValues: formatInts(vals)}
		for range p.dims {
			row.DimensionValues = append(row.DimensionValues, plan.Value{Value: reserved})
		}
		if len(p.ranges) > 1 {
			row.DimensionValues = append(row.DimensionValues, plan.Value{Value: r.name})
		}
		out = append(out, row)
	}
	return out
}

// compareRows orders rows as the SQL path does: the requested terms (by
// default the first metric, descending), then the minute range and every
// dimension ascending by code point, so the order is total.
func (p *Plan) compareRows(a, b *rtRow) int {
	terms := p.order
	if len(terms) == 0 && len(p.metrics) > 0 {
		terms = []plan.OrderTerm{{Metric: true, Idx: 0, Desc: true}}
	}
	for _, t := range terms {
		if c := p.compareTerm(t, a, b); c != 0 {
			if t.Desc {
				return -c
			}
			return c
		}
	}
	if c := cmp.Compare(a.rng, b.rng); c != 0 {
		return c
	}
	for i := range a.keys {
		if c := strings.Compare(a.keys[i], b.keys[i]); c != 0 {
			return c
		}
	}
	return 0
}

func (p *Plan) compareTerm(t plan.OrderTerm, a, b *rtRow) int {
	switch {
	case t.Metric:
		id := p.metrics[t.Idx]
		return cmp.Compare(a.metrics[id], b.metrics[id])
	case t.Idx == 0:
		return cmp.Compare(a.rng, b.rng)
	}
	x, y := a.keys[t.Idx-1], b.keys[t.Idx-1]
	switch {
	case t.Numeric:
		// Values that are no number sort below all numbers.
		fx, ex := strconv.ParseFloat(strings.TrimSpace(x), 64)
		fy, ey := strconv.ParseFloat(strings.TrimSpace(y), 64)
		switch {
		case ex != nil && ey != nil:
			return 0
		case ex != nil:
			return -1
		case ey != nil:
			return 1
		}
		return cmp.Compare(fx, fy)
	case t.Fold:
		return strings.Compare(strings.ToLower(x), strings.ToLower(y))
	}
	return strings.Compare(x, y)
}
