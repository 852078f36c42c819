package query

import (
	"context"
	"fmt"
	"math/big"
	"slices"
	"strings"
	"time"

	"github.com/avila-analytics/avila/query/engine/rollups"
	"github.com/avila-analytics/avila/query/plan"
	datapb "google.golang.org/genproto/googleapis/analytics/data/v1beta"
)

// Pivot reports are computed from the engine's own reports, run together
// in one read-only snapshot (runBatch):
//
//   - the cells: every requested dimension, up to maxLimit groups;
//   - per pivot, its dimensions alone, with the pivot's orderBys, offset
//     and limit: the engine orders and pages them, so a pivot's columns
//     are its top combinations by its own order (by metric values of the
//     combination as a whole, correct for user counts too), and the
//     report's rowCount is the pivot header's rowCount;
//   - per pivot asking for a TOTAL, the other pivots' dimensions alone:
//     the totals across this pivot's values.
//
// Rows are the combinations of the pivots' selected values that have data,
// pivot by pivot in their selection order (the first pivot outermost).
// Aggregates are rows whose dimensions of the aggregated pivot read
// RESERVED_TOTAL, RESERVED_MAXIMUM or RESERVED_MINIMUM, one per
// combination of the other pivots' selected values; a MAXIMUM or MINIMUM
// is taken over the cells of the pivot's selected values.

const (
	pivotKind      = "analyticsData#runPivotReport"
	batchPivotKind = "analyticsData#batchRunPivotReports"
	// maxPivotCells bounds the product of the pivots' limits, as GA4 does.
	maxPivotCells = 250000
	// Reserved values of pivot aggregates, GA4's.
	reservedMaximum = "RESERVED_MAXIMUM"
	reservedMinimum = "RESERVED_MINIMUM"
)

// pivotPlan is a validated pivot report: the engine reports it reads and
// how to assemble their rows.
type pivotPlan struct {
	site    plan.Site
	dims    []string // dimension headers: the pivots' fieldNames in order
	metrics int
	pivots  []pivotPart
	reqs    []*plan.RunReportRequest // cells first, then each pivot's, then totals
	plans   []*plan.Plan
	quota   bool
}

type pivotPart struct {
	cols   []int // header indexes of the pivot's dimensions
	report int   // index in reqs of the pivot's own report
	// byColumn are the pivot's leading orderBys of type pivot: its
	// combinations sort by a metric in one column of the other pivots,
	// in Go over its report's order (the rest of its orderBys); offset
	// and limit then apply here, not in the report.
	byColumn      []columnOrder
	offset, limit int64
	aggs          []string
	totals        int // index in reqs of the report across this pivot (TOTAL); -1: none
	headers       [][]string
}

// columnOrder sorts a pivot's combinations by metric (its index) in the
// cells whose other dimensions hold values (by header index).
type columnOrder struct {
	metric int
	values map[int]string
	desc   bool
}

