package query

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	analyticsdata "google.golang.org/api/analyticsdata/v1beta"
	"google.golang.org/api/googleapi"
	"google.golang.org/api/option"

	"github.com/avila-analytics/avila/protocol"
	"github.com/avila-analytics/avila/query/plan"
	"github.com/avila-analytics/avila/storage/redis"
)

// bearer adds the API key to every request of Google's client.
type bearer string

func (b bearer) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	r.Header.Set("Authorization", "Bearer "+string(b))
	return http.DefaultTransport.RoundTrip(r)
}

// googleClient is Google's own Data API client (google.golang.org/api,
// analyticsdata/v1beta) pointed at h.
func googleClient(t *testing.T, h http.Handler, key string) *analyticsdata.Service {
	t.Helper()
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	svc, err := analyticsdata.NewService(context.Background(), option.WithEndpoint(srv.URL+"/"),
		option.WithHTTPClient(&http.Client{Transport: bearer(key)}))
	if err != nil {
		t.Fatal(err)
	}
	return svc
}

// asOurs converts one of the client's values to ours through their JSON.
func asOurs[T any](t *testing.T, v any) *T {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	var out T
	if err := json.Unmarshal(b, &out); err != nil {
		t.Fatalf("%s: %v", b, err)
	}
	return &out
}

