package query

import (
	"context"
	"fmt"
	"slices"
	"time"

	datapb "google.golang.org/genproto/googleapis/analytics/data/v1beta"

	"github.com/avila-analytics/avila/query/plan"
	"github.com/avila-analytics/avila/storage/postgres"
)

// getMetadata answers getMetadata: the dimensions and metrics this server
// answers, generated from the allowlists that also build the SQL
// (dimensionList, metricList), so it lists exactly what a report may ask
// for, and, for a property, its custom definitions: the customEvent: and
// customUser: dimensions of the event parameters and user properties its
// recent events carry (customDefinitionWindow). Property 0 is GA4's name
// for the metadata common to all properties; any valid key may read it.
func (h *handler) getMetadata(ctx context.Context, c apiCall, id uint32) (*datapb.Metadata, error) {
	var custom []string
	var keyEvents []string
	if id != 0 {
		s, err := h.site(ctx, id)
		if err != nil {
			return nil, err
		}
		keyEvents = s.KeyEvents
		if custom, err = h.customDimensions(ctx, id); err != nil {
			return nil, err
		}
	}
	md := newMetadata(id, custom)
	// GA4 lists a keyEvents:<event_name> metric per key event of the
	// property; any event name is accepted in reports.
	for _, name := range keyEvents {
		if m, ok, _ := plan.LookupKeyEventsMetric(plan.KeyEventsPrefix + name); ok {
			md.Metrics = append(md.Metrics, metricMetadata(m))
		}
	}
	return md, nil
}

// Custom definitions are found in the events of the last
// customDefinitionWindow, reading at most customDefinitionSample events
// that carry parameters.
const (
	customDefinitionWindow = 7 * 24 * time.Hour
	customDefinitionSample = 5000
)

// customDimensions are the customEvent:<name> and customUser:<name>
// dimensions of site's recent events, sorted.
func (h *handler) customDimensions(ctx context.Context, site uint32) ([]string, error) {
	now := h.now()
	src := postgres.EventsIn("$1", "$2", "$3", []string{"ts", "site_id", "params"})
	rows, err := h.db.Query(ctx, "SELECT params FROM "+src+" e WHERE params <> ''::bytea LIMIT $4",
		int32(site), now.Add(-customDefinitionWindow), now.Add(time.Hour), customDefinitionSample)
	if err != nil {
		return nil, fmt.Errorf("query: custom definitions of property %d: %w", site, err)
	}
	defer rows.Close()
	seen := map[string]bool{}
	for rows.Next() {
		var b []byte
		if err := rows.Scan(&b); err != nil {
			return nil, fmt.Errorf("query: custom definitions of property %d: %w", site, err)
		}
		p, err := postgres.DecodeParams(b)
		if err != nil {
			continue // not a parameter map this server wrote; nothing to list
		}
		for name := range p.Params {
			seen[plan.CustomEventPrefix+name] = true
		}
		for name := range p.UserProps {
			seen[plan.CustomUserPrefix+name] = true
		}
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("query: custom definitions of property %d: %w", site, err)
	}
	var out []string
	for name := range seen {
		if _, ok, _ := plan.LookupDimension(name); ok {
			out = append(out, name)
		}
	}
	slices.Sort(out)
	return out, nil
}

func newMetadata(id uint32, custom []string) *datapb.Metadata {
	md := &datapb.Metadata{Name: fmt.Sprintf("properties/%d/metadata", id)}
	for _, d := range plan.DimensionList {
		md.Dimensions = append(md.Dimensions, dimensionMetadata(d, false))
	}
	for _, name := range custom {
		if d, ok, _ := plan.LookupDimension(name); ok {
			md.Dimensions = append(md.Dimensions, dimensionMetadata(d, true))
		}
	}
	for _, m := range plan.MetricList {
		md.Metrics = append(md.Metrics, metricMetadata(m))
	}
	return md
}

func dimensionMetadata(d *plan.DimDef, custom bool) *datapb.DimensionMetadata {
	return &datapb.DimensionMetadata{ApiName: d.Name, UiName: d.UIName, Description: d.Desc, Category: d.Category, CustomDefinition: custom}
}

func metricMetadata(m *plan.MetricDef) *datapb.MetricMetadata {
	return &datapb.MetricMetadata{ApiName: m.Name, UiName: m.UIName, Description: m.Desc, Type: metricType(m.Typ), Category: m.Category}
}