// validatePivot checks req and plans its engine reports.
func validatePivot(in *datapb.RunPivotReportRequest, s plan.Site, now time.Time, r plan.Route) (*pivotPlan, *plan.Error) {
	if ae := checkProperty("property", in.GetProperty(), s.ID); ae != nil {
		return nil, ae
	}
	if len(in.GetDateRanges()) > 1 {
		return nil, plan.InvalidArgument("dateRanges: pivot reports over several date ranges are not supported by this server; ask one pivot report per range.")
	}
	base := fromRunReport(&datapb.RunReportRequest{
		Dimensions: in.GetDimensions(), Metrics: in.GetMetrics(), DateRanges: in.GetDateRanges(),
		DimensionFilter: in.GetDimensionFilter(), MetricFilter: in.GetMetricFilter(), CurrencyCode: in.GetCurrencyCode(),
		CohortSpec: in.GetCohortSpec(), KeepEmptyRows: in.GetKeepEmptyRows(),
	})
	pp := &pivotPlan{site: s, metrics: len(base.Metrics), quota: in.GetReturnPropertyQuota()}
	requested := map[string]bool{}
	for _, d := range base.Dimensions {
		requested[d.Name] = true
	}
	used := map[string]bool{}
	if len(in.GetPivots()) == 0 && len(base.Dimensions) > 0 {
		return nil, plan.InvalidArgument("pivots: a pivot report needs at least one pivot naming its dimensions.")
	}
	cells := int64(1)
	for i, pv := range in.GetPivots() {
		path := fmt.Sprintf("pivots[%d]", i)
		part := pivotPart{totals: -1}
		if len(pv.GetFieldNames()) == 0 {
			return nil, plan.InvalidArgument("%s.fieldNames: a pivot needs at least one dimension.", path)
		}
		var dims []*datapb.Dimension
		for j, name := range pv.GetFieldNames() {
			switch {
			case !requested[name]:
				return nil, plan.InvalidArgument("%s.fieldNames[%d]: %s is not one of the request's dimensions.", path, j, plan.QuoteName(name))
			case used[name]:
				return nil, plan.InvalidArgument("%s.fieldNames[%d]: dimension %s is in more than one pivot.", path, j, plan.QuoteName(name))
			}
			used[name] = true
			part.cols = append(part.cols, len(pp.dims))
			pp.dims = append(pp.dims, name)
			dims = append(dims, &datapb.Dimension{Name: name})
		}
		switch {
		case pv.GetLimit() < 0:
			return nil, plan.InvalidArgument("%s.limit must be positive, got %d.", path, pv.GetLimit())
		case pv.GetOffset() < 0:
			return nil, plan.InvalidArgument("%s.offset must not be negative, got %d.", path, pv.GetOffset())
		}
		limit := pv.GetLimit()
		if limit == 0 {
			limit = plan.DefaultLimit
		}
		if cells *= limit; cells > maxPivotCells {
			return nil, plan.InvalidArgument("pivots: the product of the pivots' limits must not exceed %d.", maxPivotCells)
		}
		for _, a := range pv.GetMetricAggregations() {
			switch a {
			case datapb.MetricAggregation_TOTAL:
				part.aggs = append(part.aggs, plan.ReservedTotal)
			case datapb.MetricAggregation_MAXIMUM:
				part.aggs = append(part.aggs, reservedMaximum)
			case datapb.MetricAggregation_MINIMUM:
				part.aggs = append(part.aggs, reservedMinimum)
			default:
				return nil, plan.InvalidArgument("%s.metricAggregations: %s is not supported; use TOTAL, MAXIMUM or MINIMUM.", path, plan.QuoteName(a.String()))
			}
		}
		sub := *base
		rest := pv.GetOrderBys()
		for len(rest) > 0 && rest[0].GetPivot() != nil {
			part.byColumn = append(part.byColumn, columnOrder{desc: rest[0].GetDesc(), values: map[int]string{}})
			rest = rest[1:]
		}
		for j, o := range rest {
			if o.GetPivot() != nil {
				return nil, plan.InvalidArgument("%s.orderBys[%d]: a pivot orderBy must come before the metric and dimension ones.", path, len(part.byColumn)+j)
			}
		}
		sub.Dimensions, sub.OrderBys = fromDimensions(dims), fromOrderBys(rest)
		sub.Limit, sub.Offset = plan.Int64(limit), plan.Int64(pv.GetOffset())
		if len(part.byColumn) > 0 {
			sub.Limit, sub.Offset, part.offset, part.limit = plan.MaxLimit, 0, pv.GetOffset(), limit
		}
		sub.DimensionFilter, sub.MetricFilter = base.DimensionFilter, base.MetricFilter
		part.report = len(pp.pivots) + 1
		pp.pivots = append(pp.pivots, part)
		pp.reqs = append(pp.reqs, &sub)
	}
	for name := range requested {
		if !used[name] {
			return nil, plan.InvalidArgument("pivots: dimension %s is in no pivot; every requested dimension belongs to one pivot.", plan.QuoteName(name))
		}
	}
	// Pivot orderBys name a metric and a column: values of every
	// dimension of the other pivots.
	for k, pv := range in.GetPivots() {
		for j := range pp.pivots[k].byColumn {
			o := pv.GetOrderBys()[j].GetPivot()
			path := fmt.Sprintf("pivots[%d].orderBys[%d].pivot", k, j)
			co := &pp.pivots[k].byColumn[j]
			co.metric = slices.IndexFunc(base.Metrics, func(m plan.Metric) bool { return m.Name == o.GetMetricName() })
			if co.metric < 0 {
				return nil, plan.InvalidArgument("%s.metricName: %s is not one of the request's metrics.", path, plan.QuoteName(o.GetMetricName()))
			}
			for i, sel := range o.GetPivotSelections() {
				c := slices.Index(pp.dims, sel.GetDimensionName())
				if c < 0 || slices.Contains(pp.pivots[k].cols, c) {
					return nil, plan.InvalidArgument("%s.pivotSelections[%d].dimensionName: %s is not a dimension of another pivot.", path, i, plan.QuoteName(sel.GetDimensionName()))
				}
				co.values[c] = sel.GetDimensionValue()
			}
			if len(co.values) != len(pp.dims)-len(pp.pivots[k].cols) {
				return nil, plan.InvalidArgument("%s.pivotSelections: name a value of every dimension of the other pivots (one column).", path)
			}
		}
	}
	// The cells: every dimension, in header order.
	cellReq := *base
	cellReq.Dimensions = nil
	for _, name := range pp.dims {
		cellReq.Dimensions = append(cellReq.Dimensions, plan.Dimension{Name: name})
	}
	cellReq.Limit = plan.MaxLimit
	pp.reqs = append([]*plan.RunReportRequest{&cellReq}, pp.reqs...)
	// Totals across each pivot that asks for them.
	for k := range pp.pivots {
		if pp.metrics == 0 {
			pp.pivots[k].aggs = nil // aggregates of no metrics: none
		}
		if !slices.Contains(pp.pivots[k].aggs, plan.ReservedTotal) {
			continue
		}
		tot := *base
		tot.Dimensions, tot.Limit = nil, plan.MaxLimit
		for j, p := range pp.pivots {
			if j != k {
				for _, c := range p.cols {
					tot.Dimensions = append(tot.Dimensions, plan.Dimension{Name: pp.dims[c]})
				}
			}
		}
		if len(tot.Dimensions) == 0 {
			// No other pivot: the grand total, as the report's TOTAL row.
			tot.MetricAggregations = []plan.MetricAggregation{"TOTAL"}
			tot.Limit = 1
		}
		pp.pivots[k].totals = len(pp.reqs)
		pp.reqs = append(pp.reqs, &tot)
	}
	for i, req := range pp.reqs {
		p, ae := plan.Validate(req, s, now)
		if ae != nil {
			if i > 0 && i <= len(pp.pivots) {
				return nil, prefixError(ae, fmt.Sprintf("pivots[%d]", i-1))
			}
			return nil, ae
		}
		p.Route = r
		pp.plans = append(pp.plans, p)
	}
	return pp, nil
}

