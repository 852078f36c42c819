package query

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"

	"github.com/avila-analytics/avila/query/plan"
	"github.com/google/go-cmp/cmp"
)

// call sends method path with body (a value to marshal, raw bytes or nil)
// and key, and returns the status and body.
func call(t testing.TB, h http.Handler, method, path, key string, body any) (int, []byte) {
	t.Helper()
	raw, ok := body.([]byte)
	if !ok && body != nil {
		var err error
		if raw, err = json.Marshal(body); err != nil {
			t.Fatal(err)
		}
	}
	req := httptest.NewRequest(method, path, bytes.NewReader(raw))
	if key != "" {
		req.Header.Set("Authorization", "Bearer "+key)
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec.Code, rec.Body.Bytes()
}

// TestBatchRunReports: each report of a batch is the one runReport gives
// (checked against the oracle), in request order, in Google's shape.
func TestBatchRunReports(t *testing.T) {
	f := newFixture(t, 400)
	h := f.handler(t)
	week := []plan.DateRange{{StartDate: "2026-03-01", EndDate: "today"}}
	reqs := []plan.RunReportRequest{
		{Metrics: allMetrics(), DateRanges: week, MetricAggregations: allAggs},
		{Dimensions: dims("country", "date"), Metrics: mets("activeUsers"), DateRanges: week, Limit: 5,
			DimensionFilter: ptr(notF(emptyF("country")))},
		{Dimensions: dims("pagePath"), Metrics: mets("screenPageViews"), Property: "properties/2", MetricFilter: ptr(numF("screenPageViews", "GREATER_THAN", i64(3))),
			DateRanges: []plan.DateRange{{StartDate: "2026-03-02", EndDate: "2026-03-04"}, {StartDate: "yesterday", EndDate: "today", Name: "recent"}}},
	}
	code, body := call(t, h, http.MethodPost, "/v1beta/properties/2:batchRunReports", testKey, BatchRunReportsRequest{Property: "properties/2", Requests: reqs})
	if code != http.StatusOK {
		t.Fatalf("status %d: %s", code, body)
	}
	var got BatchRunReportsResponse
	if err := json.Unmarshal(body, &got); err != nil {
		t.Fatal(err)
	}
	want := BatchRunReportsResponse{Kind: "analyticsData#batchRunReports"}
	for _, r := range reqs {
		want.Reports = append(want.Reports, oracle(r, f.zones[2], fixtureNow, f.events, 2))
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Fatalf("batch differs from oracle (-want +got):\n%s", diff)
	}
	for i, r := range want.Reports {
		if r.RowCount == 0 {
			t.Fatalf("report %d has no rows; the case proves nothing", i)
		}
	}
}

func TestBatchRunReportsErrors(t *testing.T) {
	f := newFixture(t, 0)
	h := f.handler(t)
	ok := `{"metrics":[{"name":"eventCount"}],"dateRanges":[{"startDate":"today","endDate":"today"}]}`
	check := func(name, property, key, body string, wantCode int, wantInMessage string) {
		t.Helper()
		code, out := call(t, h, http.MethodPost, "/v1beta/properties/"+property+":batchRunReports", key, []byte(body))
		if code != wantCode || !strings.Contains(string(out), wantInMessage) {
			t.Fatalf("%s: got %d %s, want %d containing %q", name, code, out, wantCode, wantInMessage)
		}
	}
	check("one bad request fails the batch", "1", testKey, `{"requests":[`+ok+`,{"dimensions":[{"name":"x"}],"dateRanges":[{"startDate":"today","endDate":"today"}]}]}`,
		400, `requests[1]: Field \"x\" is not a valid dimension`)
	check("bad filter in a request", "1", testKey, `{"requests":[{"metrics":[{"name":"eventCount"}],"dateRanges":[{"startDate":"today","endDate":"today"}],"metricFilter":{}}]}`,
		400, `requests[0]: metricFilter: set exactly one`)
	check("six requests", "1", testKey, `{"requests":[`+strings.Repeat(ok+",", 5)+ok+`]}`, 400, "at most 5 requests, got 6")
	check("no requests", "1", testKey, `{"requests":[]}`, 400, "at least one request")
	check("empty body", "1", testKey, ``, 400, "at least one request")
	check("batch property mismatch", "1", testKey, `{"property":"properties/3","requests":[`+ok+`]}`, 400, "does not match")
	check("request property mismatch", "1", testKey, `{"requests":[{"property":"properties/3","metrics":[{"name":"eventCount"}],"dateRanges":[{"startDate":"today","endDate":"today"}]}]}`,
		400, "requests[0]: property")
	check("unknown field", "1", testKey, `{"requests":[`+ok+`],"returnPropertyQuota":true}`, 400, `Unknown name \"returnPropertyQuota\"`)
	check("key for another property", "2", "avk_site1", `{"requests":[`+ok+`]}`, 403, "PERMISSION_DENIED")
	check("no key", "1", "", `{"requests":[`+ok+`]}`, 401, "UNAUTHENTICATED")
	check("unknown property", "99", testKey, `{"requests":[`+ok+`]}`, 404, "properties/99")
	check("five requests", "1", testKey, `{"requests":[`+strings.Repeat(ok+",", 4)+ok+`]}`, 200, `"kind":"analyticsData#batchRunReports"`)
}

// TestMetadata: the metadata lists exactly the allowlist; every listed name
// is accepted by runReport with its listed type, and names not listed are
// refused.
func TestMetadata(t *testing.T) {
	f := newFixture(t, 50)
	h := f.handler(t)
	code, body := call(t, h, http.MethodGet, "/v1beta/properties/1/metadata", testKey, nil)
	if code != http.StatusOK {
		t.Fatalf("status %d: %s", code, body)
	}
	var md Metadata
	if err := json.Unmarshal(body, &md); err != nil {
		t.Fatal(err)
	}
	// The allowlist, then the property's custom definitions: the
	// parameters and user properties its events carry (the fixture sends
	// plan, button and tier); beside the metric allowlist, one
	// keyEvents:<event_name> per key event of the property: purchase by
	// default.
	var custom []string
	for i, d := range md.Dimensions {
		if i < len(plan.DimensionList) {
			if d.APIName != plan.DimensionList[i].Name || d.CustomDefinition {
				t.Fatalf("dimension %d: %+v, want %s", i, d, plan.DimensionList[i].Name)
			}
			continue
		}
		if !d.CustomDefinition || d.Category != "Custom" {
			t.Errorf("custom dimension %+v", d)
		}
		custom = append(custom, d.APIName)
	}
	if md.Name != "properties/1/metadata" || len(md.Metrics) != len(plan.MetricList)+1 ||
		md.Metrics[len(md.Metrics)-1].APIName != "keyEvents:purchase" ||
		!slices.Equal(custom, []string{"customEvent:button", "customEvent:plan", "customUser:tier"}) {
		t.Fatalf("metadata %s: %d metrics, custom definitions %q", md.Name, len(md.Metrics), custom)
	}
	if !strings.Contains(string(body), `{"apiName":"date","uiName":"Date","description":`) ||
		!strings.Contains(string(body), `"type":"TYPE_SECONDS","category":"User"}`) {
		t.Fatalf("metadata JSON shape: %s", body)
	}
	for _, d := range md.Dimensions {
		if d.UIName == "" || d.Description == "" || d.Category == "" {
			t.Errorf("dimension %s lacks a name, description or category", d.APIName)
		}
		req := plan.RunReportRequest{Dimensions: dims(d.APIName), DateRanges: []plan.DateRange{{StartDate: "today", EndDate: "today"}}}
		if code, out := post(t, h, "1", testKey, req); code != http.StatusOK {
			t.Errorf("listed dimension %s: %d %s", d.APIName, code, out)
		}
	}
	for _, m := range md.Metrics {
		req := plan.RunReportRequest{Metrics: mets(m.APIName), DateRanges: []plan.DateRange{{StartDate: "today", EndDate: "today"}}}
		code, out := post(t, h, "1", testKey, req)
		var resp plan.RunReportResponse
		if code != http.StatusOK || json.Unmarshal(out, &resp) != nil || resp.MetricHeaders[0].Type != m.Type {
			t.Errorf("listed metric %s (%s): %d %s", m.APIName, m.Type, code, out)
		}
	}
	// The session names, once refused as not computed yet, are listed.
	for _, name := range []string{"landingPage", "sessionSourceMedium", "firstUserSource", "newVsReturning", "sessions",
		"engagedSessions", "engagementRate", "bounceRate", "averageSessionDuration", "screenPageViewsPerSession",
		"sessionsPerUser", "eventsPerSession"} {
		if !strings.Contains(string(body), `"apiName":"`+name+`"`) {
			t.Errorf("metadata does not list %s", name)
		}
	}

	check := func(name, path, key string, wantCode int, wantInBody string) {
		t.Helper()
		code, out := call(t, h, http.MethodGet, path, key, nil)
		if code != wantCode || !strings.Contains(string(out), wantInBody) {
			t.Fatalf("%s: got %d %s, want %d containing %q", name, code, out, wantCode, wantInBody)
		}
	}
	check("common metadata, any key", "/v1beta/properties/0/metadata", "avk_site1", 200, `"name":"properties/0/metadata"`)
	check("unknown property", "/v1beta/properties/99/metadata", testKey, 404, "properties/99")
	check("key for another property", "/v1beta/properties/2/metadata", "avk_site1", 403, "PERMISSION_DENIED")
	check("no key", "/v1beta/properties/1/metadata", "", 401, "UNAUTHENTICATED")
	check("bad key", "/v1beta/properties/0/metadata", "avk_nope", 401, "UNAUTHENTICATED")
	check("bad id", "/v1beta/properties/x/metadata", testKey, 400, `Invalid property`)
	code, out := call(t, h, http.MethodPost, "/v1beta/properties/1/metadata", testKey, nil)
	if code != http.StatusNotFound {
		t.Fatalf("POST metadata: %d %s", code, out)
	}
	code, out = call(t, h, http.MethodPost, "/v1beta/properties/0:runReport", testKey, []byte(okRequest))
	if code != http.StatusBadRequest {
		t.Fatalf("report on property 0: %d %s", code, out)
	}
}
