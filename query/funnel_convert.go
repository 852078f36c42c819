package query

import (
	"github.com/avila-analytics/avila/query/plan"
	alphapb "google.golang.org/genproto/googleapis/analytics/data/v1alpha"
)

// fromFunnel is a v1alpha RunFunnelReportRequest as the funnel engine's
// request (see convert.go).
func fromFunnel(req *alphapb.RunFunnelReportRequest) *plan.RunFunnelReportRequest {
	out := &plan.RunFunnelReportRequest{
		Property:                req.GetProperty(),
		FunnelVisualizationType: req.GetFunnelVisualizationType().String(),
		Limit:                   plan.Int64(req.GetLimit()),
		ReturnPropertyQuota:     req.GetReturnPropertyQuota(),
	}
	for _, r := range req.GetDateRanges() {
		out.DateRanges = append(out.DateRanges, plan.DateRange{StartDate: r.GetStartDate(), EndDate: r.GetEndDate(), Name: r.GetName()})
	}
	if req.GetFunnelNextAction() != nil {
		out.FunnelNextAction = present
	}
	if len(req.GetSegments()) > 0 {
		out.Segments = present
	}
	if req.GetDimensionFilter() != nil {
		out.DimensionFilter = present
	}
	if f := req.GetFunnel(); f != nil {
		out.Funnel = &plan.Funnel{IsOpenFunnel: f.GetIsOpenFunnel(), Steps: make([]plan.FunnelStep, 0, len(f.GetSteps()))}
		for _, st := range f.GetSteps() {
			x := plan.FunnelStep{Name: st.GetName(), IsDirectlyFollowedBy: st.GetIsDirectlyFollowedBy(),
				FilterExpression: fromFunnelExpr(st.GetFilterExpression())}
			if d := st.GetWithinDurationFromPriorStep(); d != nil {
				x.WithinDurationFromPriorStep = durationText(d.GetSeconds(), d.GetNanos())
			}
			out.Funnel.Steps = append(out.Funnel.Steps, x)
		}
	}
	if b := req.GetFunnelBreakdown(); b != nil {
		out.FunnelBreakdown = &plan.FunnelBreakdown{Limit: plan.Int64(b.GetLimit())}
		if d := b.GetBreakdownDimension(); d != nil {
			out.FunnelBreakdown.BreakdownDimension = &plan.Dimension{Name: d.GetName()}
			if d.GetDimensionExpression() != nil {
				out.FunnelBreakdown.BreakdownDimension.DimensionExpression = present
			}
		}
	}
	return out
}

func fromFunnelExpr(e *alphapb.FunnelFilterExpression) *plan.FunnelFilterExpression {
	if e == nil {
		return nil
	}
	out := &plan.FunnelFilterExpression{}
	list := func(l *alphapb.FunnelFilterExpressionList) *plan.FunnelFilterExpressionList {
		g := &plan.FunnelFilterExpressionList{Expressions: make([]plan.FunnelFilterExpression, 0, len(l.GetExpressions()))}
		for _, x := range l.GetExpressions() {
			if c := fromFunnelExpr(x); c != nil {
				g.Expressions = append(g.Expressions, *c)
			} else {
				g.Expressions = append(g.Expressions, plan.FunnelFilterExpression{})
			}
		}
		return g
	}
	switch x := e.GetExpr().(type) {
	case *alphapb.FunnelFilterExpression_AndGroup:
		out.AndGroup = list(x.AndGroup)
	case *alphapb.FunnelFilterExpression_OrGroup:
		out.OrGroup = list(x.OrGroup)
	case *alphapb.FunnelFilterExpression_NotExpression:
		out.NotExpression = fromFunnelExpr(x.NotExpression)
		if out.NotExpression == nil {
			out.NotExpression = &plan.FunnelFilterExpression{}
		}
	case *alphapb.FunnelFilterExpression_FunnelFieldFilter:
		f := x.FunnelFieldFilter
		out.FunnelFieldFilter = &plan.FunnelFieldFilter{FieldName: f.GetFieldName()}
		out.FunnelFieldFilter.StringFilter, out.FunnelFieldFilter.InListFilter, out.FunnelFieldFilter.NumericFilter, out.FunnelFieldFilter.BetweenFilter =
			alphaFilters(f.GetStringFilter(), f.GetInListFilter(), f.GetNumericFilter(), f.GetBetweenFilter())
	case *alphapb.FunnelFilterExpression_FunnelEventFilter:
		out.FunnelEventFilter = &plan.FunnelEventFilter{EventName: x.FunnelEventFilter.GetEventName(),
			FunnelParameterFilterExpression: fromParamExpr(x.FunnelEventFilter.GetFunnelParameterFilterExpression())}
	}
	return out
}

