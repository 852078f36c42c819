package query

import (
	"context"

	"github.com/avila-analytics/avila/query/plan"
	datapb "google.golang.org/genproto/googleapis/analytics/data/v1beta"
)

// checkCompatibility answers checkCompatibility: for every dimension and
// metric getMetadata lists, whether a runReport with the request's
// dimensions, metrics and filters plus that one would be accepted. The
// rule is the engine's own (plan.setScope, which refuses a report that
// mixes session-scoped and event-scoped names), applied to the request
// with each candidate added, so a change of the scope rules or a new
// dimension or metric shows here without a table of its own.
func (h *handler) checkCompatibility(ctx context.Context, c apiCall, id uint32, in *datapb.CheckCompatibilityRequest) (*datapb.CheckCompatibilityResponse, error) {
	if err := checkProperty("property", in.GetProperty(), id); err != nil {
		return nil, err
	}
	if _, err := h.site(ctx, id); err != nil {
		return nil, err
	}
	base := &plan.Plan{}
	for i, d := range in.GetDimensions() {
		def, ok, why := plan.LookupDimension(d.GetName())
		if !ok {
			return nil, plan.InvalidArgument("dimensions[%d].name: %s", i, plan.NotValid(d.GetName(), "dimension", why))
		}
		base.Dims = append(base.Dims, def)
	}
	for i, m := range in.GetMetrics() {
		def, ok, why := plan.LookupMetric(m.GetName())
		if !ok {
			return nil, plan.InvalidArgument("metrics[%d].name: %s", i, plan.NotValid(m.GetName(), "metric", why))
		}
		base.Metrics = append(base.Metrics, def)
	}
	var ae *plan.Error
	if base.DimFilter, ae = plan.CompileFilter(fromFilterExpression(in.GetDimensionFilter()), "dimensionFilter", false); ae != nil {
		return nil, ae
	}
	if base.MetricFilter, ae = plan.CompileFilter(fromFilterExpression(in.GetMetricFilter()), "metricFilter", true); ae != nil {
		return nil, ae
	}
	want := in.GetCompatibilityFilter()
	keep := func(c datapb.Compatibility) bool {
		return want == datapb.Compatibility_COMPATIBILITY_UNSPECIFIED || want == c
	}
	custom, err := h.customDimensions(ctx, id)
	if err != nil {
		return nil, err
	}
	md := newMetadata(id, custom)
	out := &datapb.CheckCompatibilityResponse{}
	for _, dm := range md.Dimensions {
		def, _, _ := plan.LookupDimension(dm.ApiName)
		p := *base
		if !containsDim(p.Dims, def.Name) {
			p.Dims = append(append([]*plan.DimDef(nil), base.Dims...), def)
		}
		if c := compatibility(&p); keep(c) {
			out.DimensionCompatibilities = append(out.DimensionCompatibilities,
				&datapb.DimensionCompatibility{DimensionMetadata: dm, Compatibility: &c})
		}
	}
	for _, mm := range md.Metrics {
		def, _, _ := plan.LookupMetric(mm.ApiName)
		p := *base
		if !containsMetric(p.Metrics, def.Name) {
			p.Metrics = append(append([]*plan.MetricDef(nil), base.Metrics...), def)
		}
		if c := compatibility(&p); keep(c) {
			out.MetricCompatibilities = append(out.MetricCompatibilities,
				&datapb.MetricCompatibility{MetricMetadata: mm, Compatibility: &c})
		}
	}
	return out, nil
}

// compatibility is whether the engine accepts p's mix of names.
func compatibility(p *plan.Plan) datapb.Compatibility {
	if p.SetScope() != nil {
		return datapb.Compatibility_INCOMPATIBLE
	}
	return datapb.Compatibility_COMPATIBLE
}

func containsDim(ds []*plan.DimDef, name string) bool {
	for _, d := range ds {
		if d.Name == name {
			return true
		}
	}
	return false
}

func containsMetric(ms []*plan.MetricDef, name string) bool {
	for _, m := range ms {
		if m.Name == name {
			return true
		}
	}
	return false
}
