package query

import (
	"context"
	"fmt"
	"net/http"
)

// Metadata mirrors GA4's Metadata JSON (getMetadata): the dimensions and
// metrics this server answers, generated from the allowlist that also
// builds the SQL, so it lists exactly what a report may ask for.
// customEvent:<parameter> and customUser:<property> work for any
// parameter name and are not listed one by one.
type Metadata struct {
	Name       string              `json:"name"`
	Dimensions []DimensionMetadata `json:"dimensions"`
	Metrics    []MetricMetadata    `json:"metrics"`
}

// DimensionMetadata describes one dimension.
type DimensionMetadata struct {
	APIName          string `json:"apiName"`
	UIName           string `json:"uiName"`
	Description      string `json:"description"`
	CustomDefinition bool   `json:"customDefinition"`
	Category         string `json:"category"`
}

// MetricMetadata describes one metric; Type is its GA4 MetricType.
type MetricMetadata struct {
	APIName          string `json:"apiName"`
	UIName           string `json:"uiName"`
	Description      string `json:"description"`
	Type             string `json:"type"`
	CustomDefinition bool   `json:"customDefinition"`
	Category         string `json:"category"`
}

// metadata answers GET properties/{id}/metadata. Property 0 is GA4's name
// for the metadata common to all properties; any valid key may read it.
func (h *handler) metadata(ctx context.Context, r *http.Request, id uint32) (*Metadata, error) {
	if err := h.authorize(ctx, r, id); err != nil {
		return nil, err
	}
	md := newMetadata(id)
	if id != 0 {
		s, err := h.site(ctx, id)
		if err != nil {
			return nil, err
		}
		// GA4 lists a keyEvents:<event_name> metric per key event of the
		// property; any event name is accepted in reports.
		for _, name := range s.keyEvents {
			if m, ok, _ := lookupKeyEventsMetric(keyEventsPrefix + name); ok {
				md.Metrics = append(md.Metrics, MetricMetadata{APIName: m.name, UIName: m.uiName, Description: m.desc, Type: m.typ, Category: m.category})
			}
		}
	}
	return md, nil
}

func newMetadata(id uint32) *Metadata {
	md := &Metadata{Name: fmt.Sprintf("properties/%d/metadata", id)}
	for _, d := range dimensionList {
		md.Dimensions = append(md.Dimensions, DimensionMetadata{APIName: d.name, UIName: d.uiName, Description: d.desc, Category: d.category})
	}
	for _, m := range metricList {
		md.Metrics = append(md.Metrics, MetricMetadata{APIName: m.name, UIName: m.uiName, Description: m.desc, Type: m.typ, Category: m.category})
	}
	return md
}
