package query

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"
)

// Funnel dimension and metric names, as GA4 sends them.
const (
	funnelStepNameDim = "funnelStepName"
	// The rates are fractions (0.412 is 41.2%). GA4 labels every funnel
	// metric TYPE_INTEGER; the rates here say what they are.
	funnelCompletionRate  = "funnelStepCompletionRate"
	funnelAbandonments    = "funnelStepAbandonments"
	funnelAbandonmentRate = "funnelStepAbandonmentRate"
)

// funnelCounts are one funnel table cell group: users at a step and those
// of them who went on to the next step.
type funnelCounts struct{ users, completers int64 }

// runFunnel runs fp's statement and shapes GA4's two sub reports.
//
// Per step: activeUsers reached the step; funnelStepCompletionRate is the
// fraction of them who went on to the next step, funnelStepAbandonments
// those who did not and funnelStepAbandonmentRate their fraction. At the
// last step every user has completed the funnel: completion rate 1 (0 with
// no users), no abandonments.
//
// With a breakdown each step has a RESERVED_TOTAL row, then one row per
// breakdown value among the funnelBreakdown.limit values with the most users
// summed over all steps (ties by value, code point order). A user counts
// under the breakdown value of the first event that reached the step.
func runFunnel(ctx context.Context, db querier, fp *funnelPlan) (*RunFunnelReportResponse, error) {
	q := buildFunnelSQL(fp)
	rows, err := db.Query(ctx, q.text, q.args...)
	if err != nil {
		return nil, fmt.Errorf("query: run funnel: %w", err)
	}
	defer rows.Close()
	n := len(fp.steps)
	totals := make([]funnelCounts, n)
	byValue := map[string][]funnelCounts{}
	var (
		step              int32
		total             bool
		value             *string
		users, completers int64
	)
	for rows.Next() {
		if err := rows.Scan(&step, &total, &value, &users, &completers); err != nil {
			return nil, fmt.Errorf("query: scan funnel row: %w", err)
		}
		if step < 1 || int(step) > n {
			return nil, fmt.Errorf("query: BUG: funnel row for step %d of %d", step, n)
		}
		c := funnelCounts{users, completers}
		if total {
			totals[step-1] = c
			continue
		}
		v := deref(value)
		if byValue[v] == nil {
			byValue[v] = make([]funnelCounts, n)
		}
		byValue[v][step-1] = c
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("query: run funnel: %w", err)
	}
	return funnelResponse(fp, totals, byValue), nil
}

func funnelResponse(fp *funnelPlan, totals []funnelCounts, byValue map[string][]funnelCounts) *RunFunnelReportResponse {
	table := &FunnelSubReport{
		DimensionHeaders: []DimensionHeader{{Name: funnelStepNameDim}},
		MetricHeaders: []MetricHeader{{Name: "activeUsers", Type: typeInteger}, {Name: funnelCompletionRate, Type: typeFloat},
			{Name: funnelAbandonments, Type: typeInteger}, {Name: funnelAbandonmentRate, Type: typeFloat}},
	}
	vis := &FunnelSubReport{
		DimensionHeaders: []DimensionHeader{{Name: funnelStepNameDim}},
		MetricHeaders:    []MetricHeader{{Name: "activeUsers", Type: typeInteger}},
	}
	var values []string
	if fp.breakdown != nil {
		table.DimensionHeaders = append(table.DimensionHeaders, DimensionHeader{Name: fp.breakdown.name})
		values = topBreakdownValues(byValue, fp.bdLimit)
	}
	last := len(fp.steps) - 1
	for i, st := range fp.steps {
		vis.Rows = append(vis.Rows, Row{DimensionValues: []Value{{st.name}}, MetricValues: []Value{{strconv.FormatInt(totals[i].users, 10)}}})
		if fp.breakdown == nil {
			table.Rows = append(table.Rows, Row{DimensionValues: []Value{{st.name}}, MetricValues: funnelMetrics(totals[i], i == last)})
			continue
		}
		table.Rows = append(table.Rows, Row{DimensionValues: []Value{{st.name}, {reservedTotal}}, MetricValues: funnelMetrics(totals[i], i == last)})
		for _, v := range values {
			table.Rows = append(table.Rows, Row{DimensionValues: []Value{{st.name}, {v}}, MetricValues: funnelMetrics(byValue[v][i], i == last)})
		}
	}
	if int64(len(table.Rows)) > fp.limit {
		table.Rows = table.Rows[:fp.limit]
	}
	return &RunFunnelReportResponse{FunnelTable: table, FunnelVisualization: vis, Kind: funnelKind}
}

// topBreakdownValues are the limit values with the most users summed over
// all steps, ties broken by value.
func topBreakdownValues(byValue map[string][]funnelCounts, limit int) []string {
	type ranked struct {
		value string
		users int64
	}
	var all []ranked
	for v, cs := range byValue {
		r := ranked{value: v}
		for _, c := range cs {
			r.users += c.users
		}
		all = append(all, r)
	}
	slices.SortFunc(all, func(a, b ranked) int {
		return cmp.Or(cmp.Compare(b.users, a.users), strings.Compare(a.value, b.value))
	})
	out := make([]string, 0, min(limit, len(all)))
	for _, r := range all[:min(limit, len(all))] {
		out = append(out, r.value)
	}
	return out
}

// funnelMetrics are a table row's four metric values.
func funnelMetrics(c funnelCounts, last bool) []Value {
	completers := c.completers
	if last {
		completers = c.users
	}
	abandon := c.users - completers
	rate := func(x int64) string {
		if c.users == 0 {
			return "0"
		}
		return strconv.FormatFloat(float64(x)/float64(c.users), 'f', -1, 64)
	}
	return []Value{{strconv.FormatInt(c.users, 10)}, {rate(completers)}, {strconv.FormatInt(abandon, 10)}, {rate(abandon)}}
}

// alphaPrefix is where the v1alpha methods (funnels) live.
const alphaPrefix = "/v1alpha/properties/"
