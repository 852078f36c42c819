package bench

import (
	"context"
	"fmt"
	"net/url"
	"strconv"
	"time"

	datapb "google.golang.org/genproto/googleapis/analytics/data/v1beta"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/protobuf/encoding/protojson"
)

// grpcQueries times the dashboard set through the Data API's gRPC
// transport (h2c on the API port), runs times, every answer computed from
// PostgreSQL (cache-control: no-cache), for query_p50_ms_<set>_grpc and
// query_p99_ms_<set>_grpc beside the REST figures.
func (r *run) grpcQueries(ctx context.Context, ds dataset, runs int) error {
	u, err := url.Parse(r.st.apiURL)
	if err != nil {
		return fmt.Errorf("bench: grpc queries: api url %q: %w", r.st.apiURL, err)
	}
	conn, err := grpc.NewClient(u.Host, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return fmt.Errorf("bench: grpc queries: %w", err)
	}
	defer conn.Close()
	client := datapb.NewBetaAnalyticsDataClient(conn)
	property := "properties/" + strconv.FormatUint(uint64(r.st.sites[siteDashboard].ID), 10)
	ctx = metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+r.st.apiKey, "cache-control", "no-cache")
	call := func(rep report) (time.Duration, error) {
		ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
		defer cancel()
		var rows int32
		start := time.Now()
		switch rep.method {
		case "runRealtimeReport":
			var req datapb.RunRealtimeReportRequest
			if err := protojson.Unmarshal([]byte(rep.body), &req); err != nil {
				return 0, fmt.Errorf("bench: grpc report %s: %w", rep.name, err)
			}
			req.Property = property
			resp, err := client.RunRealtimeReport(ctx, &req)
			if err != nil {
				return 0, fmt.Errorf("bench: grpc report %s: %w", rep.name, err)
			}
			rows = resp.GetRowCount()
		default:
			var req datapb.RunReportRequest
			if err := protojson.Unmarshal([]byte(rep.body), &req); err != nil {
				return 0, fmt.Errorf("bench: grpc report %s: %w", rep.name, err)
			}
			req.Property = property
			resp, err := client.RunReport(ctx, &req)
			if err != nil {
				return 0, fmt.Errorf("bench: grpc report %s: %w", rep.name, err)
			}
			rows = resp.GetRowCount()
		}
		d := time.Since(start)
		if rows == 0 && !rep.empty {
			return 0, fmt.Errorf("bench: grpc report %s answered no rows over the generated data", rep.name)
		}
		return d, nil
	}
	var took []float64
	for range max(runs, 1) {
		for _, rep := range dashboardSet {
			d, err := call(rep)
			if err != nil {
				return err
			}
			took = append(took, ms(d))
		}
	}
	r.log.Info("dashboard queries over gRPC", "events", ds.events, "requests", len(took),
		"p50_ms", Percentile(took, 50), "p99_ms", Percentile(took, 99))
	r.set("query_p50_ms_"+ds.key+"_grpc", Percentile(took, 50))
	r.set("query_p99_ms_"+ds.key+"_grpc", Percentile(took, 99))
	return nil
}
