package query

import (
	"strconv"
	"time"

	"github.com/avila-analytics/avila/query/engine/realtime"
	"github.com/avila-analytics/avila/query/plan"
	datapb "google.golang.org/genproto/googleapis/analytics/data/v1beta"
	"google.golang.org/protobuf/encoding/protowire"
)

// The API speaks Google's own types (genproto's analytics/data v1beta and
// v1alpha); planning reads the structs of query/plan (request.go,
// filter.go, funnel_request.go) and query/engine/realtime (realtime.go).
// These functions convert at the edge,
// in both directions. Enums become their names (an unknown number becomes
// its decimal text, which validation refuses by name); parts the engines
// do not evaluate (cohorts, comparisons, dimension expressions, pivot
// order) are carried as markers so they are refused, never ignored.

// present marks a request part that was set but is not evaluated.
var present = []byte(`{}`)

func fromDimensions(in []*datapb.Dimension) []plan.Dimension {
	out := make([]plan.Dimension, 0, len(in))
	for _, d := range in {
		x := plan.Dimension{Name: d.GetName()}
		if d.GetDimensionExpression() != nil {
			x.DimensionExpression = present
		}
		out = append(out, x)
	}
	return out
}

func fromMetrics(in []*datapb.Metric) []plan.Metric {
	out := make([]plan.Metric, 0, len(in))
	for _, m := range in {
		out = append(out, plan.Metric{Name: m.GetName(), Expression: m.GetExpression(), Invisible: m.GetInvisible()})
	}
	return out
}

func fromDateRanges(in []*datapb.DateRange) []plan.DateRange {
	out := make([]plan.DateRange, 0, len(in))
	for _, r := range in {
		out = append(out, plan.DateRange{StartDate: r.GetStartDate(), EndDate: r.GetEndDate(), Name: r.GetName()})
	}
	return out
}

func fromOrderBys(in []*datapb.OrderBy) []plan.OrderBy {
	out := make([]plan.OrderBy, 0, len(in))
	for _, o := range in {
		x := plan.OrderBy{Desc: o.GetDesc()}
		if m := o.GetMetric(); m != nil {
			x.Metric = &plan.MetricOrderBy{MetricName: m.GetMetricName()}
		}
		if d := o.GetDimension(); d != nil {
			x.Dimension = &plan.DimensionOrderBy{DimensionName: d.GetDimensionName(), OrderType: d.GetOrderType().String()}
		}
		if o.GetPivot() != nil {
			x.Pivot = present
		}
		out = append(out, x)
	}
	return out
}

func fromAggregations(in []datapb.MetricAggregation) []plan.MetricAggregation {
	out := make([]plan.MetricAggregation, 0, len(in))
	for _, a := range in {
		out = append(out, plan.MetricAggregation(a.String()))
	}
	return out
}

// emptyFilterField is the field number of Filter.empty_filter, which GA4
// defines and genproto's v1beta Filter lacks: it arrives as an unknown
// field (decodeProto puts the JSON form there too).
const emptyFilterField protowire.Number = 8

// hasEmptyFilter reports whether f carries empty_filter among its unknown
// fields.
func hasEmptyFilter(f *datapb.Filter) bool {
	b := f.ProtoReflect().GetUnknown()
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return false
		}
		b = b[n:]
		if num == emptyFilterField && typ == protowire.BytesType {
			return true
		}
		if n = protowire.ConsumeFieldValue(num, typ, b); n < 0 {
			return false
		}
		b = b[n:]
	}
	return false
}

func fromFilterExpression(e *datapb.FilterExpression) *plan.FilterExpression {
	if e == nil {
		return nil
	}
	out := &plan.FilterExpression{}
	switch x := e.GetExpr().(type) {
	case *datapb.FilterExpression_AndGroup:
		out.AndGroup = fromFilterList(x.AndGroup)
	case *datapb.FilterExpression_OrGroup:
		out.OrGroup = fromFilterList(x.OrGroup)
	case *datapb.FilterExpression_NotExpression:
		out.NotExpression = fromFilterExpression(x.NotExpression)
		if out.NotExpression == nil {
			out.NotExpression = &plan.FilterExpression{}
		}
	case *datapb.FilterExpression_Filter:
		out.Filter = fromFilter(x.Filter)
	}
	return out
}