// assemble shapes the pivot response from the engine's reports (in the
// order of pp.reqs).
func (pp *pivotPlan) assemble(reports []*plan.RunReportResponse) *datapb.RunPivotReportResponse {
	cells := reports[0]
	out := &datapb.RunPivotReportResponse{Kind: pivotKind, MetricHeaders: toMetricHeaders(cells.MetricHeaders)}
	cur, tz := cells.Metadata.CurrencyCode, cells.Metadata.TimeZone
	out.Metadata = &datapb.ResponseMetaData{CurrencyCode: &cur, TimeZone: &tz}
	for _, name := range pp.dims {
		out.DimensionHeaders = append(out.DimensionHeaders, &datapb.DimensionHeader{Name: name})
	}
	byKey := make(map[string][]plan.Value, len(cells.Rows))
	for _, row := range cells.Rows {
		byKey[valuesKey(row.DimensionValues)] = row.MetricValues
	}
	// Each pivot's selected combinations.
	for k := range pp.pivots {
		p := &pp.pivots[k]
		rep := reports[p.report]
		ph := &datapb.PivotHeader{RowCount: clampInt32(rep.RowCount)}
		p.headers = nil
		rows := rep.Rows
		if len(p.byColumn) > 0 {
			rows = pp.orderByColumns(p, rows, byKey)
		}
		for _, row := range rows {
			vals := make([]string, len(p.cols))
			pdh := &datapb.PivotDimensionHeader{}
			for j := range p.cols {
				vals[j] = row.DimensionValues[j].Value
				pdh.DimensionValues = append(pdh.DimensionValues, dimValue(vals[j]))
			}
			p.headers = append(p.headers, vals)
			ph.PivotDimensionHeaders = append(ph.PivotDimensionHeaders, pdh)
		}
		out.PivotHeaders = append(out.PivotHeaders, ph)
	}
	// Rows: the combinations of the selections, in nested order.
	pp.combine(-1, make([]string, len(pp.dims)), func(dims []string) {
		if m, ok := byKey[strings.Join(dims, "\x00")]; ok {
			out.Rows = append(out.Rows, toRow(pivotRow(dims, m)))
		}
	})
	for k := range pp.pivots {
		p := &pp.pivots[k]
		for _, agg := range p.aggs {
			pp.combine(k, make([]string, len(pp.dims)), func(dims []string) {
				for _, c := range p.cols {
					dims[c] = agg
				}
				var vals []plan.Value
				if agg == plan.ReservedTotal {
					vals = pp.totalOf(reports[p.totals], k, dims)
				} else {
					vals = pp.extremeOf(byKey, k, dims, agg == reservedMaximum)
				}
				if vals != nil {
					out.Aggregates = append(out.Aggregates, toRow(pivotRow(dims, vals)))
				}
			})
		}
	}
	return out
}

