package sql

import (
	"context"
	"fmt"
	"strconv"

	"github.com/avila-analytics/avila/query/plan"
	"github.com/avila-analytics/avila/storage/postgres"
)

// Querier runs a statement; *pgxpool.Pool and pgx.Tx satisfy it.
type Querier = postgres.Querier

// RunReport answers p with one statement over events (or sessions,
// or item rows) and shapes the response.
func RunReport(ctx context.Context, db Querier, p *plan.Plan) (*plan.RunReportResponse, error) {
	q := BuildReport(p)
	rows, err := db.Query(ctx, q.Text, q.Args...)
	if err != nil {
		return nil, fmt.Errorf("query: run report: %w", err)
	}
	defer rows.Close()

	nk, nm := len(p.Dims), len(p.Metrics)
	var (
		part int32
		pos  int64
		k0   *int32
		keys = make([]*string, nk)
		ms   = newMetricCells(p.Metrics)
		dest = make([]any, 0, 3+nk+nm)
	)
	dest = append(dest, &part, &pos, &k0)
	for i := range keys {
		dest = append(dest, &keys[i])
	}
	dest = append(dest, ms.dest()...)

	resp := NewResponse(p)
	// Summaries by part, then by date range index.
	summaries := map[int32]map[int32][]plan.Value{}
	for rows.Next() {
		if err := rows.Scan(dest...); err != nil {
			return nil, fmt.Errorf("query: scan report row: %w", err)
		}
		switch part {
		case partRow:
			row := plan.Row{DimensionValues: make([]plan.Value, 0, nk+1), MetricValues: ms.values()}
			for _, k := range keys {
				row.DimensionValues = append(row.DimensionValues, plan.Value{Value: Deref(k)})
			}
			if len(p.Ranges) > 1 {
				row.DimensionValues = append(row.DimensionValues, plan.Value{Value: p.RangeNames[RangeIndex(k0, len(p.Ranges))]})
			}
			resp.Rows = append(resp.Rows, row)
		case partRowCount:
			resp.RowCount = pos
		case partTotal, partMax, partMin:
			if summaries[part] == nil {
				summaries[part] = map[int32][]plan.Value{}
			}
			summaries[part][int32(RangeIndex(k0, len(p.Ranges)))] = ms.values()
		default:
			return nil, fmt.Errorf("query: BUG: report row of unknown part %d", part)
		}
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("query: run report: %w", err)
	}
	if p.Totals && nm > 0 {
		resp.Totals = SummaryRows(p, summaries[partTotal], plan.ReservedTotal)
	}
	if p.Maximums && nm > 0 {
		resp.Maximums = SummaryRows(p, summaries[partMax], plan.ReservedMax)
	}
	if p.Minimums && nm > 0 {
		resp.Minimums = SummaryRows(p, summaries[partMin], plan.ReservedMin)
	}
	return resp, nil
}

// NewResponse is p's response without rows: headers and metadata.
func NewResponse(p *plan.Plan) *plan.RunReportResponse {
	resp := &plan.RunReportResponse{
		Metadata: plan.ResponseMetadata{CurrencyCode: p.Site.Currency, TimeZone: p.Site.TimeZone},
		Kind:     plan.ReportKind,
	}
	for _, d := range p.Dims {
		resp.DimensionHeaders = append(resp.DimensionHeaders, plan.DimensionHeader{Name: d.Name})
	}
	if len(p.Ranges) > 1 {
		resp.DimensionHeaders = append(resp.DimensionHeaders, plan.DimensionHeader{Name: plan.DateRangeDim})
	}
	for _, m := range p.Metrics {
		resp.MetricHeaders = append(resp.MetricHeaders, plan.MetricHeader{Name: m.Name, Type: m.Typ})
	}
	return resp
}

// SummaryRows is one summary row per date range, as GA4 gives them: each
// dimension holds reserved, dateRange holds the range's name, and a range
// without data has zeros.
func SummaryRows(p *plan.Plan, byRange map[int32][]plan.Value, reserved string) []plan.Row {
	out := make([]plan.Row, 0, len(p.Ranges))
	for i := range p.Ranges {
		row := plan.Row{DimensionValues: make([]plan.Value, 0, len(p.Dims)+1), MetricValues: byRange[int32(i)]}
		for range p.Dims {
			row.DimensionValues = append(row.DimensionValues, plan.Value{Value: reserved})
		}
		if len(p.Ranges) > 1 {
			row.DimensionValues = append(row.DimensionValues, plan.Value{Value: p.RangeNames[i]})
		}
		if row.MetricValues == nil {
			for range p.Metrics {
				row.MetricValues = append(row.MetricValues, plan.Value{Value: "0"})
			}
		}
		out = append(out, row)
	}
	return out
}

// metricCells are scan targets for one row's metrics: bigint columns for
// integer metrics, float8 for the others. NULL (no data) reads as 0.
type metricCells struct {
	defs   []*plan.MetricDef
	ints   []*int64
	floats []*float64
}

func newMetricCells(defs []*plan.MetricDef) *metricCells {
	return &metricCells{defs: defs, ints: make([]*int64, len(defs)), floats: make([]*float64, len(defs))}
}

func (c *metricCells) dest() []any {
	out := make([]any, len(c.defs))
	for i, m := range c.defs {
		if m.Integer() {
			out[i] = &c.ints[i]
		} else {
			out[i] = &c.floats[i]
		}
	}
	return out
}

// values formats the scanned metrics as GA4 does: integers in decimal,
// other numbers in the shortest form that reads back exactly.
func (c *metricCells) values() []plan.Value {
	out := make([]plan.Value, len(c.defs))
	for i, m := range c.defs {
		if m.Integer() {
			var v int64
			if c.ints[i] != nil {
				v = *c.ints[i]
			}
			out[i] = plan.Value{Value: strconv.FormatInt(v, 10)}
			continue
		}
		var v float64
		if c.floats[i] != nil {
			v = *c.floats[i]
		}
		out[i] = plan.Value{Value: strconv.FormatFloat(v, 'f', -1, 64)}
	}
	return out
}

func Deref(s *string) string {
	if s == nil {
		return plan.NotSet
	}
	return *s
}

// RangeIndex is the date range index in k0, clamped so that a value outside
// the plan (which the statement never returns) cannot index out of range.
func RangeIndex(k0 *int32, n int) int {
	if k0 == nil || *k0 < 0 || int(*k0) >= n {
		return 0
	}
	return int(*k0)
}
