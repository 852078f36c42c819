package query

import (
	"context"
	"crypto/x509"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	analyticsdata "google.golang.org/api/analyticsdata/v1beta"
	"google.golang.org/api/googleapi"
	"google.golang.org/api/option"
	alphapb "google.golang.org/genproto/googleapis/analytics/data/v1alpha"
	datapb "google.golang.org/genproto/googleapis/analytics/data/v1beta"
	"google.golang.org/genproto/googleapis/rpc/code"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	"github.com/avila-analytics/avila/storage/redis"
)

// tableServers serves the fixture's API (REST and gRPC, realtime from the
// table's live events) on one clear-text port speaking HTTP/1.1 and h2c,
// and on one TLS port offering h2 by ALPN.
// intEnums counts the REST requests that asked for enums as numbers
// ($alt=json;enum-encoding=int), as Google's clients do in REST mode.
func tableServers(t *testing.T, f *fixture) (clear, tls *httptest.Server, intEnums *atomic.Int64) {
	t.Helper()
	now := func() time.Time { return fixtureNow }
	live := redis.NewRealtime(redis.RealtimeOptions{Now: now})
	live.Record(context.Background(), tableLiveEvents())
	opts := Options{Logger: slog.New(slog.NewTextHandler(t.Output(), nil)), Now: now, Realtime: live}
	api := newAPI(opts, newHandler(opts, f.pool, stubKeys{testKey: {1, 2, 3, 99}}))
	intEnums = new(atomic.Int64)
	clear = httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !isGRPC(r) && enumsAsInts(r.URL.RawQuery) {
			intEnums.Add(1)
		}
		api.ServeHTTP(w, r)
	}))
	clear.Config.Protocols = new(http.Protocols)
	clear.Config.Protocols.SetHTTP1(true)
	clear.Config.Protocols.SetUnencryptedHTTP2(true)
	clear.Start()
	t.Cleanup(clear.Close)
	tls = httptest.NewUnstartedServer(api)
	tls.EnableHTTP2 = true
	tls.StartTLS()
	t.Cleanup(tls.Close)
	return clear, tls, intEnums
}

// TestOfficialClientsTable runs the table (clients_test.go) through each
// official client, changed only in its endpoint: Google's Go REST client,
// a gRPC client from genproto's stubs over h2c and over TLS, and Google's
// Node client in its default gRPC mode and in REST-fallback mode (which
// sends enums as numbers). The same server answers REST and gRPC on one
// port.
func TestOfficialClientsTable(t *testing.T) {
	f := newFixture(t, 800)
	clear, tls, intEnums := tableServers(t, f)
	t.Run("go-rest", func(t *testing.T) {
		// Google's Go REST client has no runFunnelReport (v1alpha).
		checkClientTable(t, f, goRESTOutcomes(t, clear.URL), map[string]bool{"runFunnelReport": true})
	})
	t.Run("grpc-h2c", func(t *testing.T) {
		conn, err := grpc.NewClient(strings.TrimPrefix(clear.URL, "http://"), grpc.WithTransportCredentials(insecure.NewCredentials()))
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		checkClientTable(t, f, grpcOutcomes(t, conn), nil)
	})
	t.Run("grpc-tls", func(t *testing.T) {
		pool := x509.NewCertPool()
		pool.AddCert(tls.Certificate())
		conn, err := grpc.NewClient(strings.TrimPrefix(tls.URL, "https://"), grpc.WithTransportCredentials(credentials.NewClientTLSFromCert(pool, "")))
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		checkClientTable(t, f, grpcOutcomes(t, conn), nil)
	})
	dir := nodeClient(t)
	for _, mode := range []string{"grpc", "rest"} {
		t.Run("node-"+mode, func(t *testing.T) {
			before := intEnums.Load()
			checkClientTable(t, f, nodeOutcomes(t, dir, mode, clear.URL), nil)
			// REST fallback sends enums as numbers, and asks for them.
			if n := intEnums.Load() - before; mode == "rest" && n < int64(len(clientTable())) || mode == "grpc" && n != 0 {
				t.Fatalf("%d REST requests with $alt=json;enum-encoding=int in %s mode", n, mode)
			}
		})
	}
}

