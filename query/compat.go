package query

import (
	"context"

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
	base := &plan{}
	for i, d := range in.GetDimensions() {
		def, ok, why := lookupDimension(d.GetName())
		if !ok {
			return nil, invalidArgument("dimensions[%d].name: %s", i, notValid(d.GetName(), "dimension", why))
		}
		base.dims = append(base.dims, def)
	}
	for i, m := range in.GetMetrics() {
		def, ok, why := lookupMetric(m.GetName())
		if !ok {
			return nil, invalidArgument("metrics[%d].name: %s", i, notValid(m.GetName(), "metric", why))
		}
		base.metrics = append(base.metrics, def)
	}
	var ae *apiError
	if base.dimFilter, ae = compileFilter(fromFilterExpression(in.GetDimensionFilter()), "dimensionFilter", false); ae != nil {
		return nil, ae
	}
	if base.metricFilter, ae = compileFilter(fromFilterExpression(in.GetMetricFilter()), "metricFilter", true); ae != nil {
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
		def, _, _ := lookupDimension(dm.ApiName)
		p := *base
		if !containsDim(p.dims, def.name) {
			p.dims = append(append([]*dimDef(nil), base.dims...), def)
		}
		if c := compatibility(&p); keep(c) {
			out.DimensionCompatibilities = append(out.DimensionCompatibilities,
				&datapb.DimensionCompatibility{DimensionMetadata: dm, Compatibility: &c})
		}
	}
	for _, mm := range md.Metrics {
		def, _, _ := lookupMetric(mm.ApiName)
		p := *base
		if !containsMetric(p.metrics, def.name) {
			p.metrics = append(append([]*metricDef(nil), base.metrics...), def)
		}
		if c := compatibility(&p); keep(c) {
			out.MetricCompatibilities = append(out.MetricCompatibilities,
				&datapb.MetricCompatibility{MetricMetadata: mm, Compatibility: &c})
		}
	}
	return out, nil
}

// compatibility is whether the engine accepts p's mix of names.
func compatibility(p *plan) datapb.Compatibility {
	if p.setScope() != nil {
		return datapb.Compatibility_INCOMPATIBLE
	}
	return datapb.Compatibility_COMPATIBLE
}

func containsDim(ds []*dimDef, name string) bool {
	for _, d := range ds {
		if d.name == name {
			return true
		}
	}
	return false
}

func containsMetric(ms []*metricDef, name string) bool {
	for _, m := range ms {
		if m.name == name {
			return true
		}
	}
	return false
}