// TestGoogleClientLibrary calls the server with Google's Go client for the
// Data API, unchanged but for its endpoint: runReport (dimensions, metrics,
// filters, ordering, limit, totals) answers what the oracle computes;
// batchRunReports, runRealtimeReport and getMetadata decode; errors arrive
// as googleapi.Error with GA4's code and message.
func TestGoogleClientLibrary(t *testing.T) {
	f := newFixture(t, 800)
	ctx := context.Background()
	now := func() time.Time { return fixtureNow }
	live := redis.NewRealtime(redis.RealtimeOptions{Now: now})
	var recent []protocol.Event
	for i, c := range []string{"DE", "FR", "DE"} {
		recent = append(recent, protocol.Event{Site: 1, TimeMicros: fixtureNow.Add(-2 * time.Minute).UnixMicro(),
			Name: "page_view", Visitor: uint64(i + 1), Country: c, EngageMs: 100}) // active users
	}
	live.Record(ctx, recent)
	h := newHandler(Options{Logger: slog.New(slog.NewTextHandler(t.Output(), nil)), Now: now, Realtime: live},
		f.pool, stubKeys{testKey: {1, 2, 3, 99}, "avk_site1": {1}})
	svc := googleClient(t, h, testKey)

	gReq := &analyticsdata.RunReportRequest{
		DateRanges: []*analyticsdata.DateRange{{StartDate: "2026-03-01", EndDate: "today"}},
		Dimensions: []*analyticsdata.Dimension{{Name: "pagePath"}, {Name: "deviceCategory"}},
		Metrics:    []*analyticsdata.Metric{{Name: "screenPageViews"}, {Name: "activeUsers"}, {Name: "eventCount"}},
		DimensionFilter: &analyticsdata.FilterExpression{NotExpression: &analyticsdata.FilterExpression{
			Filter: &analyticsdata.Filter{FieldName: "pagePath", StringFilter: &analyticsdata.StringFilter{MatchType: "BEGINS_WITH", Value: "/zz"}}}},
		OrderBys: []*analyticsdata.OrderBy{{Metric: &analyticsdata.MetricOrderBy{MetricName: "screenPageViews"}, Desc: true},
			{Dimension: &analyticsdata.DimensionOrderBy{DimensionName: "pagePath"}}},
		Limit:              7,
		MetricAggregations: []string{"TOTAL"},
	}
	got, err := svc.Properties.RunReport("properties/1", gReq).Context(ctx).Do()
	if err != nil {
		t.Fatalf("runReport through Google's client: %v", err)
	}
	if got.RowCount == 0 || len(got.Rows) != 7 || len(got.Totals) != 1 {
		t.Fatalf("runReport: %d rows of %d, %d totals; want 7 rows of more and a total", len(got.Rows), got.RowCount, len(got.Totals))
	}
	// The request as the client sent it, read as ours, gives the oracle's
	// answer, which the client decoded field for field.
	req := asOurs[plan.RunReportRequest](t, gReq)
	want := oracle(*req, f.zones[1], fixtureNow, f.events, 1)
	if diff := cmp.Diff(want, asOurs[plan.RunReportResponse](t, got)); diff != "" {
		t.Fatalf("runReport through Google's client differs from the oracle (-want +got):\n%s", diff)
	}

	batch, err := svc.Properties.BatchRunReports("properties/1", &analyticsdata.BatchRunReportsRequest{
		Requests: []*analyticsdata.RunReportRequest{gReq, {
			DateRanges: []*analyticsdata.DateRange{{StartDate: "7daysAgo", EndDate: "yesterday"}},
			Metrics:    []*analyticsdata.Metric{{Name: "sessions"}, {Name: "bounceRate"}},
		}}}).Context(ctx).Do()
	if err != nil {
		t.Fatalf("batchRunReports through Google's client: %v", err)
	}
	if len(batch.Reports) != 2 || !cmp.Equal(asOurs[plan.RunReportResponse](t, batch.Reports[0]), want) ||
		batch.Reports[1].MetricHeaders[1].Type != "TYPE_FLOAT" {
		t.Fatalf("batchRunReports: %d reports, first %v", len(batch.Reports), batch.Reports)
	}

	rt, err := svc.Properties.RunRealtimeReport("properties/1", &analyticsdata.RunRealtimeReportRequest{
		Dimensions: []*analyticsdata.Dimension{{Name: "country"}},
		Metrics:    []*analyticsdata.Metric{{Name: "activeUsers"}},
	}).Context(ctx).Do()
	if err != nil {
		t.Fatalf("runRealtimeReport through Google's client: %v", err)
	}
	var live2 []string
	for _, r := range rt.Rows {
		live2 = append(live2, r.DimensionValues[0].Value+"="+r.MetricValues[0].Value)
	}
	if rt.Kind != "analyticsData#runRealtimeReport" || strings.Join(live2, ",") != "Germany=2,France=1" {
		t.Fatalf("runRealtimeReport through Google's client: rows %q, want Germany=2,France=1", live2)
	}

	md, err := svc.Properties.GetMetadata("properties/1/metadata").Context(ctx).Do()
	if err != nil {
		t.Fatalf("getMetadata through Google's client: %v", err)
	}
	names := map[string]bool{}
	for _, d := range md.Dimensions {
		names[d.ApiName] = true
	}
	for _, m := range md.Metrics {
		names[m.ApiName] = true
	}
	for _, n := range []string{"pagePath", "sessionSource", "landingPage", "activeUsers", "sessions", "bounceRate"} {
		if !names[n] {
			t.Errorf("metadata through Google's client lacks %s", n)
		}
	}

	// GA4's errors reach the caller as googleapi.Error.
	_, err = svc.Properties.RunReport("properties/1", &analyticsdata.RunReportRequest{
		Metrics: []*analyticsdata.Metric{{Name: "pageViewz"}}}).Context(ctx).Do()
	var gerr *googleapi.Error
	if !errors.As(err, &gerr) || gerr.Code != http.StatusBadRequest || !strings.Contains(gerr.Message, "pageViewz") {
		t.Fatalf("unknown metric through Google's client: %v, want a 400 naming it", err)
	}
	_, err = googleClient(t, h, "avk_site1").Properties.RunReport("properties/2", gReq).Context(ctx).Do()
	if !errors.As(err, &gerr) || gerr.Code != http.StatusForbidden {
		t.Fatalf("another property's key through Google's client: %v, want 403", err)
	}
}
