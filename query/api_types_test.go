package query

import (
	"io"

	"github.com/avila-analytics/avila/query/plan"
	datapb "google.golang.org/genproto/googleapis/analytics/data/v1beta"
)

// BatchRunReportsRequest is GA4's batchRunReports request JSON, for tests
// that post hand-written JSON.
type BatchRunReportsRequest struct {
	Property string                  `json:"property,omitempty"`
	Requests []plan.RunReportRequest `json:"requests"`
}

// Metadata is GA4's getMetadata response JSON, for tests that decode it.
type Metadata struct {
	Name       string `json:"name"`
	Dimensions []struct {
		APIName          string `json:"apiName"`
		UIName           string `json:"uiName"`
		Description      string `json:"description"`
		CustomDefinition bool   `json:"customDefinition"`
		Category         string `json:"category"`
	} `json:"dimensions"`
	Metrics []struct {
		APIName     string `json:"apiName"`
		UIName      string `json:"uiName"`
		Description string `json:"description"`
		Type        string `json:"type"`
		Category    string `json:"category"`
	} `json:"metrics"`
}

// decodeRequest reads a runReport body as the REST transport does
// (protojson into Google's message) and converts it for the engine.
func decodeRequest(r io.Reader) (*plan.RunReportRequest, error) {
	var req datapb.RunReportRequest
	if err := decodeProto(r, &req); err != nil {
		return nil, err
	}
	return fromRunReport(&req), nil
}
