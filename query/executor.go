package query

import (
	"context"
	"fmt"
	"strconv"

	"github.com/avila-analytics/avila/storage/postgres"
)

// querier runs a statement; *pgxpool.Pool and pgx.Tx satisfy it.
type querier = postgres.Querier

// runReport answers p from the rollups when they cover it (and p.route
// allows), else runs p's statement over events, and shapes the response.
func runReport(ctx context.Context, db querier, p *plan) (*RunReportResponse, error) {
	if p.route != routeEvents {
		if rp, ok := coverByRollups(p); ok {
			return runRollupReport(ctx, db, p, rp)
		}
		if p.route == routeRollups {
			return nil, errNotCovered
		}
	}
	q := buildSQL(p)
	rows, err := db.Query(ctx, q.text, q.args...)
	if err != nil {
		return nil, fmt.Errorf("query: run report: %w", err)
	}
	defer rows.Close()

	nk, nm := len(p.dims), len(p.metrics)
	var (
		part int32
		pos  int64
		k0   *int32
		keys = make([]*string, nk)
		ms   = newMetricCells(p.metrics)
		dest = make([]any, 0, 3+nk+nm)
	)
	dest = append(dest, &part, &pos, &k0)
	for i := range keys {
		dest = append(dest, &keys[i])
	}
	dest = append(dest, ms.dest()...)

	resp := newResponse(p)
	// Summaries by part, then by date range index.
	summaries := map[int32]map[int32][]Value{}
	for rows.Next() {
		if err := rows.Scan(dest...); err != nil {
			return nil, fmt.Errorf("query: scan report row: %w", err)
		}
		switch part {
		case partRow:
			row := Row{DimensionValues: make([]Value, 0, nk+1), MetricValues: ms.values()}
			for _, k := range keys {
				row.DimensionValues = append(row.DimensionValues, Value{deref(k)})
			}
			if len(p.ranges) > 1 {
				row.DimensionValues = append(row.DimensionValues, Value{p.rangeNames[rangeIndex(k0, len(p.ranges))]})
			}
			resp.Rows = append(resp.Rows, row)
		case partRowCount:
			resp.RowCount = pos
		case partTotal, partMax, partMin:
			if summaries[part] == nil {
				summaries[part] = map[int32][]Value{}
			}
			summaries[part][int32(rangeIndex(k0, len(p.ranges)))] = ms.values()
		default:
			return nil, fmt.Errorf("query: BUG: report row of unknown part %d", part)
		}
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("query: run report: %w", err)
	}
	if p.totals && nm > 0 {
		resp.Totals = summaryRows(p, summaries[partTotal], reservedTotal)
	}
	if p.maximums && nm > 0 {
		resp.Maximums = summaryRows(p, summaries[partMax], reservedMax)
	}
	if p.minimums && nm > 0 {
		resp.Minimums = summaryRows(p, summaries[partMin], reservedMin)
	}
	return resp, nil
}

// newResponse is p's response without rows: headers and metadata.
func newResponse(p *plan) *RunReportResponse {
	resp := &RunReportResponse{
		Metadata: ResponseMetadata{CurrencyCode: p.site.currency, TimeZone: p.site.timeZone},
		Kind:     reportKind,
	}
	for _, d := range p.dims {
		resp.DimensionHeaders = append(resp.DimensionHeaders, DimensionHeader{Name: d.name})
	}
	if len(p.ranges) > 1 {
		resp.DimensionHeaders = append(resp.DimensionHeaders, DimensionHeader{Name: dateRangeDim})
	}
	for _, m := range p.metrics {
		resp.MetricHeaders = append(resp.MetricHeaders, MetricHeader{Name: m.name, Type: m.typ})
	}
	return resp
}

// summaryRows is one summary row per date range, as GA4 gives them: each
// dimension holds reserved, dateRange holds the range's name, and a range
// without data has zeros.
func summaryRows(p *plan, byRange map[int32][]Value, reserved string) []Row {
	out := make([]Row, 0, len(p.ranges))
	for i := range p.ranges {
		row := Row{DimensionValues: make([]Value, 0, len(p.dims)+1), MetricValues: byRange[int32(i)]}
		for range p.dims {
			row.DimensionValues = append(row.DimensionValues, Value{reserved})
		}
		if len(p.ranges) > 1 {
			row.DimensionValues = append(row.DimensionValues, Value{p.rangeNames[i]})
		}
		if row.MetricValues == nil {
			for range p.metrics {
				row.MetricValues = append(row.MetricValues, Value{"0"})
			}
		}
		out = append(out, row)
	}
	return out
}

// metricCells are scan targets for one row's metrics: bigint columns for
// integer metrics, float8 for the others. NULL (no data) reads as 0.
type metricCells struct {
	defs   []*metricDef
	ints   []*int64
	floats []*float64
}

func newMetricCells(defs []*metricDef) *metricCells {
	return &metricCells{defs: defs, ints: make([]*int64, len(defs)), floats: make([]*float64, len(defs))}
}

func (c *metricCells) dest() []any {
	out := make([]any, len(c.defs))
	for i, m := range c.defs {
		if m.integer() {
			out[i] = &c.ints[i]
		} else {
			out[i] = &c.floats[i]
		}
	}
	return out
}

// values formats the scanned metrics as GA4 does: integers in decimal,
// other numbers in the shortest form that reads back exactly.
func (c *metricCells) values() []Value {
	out := make([]Value, len(c.defs))
	for i, m := range c.defs {
		if m.integer() {
			var v int64
			if c.ints[i] != nil {
				v = *c.ints[i]
			}
			out[i] = Value{strconv.FormatInt(v, 10)}
			continue
		}
		var v float64
		if c.floats[i] != nil {
			v = *c.floats[i]
		}
		out[i] = Value{strconv.FormatFloat(v, 'f', -1, 64)}
	}
	return out
}

func deref(s *string) string {
	if s == nil {
		return notSet
	}
	return *s
}

// rangeIndex is the date range index in k0, clamped so that a value outside
// the plan (which the statement never returns) cannot index out of range.
func rangeIndex(k0 *int32, n int) int {
	if k0 == nil || *k0 < 0 || int(*k0) >= n {
		return 0
	}
	return int(*k0)
}
