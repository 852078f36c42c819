package query

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	datapb "google.golang.org/genproto/googleapis/analytics/data/v1beta"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
)

// TestQuotaOverGRPC: over gRPC (genproto's stubs, h2c), propertyQuota
// reports the tokens charged by cost, a property whose tokens are spent is
// refused with code 8 RESOURCE_EXHAUSTED, and the eleventh concurrent
// request is refused the same way while ten wait for the property's
// connections.
func TestQuotaOverGRPC(t *testing.T) {
	f := newFixture(t, 50)
	h := eventsHandler(t, f, QuotaOptions{Limits: QuotaLimits{TokensPerDay: 3 * quotaReportTokens}})
	srv := httptest.NewUnstartedServer(newAPI(Options{}, h))
	srv.Config.Protocols = new(http.Protocols)
	srv.Config.Protocols.SetHTTP1(true)
	srv.Config.Protocols.SetUnencryptedHTTP2(true)
	srv.Start()
	t.Cleanup(srv.Close)
	conn, err := grpc.NewClient(strings.TrimPrefix(srv.URL, "http://"), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	client := datapb.NewBetaAnalyticsDataClient(conn)
	ctx := metadata.AppendToOutgoingContext(context.Background(), "authorization", "Bearer "+testKey)
	req := func(property string) *datapb.RunReportRequest {
		return &datapb.RunReportRequest{Property: "properties/" + property, ReturnPropertyQuota: true,
			Metrics:    []*datapb.Metric{{Name: "eventCount"}},
			DateRanges: []*datapb.DateRange{{StartDate: "2026-03-01", EndDate: "today"}}}
	}
	for i := range 3 {
		resp, err := client.RunReport(ctx, req("1"))
		if err != nil {
			t.Fatalf("report %d: %v", i, err)
		}
		if got := resp.GetPropertyQuota().GetTokensPerDay(); got.GetConsumed() != int32((i+1)*quotaReportTokens) {
			t.Fatalf("report %d: tokensPerDay %v, want %d consumed", i, got, (i+1)*quotaReportTokens)
		}
	}
	_, err = client.RunReport(ctx, req("1"))
	if st, _ := status.FromError(err); st.Code() != codes.ResourceExhausted || !strings.Contains(st.Message(), "tokens per day") {
		t.Fatalf("over tokensPerDay: %v; want code 8 RESOURCE_EXHAUSTED", err)
	}

	// Ten requests of property 2 wait for its held connections; the
	// eleventh is refused at once.
	var held []func()
	for range defaultPropertyConns {
		release, err := h.slots.acquire(context.Background(), 2)
		if err != nil {
			t.Fatal(err)
		}
		held = append(held, release)
	}
	errs := make(chan error, 10)
	for range 10 {
		go func() {
			_, err := client.RunReport(ctx, req("2"))
			errs <- err
		}()
	}
	inflight := func() int64 {
		h.quota.mu.Lock()
		defer h.quota.mu.Unlock()
		return h.quota.inflight[quotaKey{cat: quotaCore, site: 2}]
	}
	for deadline := time.Now().Add(10 * time.Second); inflight() < 10; time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("%d requests in flight, want 10", inflight())
		}
	}
	_, err = client.RunReport(ctx, req("2"))
	if st, _ := status.FromError(err); st.Code() != codes.ResourceExhausted || !strings.Contains(st.Message(), "concurrent requests") {
		t.Fatalf("11th concurrent request: %v; want code 8 RESOURCE_EXHAUSTED", err)
	}
	for _, release := range held {
		release()
	}
	for range 10 {
		if err := <-errs; err != nil {
			t.Fatalf("a queued request: %v", err)
		}
	}
}