// orderByColumns sorts a pivot's combinations (rows of its report, in
// the report's order) by its pivot orderBys, stably, then pages them. A
// combination without a cell in the column reads 0.
func (pp *pivotPlan) orderByColumns(p *pivotPart, rows []plan.Row, byKey map[string][]plan.Value) []plan.Row {
	value := func(row plan.Row, co columnOrder) string {
		dims := make([]string, len(pp.dims))
		for c, v := range co.values {
			dims[c] = v
		}
		for j, c := range p.cols {
			dims[c] = row.DimensionValues[j].Value
		}
		if m, ok := byKey[strings.Join(dims, "\x00")]; ok {
			return m[co.metric].Value
		}
		return "0"
	}
	rows = slices.Clone(rows)
	slices.SortStableFunc(rows, func(a, b plan.Row) int {
		for _, co := range p.byColumn {
			c := rollups.CompareNumberText(value(a, co), value(b, co))
			if co.desc {
				c = -c
			}
			if c != 0 {
				return c
			}
		}
		return 0
	})
	lo := min(p.offset, int64(len(rows)))
	return rows[lo:min(lo+p.limit, int64(len(rows)))]
}

// combine calls fn with every combination of the pivots' selected values
// (skipping pivot skip, whose columns stay as they are), first pivot
// outermost.
func (pp *pivotPlan) combine(skip int, dims []string, fn func([]string)) {
	var walk func(k int)
	walk = func(k int) {
		if k == len(pp.pivots) {
			fn(slices.Clone(dims))
			return
		}
		if k == skip {
			walk(k + 1)
			return
		}
		p := &pp.pivots[k]
		for _, vals := range p.headers {
			for j, c := range p.cols {
				dims[c] = vals[j]
			}
			walk(k + 1)
		}
	}
	walk(0)
}

// totalOf is the row of the totals report rep (grouped by every pivot but
// k) matching dims, or its TOTAL row when k is the only pivot; nil when it
// has none.
func (pp *pivotPlan) totalOf(rep *plan.RunReportResponse, k int, dims []string) []plan.Value {
	if len(pp.pivots) == 1 {
		if len(rep.Totals) > 0 {
			return rep.Totals[0].MetricValues
		}
		return nil
	}
	var want []string
	for j, p := range pp.pivots {
		if j != k {
			for _, c := range p.cols {
				want = append(want, dims[c])
			}
		}
	}
	key := strings.Join(want, "\x00")
	for _, row := range rep.Rows {
		if valuesKey(row.DimensionValues) == key {
			return row.MetricValues
		}
	}
	return nil
}

// extremeOf is, metric by metric, the largest (or smallest) value of the
// cells over pivot k's selected values, the other pivots' values as in
// dims; nil when no such cell has data.
func (pp *pivotPlan) extremeOf(byKey map[string][]plan.Value, k int, dims []string, largest bool) []plan.Value {
	p := &pp.pivots[k]
	cell := slices.Clone(dims)
	var best []plan.Value
	var bestNum []*big.Rat
	for _, vals := range p.headers {
		for j, c := range p.cols {
			cell[c] = vals[j]
		}
		m, ok := byKey[strings.Join(cell, "\x00")]
		if !ok {
			continue
		}
		if best == nil {
			best, bestNum = slices.Clone(m), make([]*big.Rat, len(m))
			for i, v := range m {
				bestNum[i], _ = rollups.ParseNumberText(v.Value)
			}
			continue
		}
		for i, v := range m {
			n, ok := rollups.ParseNumberText(v.Value)
			if !ok || bestNum[i] == nil {
				continue
			}
			if c := n.Cmp(bestNum[i]); (largest && c > 0) || (!largest && c < 0) {
				best[i], bestNum[i] = v, n
			}
		}
	}
	return best
}

