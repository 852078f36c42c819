package query

import (
	"cmp"
	"slices"
	"strconv"
	"strings"
	"time"
)

// oracle computes a runReport answer from the test's own events, the plain
// way: each event's local day by time.In, ranges compared as ISO date
// strings, groups in maps, sorting by sort.Slice. It shares no code with the
// SQL path, so agreement means the statement is right.
func oracle(req RunReportRequest, zone string, now time.Time, events []testEvent, siteID uint32) *RunReportResponse {
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
	multi := len(req.DateRanges) > 1
	resp := &RunReportResponse{Kind: "analyticsData#runReport", Metadata: ResponseMetadata{CurrencyCode: "USD", TimeZone: zone}}
	for _, d := range req.Dimensions {
		resp.DimensionHeaders = append(resp.DimensionHeaders, DimensionHeader{Name: d.Name})
	}
	if multi {
		resp.DimensionHeaders = append(resp.DimensionHeaders, DimensionHeader{Name: "dateRange"})
	}
	for _, m := range req.Metrics {
		resp.MetricHeaders = append(resp.MetricHeaders, MetricHeader{Name: m.Name, Type: "TYPE_INTEGER"})
	}

	type acc struct {
		events, views int64
		visitors      map[int64]bool
	}
	metricsOf := func(a *acc) []int64 {
		var out []int64
		for _, m := range req.Metrics {
			switch m.Name {
			case "eventCount":
				out = append(out, a.events)
			case "screenPageViews":
				out = append(out, a.views)
			case "activeUsers":
				out = append(out, int64(len(a.visitors)))
			}
		}
		return out
	}
	add := func(a *acc, e testEvent) {
		a.events++
		if e.name == "page_view" {
			a.views++
		}
		a.visitors[e.visitor] = true
	}
	type group struct {
		rng  int
		keys []string
		acc  *acc
	}
	groups := map[string]*group{}
	totals := make([]*acc, len(req.DateRanges))
	for i := range totals {
		totals[i] = &acc{visitors: map[int64]bool{}}
	}
	for _, e := range events {
		if e.site != siteID {
			continue
		}
		local := e.ts.In(loc)
		date := local.Format(time.DateOnly)
		for ri, r := range req.DateRanges {
			if date < resolve(r.StartDate) || date > resolve(r.EndDate) {
				continue
			}
			var keys []string
			for _, d := range req.Dimensions {
				switch d.Name {
				case "date":
					keys = append(keys, local.Format("20060102"))
				case "eventName":
					keys = append(keys, e.name)
				case "pagePath":
					keys = append(keys, cmp.Or(e.path, "(not set)"))
				}
			}
			id := strconv.Itoa(ri) + "\x00" + strings.Join(keys, "\x00")
			g := groups[id]
			if g == nil {
				g = &group{rng: ri, keys: keys, acc: &acc{visitors: map[int64]bool{}}}
				groups[id] = g
			}
			add(g.acc, e)
			add(totals[ri], e)
		}
	}

	type row struct {
		rng  int
		keys []string
		ms   []int64
	}
	var rows []row
	for _, g := range groups {
		ms := metricsOf(g.acc)
		if !req.KeepEmptyRows && len(ms) > 0 && !slices.ContainsFunc(ms, func(v int64) bool { return v != 0 }) {
			continue
		}
		rows = append(rows, row{g.rng, g.keys, ms})
	}
	dimIndex := func(name string) int {
		for i, d := range req.Dimensions {
			if d.Name == name {
				return i
			}
		}
		return -1
	}
	metricIndex := func(name string) int {
		for i, m := range req.Metrics {
			if m.Name == name {
				return i
			}
		}
		return -1
	}
	slices.SortFunc(rows, func(a, b row) int {
		orderBys := req.OrderBys
		if len(orderBys) == 0 && len(req.Metrics) > 0 {
			orderBys = []OrderBy{{Metric: &MetricOrderBy{MetricName: req.Metrics[0].Name}, Desc: true}}
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
	values := func(ss []string) []Value {
		var out []Value
		for _, s := range ss {
			out = append(out, Value{s})
		}
		return out
	}
	ints := func(ms []int64) []Value {
		var out []Value
		for _, m := range ms {
			out = append(out, Value{strconv.FormatInt(m, 10)})
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
		resp.Rows = append(resp.Rows, Row{DimensionValues: values(dv), MetricValues: ints(r.ms)})
	}

	summary := func(reserved string, pick func(ri int) []int64) []Row {
		var out []Row
		for ri := range req.DateRanges {
			var dv []string
			for range req.Dimensions {
				dv = append(dv, reserved)
			}
			if multi {
				dv = append(dv, rangeName(ri))
			}
			out = append(out, Row{DimensionValues: values(dv), MetricValues: ints(pick(ri))})
		}
		return out
	}
	extreme := func(better func(a, b int64) bool) func(ri int) []int64 {
		return func(ri int) []int64 {
			out := make([]int64, len(req.Metrics))
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
				resp.Totals = summary("RESERVED_TOTAL", func(ri int) []int64 { return metricsOf(totals[ri]) })
			case "MAXIMUM":
				resp.Maximums = summary("RESERVED_MAX", extreme(func(a, b int64) bool { return a > b }))
			case "MINIMUM":
				resp.Minimums = summary("RESERVED_MIN", extreme(func(a, b int64) bool { return a < b }))
			}
		}
	}
	return resp
}