// goRESTOutcomes runs the table through google.golang.org/api's
// analyticsdata/v1beta client.
func goRESTOutcomes(t *testing.T, url string) []clientOutcome {
	t.Helper()
	svc, err := analyticsdata.NewService(context.Background(), option.WithEndpoint(url+"/"),
		option.WithHTTPClient(&http.Client{Transport: bearer(testKey)}))
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	var out []clientOutcome
	for _, c := range clientTable() {
		var resp any
		var err error
		p := c.propertyName()
		switch c.method {
		case "runReport":
			var req analyticsdata.RunReportRequest
			mustJSON(t, c.body, &req)
			resp, err = svc.Properties.RunReport(p, &req).Context(ctx).Do()
		case "batchRunReports":
			var req analyticsdata.BatchRunReportsRequest
			mustJSON(t, c.body, &req)
			resp, err = svc.Properties.BatchRunReports(p, &req).Context(ctx).Do()
		case "runPivotReport":
			var req analyticsdata.RunPivotReportRequest
			mustJSON(t, c.body, &req)
			resp, err = svc.Properties.RunPivotReport(p, &req).Context(ctx).Do()
		case "batchRunPivotReports":
			var req analyticsdata.BatchRunPivotReportsRequest
			mustJSON(t, c.body, &req)
			resp, err = svc.Properties.BatchRunPivotReports(p, &req).Context(ctx).Do()
		case "checkCompatibility":
			var req analyticsdata.CheckCompatibilityRequest
			mustJSON(t, c.body, &req)
			resp, err = svc.Properties.CheckCompatibility(p, &req).Context(ctx).Do()
		case "runRealtimeReport":
			var req analyticsdata.RunRealtimeReportRequest
			mustJSON(t, c.body, &req)
			resp, err = svc.Properties.RunRealtimeReport(p, &req).Context(ctx).Do()
		case "getMetadata":
			resp, err = svc.Properties.GetMetadata(p + "/metadata").Context(ctx).Do()
		default:
			out = append(out, clientOutcome{Status: "NOT_RUN"})
			continue
		}
		var gerr *googleapi.Error
		switch {
		case errors.As(err, &gerr):
			o := clientOutcome{Status: httpStatusNames[gerr.Code], Message: gerr.Message}
			for _, d := range gerr.Details {
				b, _ := json.Marshal(d)
				var br struct{ FieldViolations []struct{ Field string } }
				if json.Unmarshal(b, &br) == nil {
					for _, v := range br.FieldViolations {
						o.Fields = append(o.Fields, v.Field)
					}
				}
			}
			out = append(out, o)
		case err != nil:
			t.Fatalf("%s: %v", c.name, err)
		default:
			b, err := json.Marshal(resp)
			if err != nil {
				t.Fatal(err)
			}
			out = append(out, clientOutcome{Response: b})
		}
	}
	return out
}

// httpStatusNames are the canonical status names of the HTTP codes the
// table's errors use.
var httpStatusNames = map[int]string{400: "INVALID_ARGUMENT", 401: "UNAUTHENTICATED", 403: "PERMISSION_DENIED", 404: "NOT_FOUND", 429: "RESOURCE_EXHAUSTED"}