func fromFilterList(l *datapb.FilterExpressionList) *plan.FilterExpressionList {
	out := &plan.FilterExpressionList{Expressions: make([]plan.FilterExpression, 0, len(l.GetExpressions()))}
	for _, e := range l.GetExpressions() {
		if x := fromFilterExpression(e); x != nil {
			out.Expressions = append(out.Expressions, *x)
		} else {
			out.Expressions = append(out.Expressions, plan.FilterExpression{})
		}
	}
	return out
}

func fromFilter(f *datapb.Filter) *plan.Filter {
	out := &plan.Filter{FieldName: f.GetFieldName()}
	if s := f.GetStringFilter(); s != nil {
		out.StringFilter = &plan.StringFilter{MatchType: s.GetMatchType().String(), Value: s.GetValue(), CaseSensitive: s.GetCaseSensitive()}
	}
	if l := f.GetInListFilter(); l != nil {
		out.InListFilter = &plan.InListFilter{Values: l.GetValues(), CaseSensitive: l.GetCaseSensitive()}
	}
	if n := f.GetNumericFilter(); n != nil {
		out.NumericFilter = &plan.NumericFilter{Operation: n.GetOperation().String(), Value: fromNumeric(n.GetValue())}
	}
	if b := f.GetBetweenFilter(); b != nil {
		out.BetweenFilter = &plan.BetweenFilter{FromValue: fromNumeric(b.GetFromValue()), ToValue: fromNumeric(b.GetToValue())}
	}
	if f != nil && hasEmptyFilter(f) {
		out.EmptyFilter = &plan.EmptyFilter{}
	}
	return out
}

func fromNumeric(v *datapb.NumericValue) plan.NumericValue {
	switch x := v.GetOneValue().(type) {
	case *datapb.NumericValue_Int64Value:
		n := plan.Int64(x.Int64Value)
		return plan.NumericValue{Int64Value: &n}
	case *datapb.NumericValue_DoubleValue:
		d := x.DoubleValue
		return plan.NumericValue{DoubleValue: &d}
	}
	return plan.NumericValue{}
}

// fromRunReport is req as the engine's report request.
func fromRunReport(req *datapb.RunReportRequest) *plan.RunReportRequest {
	out := &plan.RunReportRequest{
		Property:            req.GetProperty(),
		Dimensions:          fromDimensions(req.GetDimensions()),
		Metrics:             fromMetrics(req.GetMetrics()),
		DateRanges:          fromDateRanges(req.GetDateRanges()),
		Limit:               plan.Int64(req.GetLimit()),
		Offset:              plan.Int64(req.GetOffset()),
		OrderBys:            fromOrderBys(req.GetOrderBys()),
		MetricAggregations:  fromAggregations(req.GetMetricAggregations()),
		KeepEmptyRows:       req.GetKeepEmptyRows(),
		CurrencyCode:        req.GetCurrencyCode(),
		ReturnPropertyQuota: req.GetReturnPropertyQuota(),
		DimensionFilter:     fromFilterExpression(req.GetDimensionFilter()),
		MetricFilter:        fromFilterExpression(req.GetMetricFilter()),
	}
	if req.GetCohortSpec() != nil {
		out.CohortSpec = present
	}
	return out
}

// fromRealtime is req as the realtime engine's request.
func fromRealtime(req *datapb.RunRealtimeReportRequest) *realtime.RunRealtimeReportRequest {
	out := &realtime.RunRealtimeReportRequest{
		Property:            req.GetProperty(),
		Dimensions:          fromDimensions(req.GetDimensions()),
		Metrics:             fromMetrics(req.GetMetrics()),
		DimensionFilter:     fromFilterExpression(req.GetDimensionFilter()),
		MetricFilter:        fromFilterExpression(req.GetMetricFilter()),
		Limit:               plan.Int64(req.GetLimit()),
		MetricAggregations:  fromAggregations(req.GetMetricAggregations()),
		OrderBys:            fromOrderBys(req.GetOrderBys()),
		ReturnPropertyQuota: req.GetReturnPropertyQuota(),
	}
	for _, r := range req.GetMinuteRanges() {
		mr := realtime.MinuteRange{Name: r.GetName()}
		if r.StartMinutesAgo != nil {
			v := plan.Int64(*r.StartMinutesAgo)
			mr.StartMinutesAgo = &v
		}
		if r.EndMinutesAgo != nil {
			v := plan.Int64(*r.EndMinutesAgo)
			mr.EndMinutesAgo = &v
		}
		out.MinuteRanges = append(out.MinuteRanges, mr)
	}
	return out
}

// Responses: the engines' rows as Google's messages.

func toRows(in []plan.Row) []*datapb.Row {
	if in == nil {
		return nil
	}
	out := make([]*datapb.Row, len(in))
	for i, r := range in {
		out[i] = toRow(r)
	}
	return out
}

