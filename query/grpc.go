package query

import (
	"context"
	"net/http"
	"strings"
	"time"

	alphapb "google.golang.org/genproto/googleapis/analytics/data/v1alpha"
	datapb "google.golang.org/genproto/googleapis/analytics/data/v1beta"
	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"
	"google.golang.org/protobuf/proto"
)

// The gRPC transport: Google's BetaAnalyticsData service (and
// AlphaAnalyticsData's RunFunnelReport) from genproto's stubs, served by
// grpc-go's http.Handler on the API's own HTTP/2 server, so REST and gRPC
// share one port: HTTP/1.1 and HTTP/2 requests go to REST, HTTP/2 requests
// with Content-Type application/grpc to gRPC (see api.ServeHTTP). In clear
// text the HTTP server speaks h2c with prior knowledge (what gRPC clients
// send); under TLS it offers h2 by ALPN.

// api is the Data API's handler: REST and gRPC.
type api struct {
	rest http.Handler
	grpc *grpc.Server
}

// GRPCPaths are the path prefixes of the gRPC services this handler
// serves (/google.analytics.data.v1beta.BetaAnalyticsData/RunReport, …);
// mount the handler at each too.
var GRPCPaths = []string{
	"/google.analytics.data.v1beta.BetaAnalyticsData/",
	"/google.analytics.data.v1alpha.AlphaAnalyticsData/",
}

func (a *api) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if isGRPC(r) {
		a.grpc.ServeHTTP(w, r)
		return
	}
	a.rest.ServeHTTP(w, r)
}

// isGRPC reports whether r is a gRPC call: HTTP/2, POST, Content-Type
// application/grpc (or application/grpc+proto …).
func isGRPC(r *http.Request) bool {
	return r.ProtoMajor == 2 && r.Method == http.MethodPost && strings.HasPrefix(r.Header.Get("Content-Type"), "application/grpc")
}

func newGRPC(h *handler, m *Metrics) *grpc.Server {
	opts := []grpc.ServerOption{grpc.MaxRecvMsgSize(maxBodyBytes)}
	if m != nil {
		opts = append(opts, grpc.UnaryInterceptor(func(ctx context.Context, req any, info *grpc.UnaryServerInfo, next grpc.UnaryHandler) (any, error) {
			start := time.Now()
			resp, err := next(ctx, req)
			name := info.FullMethod[strings.LastIndexByte(info.FullMethod, '/')+1:]
			m.duration.WithLabelValues(grpcEndpoint(name)).Observe(time.Since(start).Seconds())
			return resp, err
		}))
	}
	s := grpc.NewServer(opts...)
	datapb.RegisterBetaAnalyticsDataServer(s, &betaServer{h: h})
	alphapb.RegisterAlphaAnalyticsDataServer(s, &alphaServer{h: h})
	return s
}

// grpcCall is the call of a gRPC request: its key from the
// "authorization: Bearer <key>" (or x-goog-api-key) metadata.
func grpcCall(ctx context.Context) apiCall {
	c := apiCall{client: ctx}
	md, _ := metadata.FromIncomingContext(ctx)
	for _, v := range md.Get("authorization") {
		if key, ok := bearerKey(v); ok {
			c.key = key
		}
	}
	if c.key == "" {
		for _, v := range md.Get("x-goog-api-key") {
			c.key = strings.TrimSpace(v)
		}
	}
	h := http.Header{}
	for _, v := range md.Get("cache-control") {
		h.Add("Cache-Control", v)
	}
	c.fresh = requestsFresh(h)
	return c
}

// serveGRPC runs method name for the property that resource names.
func serveGRPC[T proto.Message](ctx context.Context, h *handler, name, resource string, req proto.Message) (T, error) {
	var zero T
	m := methodsByName[name]
	suffix := ""
	if name == "getMetadata" {
		suffix = "/metadata"
	}
	id, ae := parseProperty(resource, suffix, name == "getMetadata")
	if ae != nil {
		return zero, grpcStatus(ae).Err()
	}
	resp, ae := h.invoke(ctx, m, grpcCall(ctx), id, req)
	if ae != nil {
		return zero, grpcStatus(ae).Err()
	}
	return resp.(T), nil
}

type betaServer struct {
	datapb.UnimplementedBetaAnalyticsDataServer
	h *handler
}

func (s *betaServer) RunReport(ctx context.Context, req *datapb.RunReportRequest) (*datapb.RunReportResponse, error) {
	return serveGRPC[*datapb.RunReportResponse](ctx, s.h, "runReport", req.GetProperty(), req)
}

func (s *betaServer) RunPivotReport(ctx context.Context, req *datapb.RunPivotReportRequest) (*datapb.RunPivotReportResponse, error) {
	return serveGRPC[*datapb.RunPivotReportResponse](ctx, s.h, "runPivotReport", req.GetProperty(), req)
}

func (s *betaServer) BatchRunReports(ctx context.Context, req *datapb.BatchRunReportsRequest) (*datapb.BatchRunReportsResponse, error) {
	return serveGRPC[*datapb.BatchRunReportsResponse](ctx, s.h, "batchRunReports", req.GetProperty(), req)
}

func (s *betaServer) BatchRunPivotReports(ctx context.Context, req *datapb.BatchRunPivotReportsRequest) (*datapb.BatchRunPivotReportsResponse, error) {
	return serveGRPC[*datapb.BatchRunPivotReportsResponse](ctx, s.h, "batchRunPivotReports", req.GetProperty(), req)
}

func (s *betaServer) GetMetadata(ctx context.Context, req *datapb.GetMetadataRequest) (*datapb.Metadata, error) {
	return serveGRPC[*datapb.Metadata](ctx, s.h, "getMetadata", req.GetName(), req)
}

func (s *betaServer) RunRealtimeReport(ctx context.Context, req *datapb.RunRealtimeReportRequest) (*datapb.RunRealtimeReportResponse, error) {
	return serveGRPC[*datapb.RunRealtimeReportResponse](ctx, s.h, "runRealtimeReport", req.GetProperty(), req)
}

func (s *betaServer) CheckCompatibility(ctx context.Context, req *datapb.CheckCompatibilityRequest) (*datapb.CheckCompatibilityResponse, error) {
	return serveGRPC[*datapb.CheckCompatibilityResponse](ctx, s.h, "checkCompatibility", req.GetProperty(), req)
}

type alphaServer struct {
	alphapb.UnimplementedAlphaAnalyticsDataServer
	h *handler
}

func (s *alphaServer) RunFunnelReport(ctx context.Context, req *alphapb.RunFunnelReportRequest) (*alphapb.RunFunnelReportResponse, error) {
	return serveGRPC[*alphapb.RunFunnelReportResponse](ctx, s.h, "runFunnelReport", req.GetProperty(), req)
}