// grpcOutcomes runs the table through genproto's gRPC stubs on conn, the
// key in the authorization metadata.
func grpcOutcomes(t *testing.T, conn *grpc.ClientConn) []clientOutcome {
	t.Helper()
	beta, alpha := datapb.NewBetaAnalyticsDataClient(conn), alphapb.NewAlphaAnalyticsDataClient(conn)
	ctx := metadata.AppendToOutgoingContext(context.Background(), "authorization", "Bearer "+testKey)
	var out []clientOutcome
	for _, c := range clientTable() {
		body := c.body
		if body == "" {
			body = "{}"
		}
		var resp proto.Message
		var err error
		dec := func(m proto.Message) {
			t.Helper()
			// decodeProto also carries emptyFilter, which genproto's
			// Filter lacks, as field 8: what Google's clients send.
			if err := decodeProto(strings.NewReader(body), m); err != nil {
				t.Fatalf("%s: %v", c.name, err)
			}
		}
		p := c.propertyName()
		switch c.method {
		case "runReport":
			req := &datapb.RunReportRequest{}
			dec(req)
			req.Property = p
			resp, err = beta.RunReport(ctx, req)
		case "batchRunReports":
			req := &datapb.BatchRunReportsRequest{}
			dec(req)
			req.Property = p
			resp, err = beta.BatchRunReports(ctx, req)
		case "runPivotReport":
			req := &datapb.RunPivotReportRequest{}
			dec(req)
			req.Property = p
			resp, err = beta.RunPivotReport(ctx, req)
		case "batchRunPivotReports":
			req := &datapb.BatchRunPivotReportsRequest{}
			dec(req)
			req.Property = p
			resp, err = beta.BatchRunPivotReports(ctx, req)
		case "checkCompatibility":
			req := &datapb.CheckCompatibilityRequest{}
			dec(req)
			req.Property = p
			resp, err = beta.CheckCompatibility(ctx, req)
		case "runRealtimeReport":
			req := &datapb.RunRealtimeReportRequest{}
			dec(req)
			req.Property = p
			resp, err = beta.RunRealtimeReport(ctx, req)
		case "runFunnelReport":
			req := &alphapb.RunFunnelReportRequest{}
			dec(req)
			req.Property = p
			resp, err = alpha.RunFunnelReport(ctx, req)
		case "getMetadata":
			resp, err = beta.GetMetadata(ctx, &datapb.GetMetadataRequest{Name: p + "/metadata"})
		}
		if err != nil {
			st, ok := status.FromError(err)
			if !ok {
				t.Fatalf("%s: %v", c.name, err)
			}
			o := clientOutcome{Status: code.Code(st.Code()).String(), Message: st.Message()}
			for _, d := range st.Details() {
				if br, ok := d.(*errdetails.BadRequest); ok {
					for _, v := range br.GetFieldViolations() {
						o.Fields = append(o.Fields, v.GetField())
					}
				}
			}
			out = append(out, o)
			continue
		}
		b, err := protojson.Marshal(resp)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, clientOutcome{Response: b})
	}
	return out
}

// nodeClient installs the pinned Node client (package-lock.json) with
// npm ci and returns its folder. A machine without Node fails the test
// with what to install.
func nodeClient(t *testing.T) string {
	t.Helper()
	dir, err := filepath.Abs(filepath.Join("testdata", "nodeclient"))
	if err != nil {
		t.Fatal(err)
	}
	for _, bin := range []string{"node", "npm"} {
		if _, err := exec.LookPath(bin); err != nil {
			t.Fatalf("%s not found: Google's Node client needs Node.js 18 or newer and npm (apt-get install nodejs npm)", bin)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "npm", "ci", "--no-audit", "--no-fund", "--loglevel=error")
	cmd.Dir = dir
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("npm ci in %s: %v\n%s", dir, err, out)
	}
	return dir
}

// nodeOutcomes runs the table through Google's Node client in mode (grpc
// or rest) against the server at url.
func nodeOutcomes(t *testing.T, dir, mode, url string) []clientOutcome {
	t.Helper()
	type nodeCase struct {
		Method  string         `json:"method"`
		Request map[string]any `json:"request"`
	}
	var cases []nodeCase
	for _, c := range clientTable() {
		req := map[string]any{}
		if c.body != "" {
			mustJSON(t, c.body, &req)
		}
		if c.method == "getMetadata" {
			req["name"] = c.propertyName() + "/metadata"
		} else {
			req["property"] = c.propertyName()
		}
		cases = append(cases, nodeCase{c.method, req})
	}
	file := filepath.Join(t.TempDir(), "cases.json")
	b, err := json.Marshal(cases)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(file, b, 0o600); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	port := url[strings.LastIndexByte(url, ':')+1:]
	cmd := exec.CommandContext(ctx, "node", "run.js", mode, port, testKey, file)
	cmd.Dir = dir
	var stderr strings.Builder
	cmd.Stderr = &stderr
	stdout, err := cmd.Output()
	if err != nil {
		t.Fatalf("node run.js %s: %v\n%s", mode, err, stderr.String())
	}
	var out []clientOutcome
	if err := json.Unmarshal(stdout, &out); err != nil {
		t.Fatalf("node run.js %s: %v\n%s", mode, err, stdout)
	}
	return out
}