func toRow(r plan.Row) *datapb.Row {
	row := &datapb.Row{DimensionValues: make([]*datapb.DimensionValue, len(r.DimensionValues)),
		MetricValues: make([]*datapb.MetricValue, len(r.MetricValues))}
	for j, v := range r.DimensionValues {
		row.DimensionValues[j] = dimValue(v.Value)
	}
	for j, v := range r.MetricValues {
		row.MetricValues[j] = &datapb.MetricValue{OneValue: &datapb.MetricValue_Value{Value: v.Value}}
	}
	return row
}

func dimValue(v string) *datapb.DimensionValue {
	return &datapb.DimensionValue{OneValue: &datapb.DimensionValue_Value{Value: v}}
}

func toDimensionHeaders(in []plan.DimensionHeader) []*datapb.DimensionHeader {
	out := make([]*datapb.DimensionHeader, len(in))
	for i, h := range in {
		out[i] = &datapb.DimensionHeader{Name: h.Name}
	}
	return out
}

func toMetricHeaders(in []plan.MetricHeader) []*datapb.MetricHeader {
	out := make([]*datapb.MetricHeader, len(in))
	for i, h := range in {
		out[i] = &datapb.MetricHeader{Name: h.Name, Type: metricType(h.Type)}
	}
	return out
}

func metricType(name string) datapb.MetricType {
	return datapb.MetricType(datapb.MetricType_value[name])
}

// clampInt32 is n within int32, for GA4's int32 counts.
func clampInt32(n int64) int32 {
	return int32(max(min(n, 1<<31-1), -1<<31))
}

func toQuota(q *plan.PropertyQuota) *datapb.PropertyQuota {
	if q == nil {
		return nil
	}
	st := func(s plan.QuotaStatus) *datapb.QuotaStatus {
		return &datapb.QuotaStatus{Consumed: clampInt32(s.Consumed), Remaining: clampInt32(s.Remaining)}
	}
	return &datapb.PropertyQuota{
		TokensPerDay: st(q.TokensPerDay), TokensPerHour: st(q.TokensPerHour), ConcurrentRequests: st(q.ConcurrentRequests),
		ServerErrorsPerProjectPerHour:         st(q.ServerErrorsPerProjectPerHour),
		PotentiallyThresholdedRequestsPerHour: st(q.PotentiallyThresholdedRequestsPerHour),
		TokensPerProjectPerHour:               st(q.TokensPerProjectPerHour),
	}
}

func toReport(r *plan.RunReportResponse) *datapb.RunReportResponse {
	if r == nil {
		return nil
	}
	cur, tz := r.Metadata.CurrencyCode, r.Metadata.TimeZone
	return &datapb.RunReportResponse{
		DimensionHeaders: toDimensionHeaders(r.DimensionHeaders),
		MetricHeaders:    toMetricHeaders(r.MetricHeaders),
		Rows:             toRows(r.Rows),
		Totals:           toRows(r.Totals),
		Maximums:         toRows(r.Maximums),
		Minimums:         toRows(r.Minimums),
		RowCount:         clampInt32(r.RowCount),
		Metadata:         &datapb.ResponseMetaData{CurrencyCode: &cur, TimeZone: &tz},
		PropertyQuota:    toQuota(r.PropertyQuota),
		Kind:             r.Kind,
	}
}

func toRealtime(r *realtime.RunRealtimeReportResponse) *datapb.RunRealtimeReportResponse {
	return &datapb.RunRealtimeReportResponse{
		DimensionHeaders: toDimensionHeaders(r.DimensionHeaders),
		MetricHeaders:    toMetricHeaders(r.MetricHeaders),
		Rows:             toRows(r.Rows),
		Totals:           toRows(r.Totals),
		Maximums:         toRows(r.Maximums),
		Minimums:         toRows(r.Minimums),
		RowCount:         clampInt32(r.RowCount),
		PropertyQuota:    toQuota(r.PropertyQuota),
		Kind:             r.Kind,
	}
}

// propertyName is GA4's resource name of property id.
func propertyName(id uint32) string { return "properties/" + strconv.FormatUint(uint64(id), 10) }

// durationText is d in proto3 JSON's Duration form ("1.5s"), which the
// funnel engine reads.
func durationText(seconds int64, nanos int32) string {
	return strconv.FormatFloat((time.Duration(seconds)*time.Second+time.Duration(nanos)).Seconds(), 'f', -1, 64) + "s"
}
