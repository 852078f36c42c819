package query

import (
	"context"
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"time"

	"net/http/httptest"

	datapb "google.golang.org/genproto/googleapis/analytics/data/v1beta"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/avila-analytics/avila/query/plan"
	"github.com/prometheus/client_golang/prometheus"
)

// TestGRPCKeysErrorsAndPort: over gRPC the key is read from
// "authorization: Bearer" (or x-goog-api-key) metadata; errors are
// google.rpc.Status with Google's details (ErrorInfo for keys, BadRequest
// naming the field); the same port answers REST over HTTP/1.1; gRPC calls
// are measured under their method's endpoint label.
func TestGRPCKeysErrorsAndPort(t *testing.T) {
	f := newFixture(t, 50)
	reg := prometheus.NewRegistry()
	m, err := NewMetrics(reg)
	if err != nil {
		t.Fatal(err)
	}
	opts := Options{Logger: slog.New(slog.NewTextHandler(t.Output(), nil)), Now: func() time.Time { return fixtureNow }, Metrics: m}
	srv := httptest.NewUnstartedServer(newAPI(opts, newHandler(opts, f.pool, stubKeys{testKey: {1}})))
	srv.Config.Protocols = new(http.Protocols)
	srv.Config.Protocols.SetHTTP1(true)
	srv.Config.Protocols.SetUnencryptedHTTP2(true)
	srv.Start()
	t.Cleanup(srv.Close)
	conn, err := grpc.NewClient(strings.TrimPrefix(srv.URL, "http://"), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	client := datapb.NewBetaAnalyticsDataClient(conn)
	req := &datapb.RunReportRequest{Property: "properties/1", Metrics: []*datapb.Metric{{Name: "eventCount"}},
		DateRanges: []*datapb.DateRange{{StartDate: "2026-03-01", EndDate: "today"}}}

	f2 := func(name string, ctx context.Context, req *datapb.RunReportRequest, want codes.Code, reason, field string) {
		t.Helper()
		_, err := client.RunReport(ctx, req)
		st, _ := status.FromError(err)
		if st.Code() != want {
			t.Fatalf("%s: %v, want %s", name, err, want)
		}
		var gotReason, gotField string
		for _, d := range st.Details() {
			switch d := d.(type) {
			case *errdetails.ErrorInfo:
				gotReason = d.GetReason() + "@" + d.GetDomain()
			case *errdetails.BadRequest:
				gotField = d.GetFieldViolations()[0].GetField()
			}
		}
		if reason != "" && gotReason != reason+"@"+errorDomain || gotField != field {
			t.Fatalf("%s: details %q %q, want reason %q, field %q", name, gotReason, gotField, reason, field)
		}
	}
	bg := context.Background()
	f2("no key", bg, req, codes.Unauthenticated, "CREDENTIALS_MISSING", "")
	f2("revoked key", metadata.AppendToOutgoingContext(bg, "authorization", "Bearer avk_gone"), req, codes.Unauthenticated, "API_KEY_INVALID", "")
	withKey := metadata.AppendToOutgoingContext(bg, "authorization", "Bearer "+testKey)
	f2("another property", withKey, &datapb.RunReportRequest{Property: "properties/2"}, codes.PermissionDenied, "", "")
	f2("no property", withKey, &datapb.RunReportRequest{}, codes.InvalidArgument, "", "")
	bad := &datapb.RunReportRequest{Property: "properties/1", Metrics: []*datapb.Metric{{Name: "eventCount"}, {Name: "nope"}},
		DateRanges: req.DateRanges}
	f2("unknown metric", withKey, bad, codes.InvalidArgument, "", "metrics[1].name")

	resp, err := client.RunReport(metadata.AppendToOutgoingContext(bg, "x-goog-api-key", testKey), req)
	if err != nil || resp.GetRowCount() != 1 || resp.GetKind() != plan.ReportKind {
		t.Fatalf("x-goog-api-key: %v %v", resp, err)
	}

	// REST on the same port, HTTP/1.1.
	hr, _ := http.NewRequest(http.MethodGet, srv.URL+"/v1beta/properties/1/metadata", nil)
	hr.Header.Set("Authorization", "Bearer "+testKey)
	hresp, err := http.DefaultClient.Do(hr)
	if err != nil || hresp.StatusCode != http.StatusOK || hresp.ProtoMajor != 1 {
		t.Fatalf("REST on the gRPC port: %v %v", hresp, err)
	}
	hresp.Body.Close()
	// The REST handler's duration is observed after its response went
	// out, so the client can read the answer first: wait for it.
	var counts map[string]uint64
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		counts = map[string]uint64{}
		fams, err := reg.Gather()
		if err != nil {
			t.Fatal(err)
		}
		for _, fam := range fams {
			for _, mm := range fam.GetMetric() {
				if fam.GetName() == "analytics_query_duration_seconds" {
					counts[mm.GetLabel()[0].GetValue()] = mm.GetHistogram().GetSampleCount()
				}
			}
		}
		if counts["runReport"] == 6 && counts["metadata"] == 1 || time.Now().After(deadline) {
			break
		}
	}
	if counts["runReport"] != 6 || counts["metadata"] != 1 {
		t.Fatalf("request durations by endpoint %v, want 6 runReport (gRPC) and 1 metadata (REST)", counts)
	}
}
