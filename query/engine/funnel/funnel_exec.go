package funnel

import (
	"cmp"
	"context"
	"fmt"
	"github.com/avila-analytics/avila/query/engine/sql"
	"github.com/avila-analytics/avila/query/plan"
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

// Counts are one funnel table cell group: users at a step and those
// of them who went on to the next step.
type Counts struct{ Users, Completers int64 }

// Run runs fp's statement and shapes GA4's two sub reports.
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
func Run(ctx context.Context, db sql.Querier, fp *plan.FunnelPlan) (*plan.RunFunnelReportResponse, error) {
	q := buildFunnelSQL(fp)
	rows, err := db.Query(ctx, q.Text, q.Args...)
	if err != nil {
		return nil, fmt.Errorf("query: run funnel: %w", err)
	}
	defer rows.Close()
	n := len(fp.Steps)
	totals := make([]Counts, n)
	byValue := map[string][]Counts{}
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
		c := Counts{users, completers}
		if total {
			totals[step-1] = c
			continue
		}
		v := sql.Deref(value)
		if byValue[v] == nil {
			byValue[v] = make([]Counts, n)
		}
		byValue[v][step-1] = c
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("query: run funnel: %w", err)
	}
	return funnelResponse(fp, totals, byValue), nil
}

func funnelResponse(fp *plan.FunnelPlan, totals []Counts, byValue map[string][]Counts) *plan.RunFunnelReportResponse {
	table := &plan.FunnelSubReport{
		DimensionHeaders: []plan.DimensionHeader{{Name: funnelStepNameDim}},
		MetricHeaders: []plan.MetricHeader{{Name: "activeUsers", Type: plan.TypeInteger}, {Name: funnelCompletionRate, Type: plan.TypeFloat},
			{Name: funnelAbandonments, Type: plan.TypeInteger}, {Name: funnelAbandonmentRate, Type: plan.TypeFloat}},
	}
	vis := &plan.FunnelSubReport{
		DimensionHeaders: []plan.DimensionHeader{{Name: funnelStepNameDim}},
		MetricHeaders:    []plan.MetricHeader{{Name: "activeUsers", Type: plan.TypeInteger}},
	}
	var values []string
	if fp.Breakdown != nil {
		table.DimensionHeaders = append(table.DimensionHeaders, plan.DimensionHeader{Name: fp.Breakdown.Name})
		values = topBreakdownValues(byValue, fp.BdLimit)
	}
	last := len(fp.Steps) - 1
	for i, st := range fp.Steps {
		vis.Rows = append(vis.Rows, plan.Row{DimensionValues: []plan.Value{{Value: st.Name}}, MetricValues: []plan.Value{{Value: strconv.FormatInt(totals[i].Users, 10)}}})
		if fp.Breakdown == nil {
			table.Rows = append(table.Rows, plan.Row{DimensionValues: []plan.Value{{Value: st.Name}}, MetricValues: funnelMetrics(totals[i], i == last)})
			continue
		}
		table.Rows = append(table.Rows, plan.Row{DimensionValues: []plan.Value{{Value: st.Name}, {Value: plan.ReservedTotal}}, MetricValues: funnelMetrics(totals[i], i == last)})
		for _, v := range values {
			table.Rows = append(table.Rows, plan.Row{DimensionValues: []plan.Value{{Value: st.Name}, {Value: v}}, MetricValues: funnelMetrics(byValue[v][i], i == last)})
		}
	}
	if int64(len(table.Rows)) > fp.Limit {
		table.Rows = table.Rows[:fp.Limit]
	}
	return &plan.RunFunnelReportResponse{FunnelTable: table, FunnelVisualization: vis, Kind: plan.FunnelKind}
}

// topBreakdownValues are the limit values with the most users summed over
// all steps, ties broken by value.
func topBreakdownValues(byValue map[string][]Counts, limit int) []string {
	type ranked struct {
		value string
		users int64
	}
	var all []ranked
	for v, cs := range byValue {
		r := ranked{value: v}
		for _, c := range cs {
			r.users += c.Users
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
func funnelMetrics(c Counts, last bool) []plan.Value {
	completers := c.Completers
	if last {
		completers = c.Users
	}
	abandon := c.Users - completers
	rate := func(x int64) string {
		if c.Users == 0 {
			return "0"
		}
		return strconv.FormatFloat(float64(x)/float64(c.Users), 'f', -1, 64)
	}
	return []plan.Value{{Value: strconv.FormatInt(c.Users, 10)}, {Value: rate(completers)}, {Value: strconv.FormatInt(abandon, 10)}, {Value: rate(abandon)}}
}