func pivotRow(dims []string, metrics []plan.Value) plan.Row {
	row := plan.Row{DimensionValues: make([]plan.Value, len(dims)), MetricValues: metrics}
	for i, d := range dims {
		row.DimensionValues[i] = plan.Value{Value: d}
	}
	return row
}

func valuesKey(vs []plan.Value) string {
	parts := make([]string, len(vs))
	for i, v := range vs {
		parts[i] = v.Value
	}
	return strings.Join(parts, "\x00")
}

// runPivotReport validates and runs one pivot report.
func (h *handler) runPivotReport(ctx context.Context, c apiCall, id uint32, in *datapb.RunPivotReportRequest) (*datapb.RunPivotReportResponse, error) {
	out, err := h.pivotReports(ctx, c, id, "runPivotReport", []*datapb.RunPivotReportRequest{in}, "")
	if err != nil {
		return nil, err
	}
	return out[0], nil
}

// batchRunPivotReports runs up to maxBatchRequests pivot reports in one
// snapshot; a bad one fails the batch with its index, as in GA4.
func (h *handler) batchRunPivotReports(ctx context.Context, c apiCall, id uint32, in *datapb.BatchRunPivotReportsRequest) (*datapb.BatchRunPivotReportsResponse, error) {
	if err := checkProperty("property", in.GetProperty(), id); err != nil {
		return nil, err
	}
	switch n := len(in.GetRequests()); {
	case n == 0:
		return nil, plan.InvalidArgument("requests: a batch needs at least one request.")
	case n > maxBatchRequests:
		return nil, plan.InvalidArgument("requests: a batch holds at most %d requests, got %d.", maxBatchRequests, n)
	}
	out, err := h.pivotReports(ctx, c, id, "batchRunPivotReports", in.GetRequests(), "requests")
	if err != nil {
		return nil, err
	}
	return &datapb.BatchRunPivotReportsResponse{PivotReports: out, Kind: batchPivotKind}, nil
}

// pivotReports validates every pivot request, then runs all their engine
// reports in one snapshot (cached together under method) and assembles
// them. field names the requests in errors ("" for a single report).
func (h *handler) pivotReports(ctx context.Context, c apiCall, id uint32, method string, in []*datapb.RunPivotReportRequest, field string) ([]*datapb.RunPivotReportResponse, error) {
	s, err := h.site(ctx, id)
	if err != nil {
		return nil, err
	}
	now := h.now()
	pps := make([]*pivotPlan, len(in))
	var reqs []*plan.RunReportRequest
	var plans []*plan.Plan
	for i, req := range in {
		pp, ae := validatePivot(req, s, now, h.route)
		if ae != nil {
			if field != "" {
				ae = prefixError(ae, fmt.Sprintf("%s[%d]", field, i))
			}
			return nil, ae
		}
		pps[i] = pp
		reqs, plans = append(reqs, pp.reqs...), append(plans, pp.plans...)
	}
	resp, err := cached(ctx, h, method, s, reqs, plans, func(d db) (*BatchRunReportsResponse, error) {
		return runBatch(ctx, d, plans, h.names)
	})
	if err != nil {
		return nil, err
	}
	report := slices.ContainsFunc(pps, func(pp *pivotPlan) bool { return pp.quota })
	pq := toQuota(h.quota.charge(ctx, quotaCore, id, c.key, reportsCost(usageOf(ctx), plans...), report))
	out := make([]*datapb.RunPivotReportResponse, len(pps))
	at := 0
	for i, pp := range pps {
		out[i] = pp.assemble(resp.Reports[at : at+len(pp.reqs)])
		at += len(pp.reqs)
		if pp.quota {
			out[i].PropertyQuota = pq
		}
	}
	return out, nil
}