func fromParamExpr(e *alphapb.FunnelParameterFilterExpression) *plan.FunnelParameterFilterExpression {
	if e == nil {
		return nil
	}
	out := &plan.FunnelParameterFilterExpression{}
	list := func(l *alphapb.FunnelParameterFilterExpressionList) *plan.FunnelParameterFilterExpressionList {
		g := &plan.FunnelParameterFilterExpressionList{Expressions: make([]plan.FunnelParameterFilterExpression, 0, len(l.GetExpressions()))}
		for _, x := range l.GetExpressions() {
			if c := fromParamExpr(x); c != nil {
				g.Expressions = append(g.Expressions, *c)
			} else {
				g.Expressions = append(g.Expressions, plan.FunnelParameterFilterExpression{})
			}
		}
		return g
	}
	switch x := e.GetExpr().(type) {
	case *alphapb.FunnelParameterFilterExpression_AndGroup:
		out.AndGroup = list(x.AndGroup)
	case *alphapb.FunnelParameterFilterExpression_OrGroup:
		out.OrGroup = list(x.OrGroup)
	case *alphapb.FunnelParameterFilterExpression_NotExpression:
		out.NotExpression = fromParamExpr(x.NotExpression)
		if out.NotExpression == nil {
			out.NotExpression = &plan.FunnelParameterFilterExpression{}
		}
	case *alphapb.FunnelParameterFilterExpression_FunnelParameterFilter:
		f := x.FunnelParameterFilter
		p := &plan.FunnelParameterFilter{EventParameterName: f.GetEventParameterName(), ItemParameterName: f.GetItemParameterName()}
		p.StringFilter, p.InListFilter, p.NumericFilter, p.BetweenFilter =
			alphaFilters(f.GetStringFilter(), f.GetInListFilter(), f.GetNumericFilter(), f.GetBetweenFilter())
		out.FunnelParameterFilter = p
	}
	return out
}

func alphaFilters(s *alphapb.StringFilter, l *alphapb.InListFilter, n *alphapb.NumericFilter, b *alphapb.BetweenFilter) (*plan.StringFilter, *plan.InListFilter, *plan.NumericFilter, *plan.BetweenFilter) {
	var (
		so *plan.StringFilter
		lo *plan.InListFilter
		no *plan.NumericFilter
		bo *plan.BetweenFilter
	)
	if s != nil {
		so = &plan.StringFilter{MatchType: s.GetMatchType().String(), Value: s.GetValue(), CaseSensitive: s.GetCaseSensitive()}
	}
	if l != nil {
		lo = &plan.InListFilter{Values: l.GetValues(), CaseSensitive: l.GetCaseSensitive()}
	}
	if n != nil {
		no = &plan.NumericFilter{Operation: n.GetOperation().String(), Value: alphaNumeric(n.GetValue())}
	}
	if b != nil {
		bo = &plan.BetweenFilter{FromValue: alphaNumeric(b.GetFromValue()), ToValue: alphaNumeric(b.GetToValue())}
	}
	return so, lo, no, bo
}

func alphaNumeric(v *alphapb.NumericValue) plan.NumericValue {
	switch x := v.GetOneValue().(type) {
	case *alphapb.NumericValue_Int64Value:
		n := plan.Int64(x.Int64Value)
		return plan.NumericValue{Int64Value: &n}
	case *alphapb.NumericValue_DoubleValue:
		d := x.DoubleValue
		return plan.NumericValue{DoubleValue: &d}
	}
	return plan.NumericValue{}
}

func toFunnel(r *plan.RunFunnelReportResponse) *alphapb.RunFunnelReportResponse {
	sub := func(s *plan.FunnelSubReport) *alphapb.FunnelSubReport {
		if s == nil {
			return nil
		}
		out := &alphapb.FunnelSubReport{}
		for _, h := range s.DimensionHeaders {
			out.DimensionHeaders = append(out.DimensionHeaders, &alphapb.DimensionHeader{Name: h.Name})
		}
		for _, h := range s.MetricHeaders {
			out.MetricHeaders = append(out.MetricHeaders, &alphapb.MetricHeader{Name: h.Name, Type: alphapb.MetricType(alphapb.MetricType_value[h.Type])})
		}
		for _, row := range s.Rows {
			x := &alphapb.Row{}
			for _, v := range row.DimensionValues {
				x.DimensionValues = append(x.DimensionValues, &alphapb.DimensionValue{OneValue: &alphapb.DimensionValue_Value{Value: v.Value}})
			}
			for _, v := range row.MetricValues {
				x.MetricValues = append(x.MetricValues, &alphapb.MetricValue{OneValue: &alphapb.MetricValue_Value{Value: v.Value}})
			}
			out.Rows = append(out.Rows, x)
		}
		return out
	}
	out := &alphapb.RunFunnelReportResponse{FunnelTable: sub(r.FunnelTable), FunnelVisualization: sub(r.FunnelVisualization), Kind: r.Kind}
	if q := r.PropertyQuota; q != nil {
		st := func(s plan.QuotaStatus) *alphapb.QuotaStatus {
			return &alphapb.QuotaStatus{Consumed: clampInt32(s.Consumed), Remaining: clampInt32(s.Remaining)}
		}
		out.PropertyQuota = &alphapb.PropertyQuota{TokensPerDay: st(q.TokensPerDay), TokensPerHour: st(q.TokensPerHour),
			ConcurrentRequests: st(q.ConcurrentRequests), ServerErrorsPerProjectPerHour: st(q.ServerErrorsPerProjectPerHour),
			PotentiallyThresholdedRequestsPerHour: st(q.PotentiallyThresholdedRequestsPerHour)}
	}
	return out
}
