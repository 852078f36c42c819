package node

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"io"
	"log/slog"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	alphapb "google.golang.org/genproto/googleapis/analytics/data/v1alpha"
	datapb "google.golang.org/genproto/googleapis/analytics/data/v1beta"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/avila-analytics/avila/internal/testenv"
	"github.com/avila-analytics/avila/protocol"
	"github.com/avila-analytics/avila/storage/postgres"
)

func TestMain(m *testing.M) { os.Exit(testenv.Run(m)) }

func get(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func TestNodeServesAndShutsDown(t *testing.T) {
	ctx := context.Background()
	url := testenv.PostgresURL(t)
	dir := t.TempDir()
	n, err := Start(ctx, Config{DatabaseURL: url, ListenQUIC: "127.0.0.1:0", ListenAPI: "127.0.0.1:0", ListenOperator: "127.0.0.1:0", DataDir: dir}, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	if !filepath.IsAbs(n.CAFile) || !strings.HasPrefix(n.CAFile, dir) {
		t.Errorf("CA file %q not an absolute path under the data dir", n.CAFile)
	}
	if code, body := get(t, n.APIURL+"/healthz"); code != http.StatusOK {
		t.Errorf("/healthz %d %s", code, body)
	}
	if code, body := get(t, n.APIURL+"/readyz"); code != http.StatusOK {
		t.Errorf("/readyz %d %s", code, body)
	}

	// Start ran the jobs: today's partition exists, so a batch for now commits.
	site, err := n.store.CreateSite(ctx, postgres.SiteSpec{Name: "a"})
	if err != nil {
		t.Fatal(err)
	}
	tlsConf, err := protocol.ClientTLS(n.CAFile, "", "")
	if err != nil {
		t.Fatal(err)
	}
	c := protocol.NewClient(n.QUICAddr, tlsConf)
	defer c.Close()
	wire, _ := protocol.EncodeBatch(&protocol.Batch{Version: protocol.Version, AgentID: "node-test", Seq: 1,
		Events: []protocol.Event{{Site: site.ID, TimeMicros: time.Now().UnixMicro(), Name: "page_view"}}})
	ack, err := c.SendBatch(ctx, wire)
	if err != nil || ack.Status != protocol.AckOK || ack.Stored != 1 {
		t.Fatalf("batch: %+v, %v", ack, err)
	}
	cfg, err := c.FetchConfig(ctx, protocol.ConfigRequest{AgentID: "node-test"})
	if err != nil || len(cfg.Sites) != 1 {
		t.Fatalf("config: %+v, %v", cfg, err)
	}

	// The Data API answers gRPC on the API port, through the server's
	// middleware (tracing, request log), beside REST.
	key, err := n.store.CreateAPIKey(ctx, "grpc", []uint32{site.ID})
	if err != nil {
		t.Fatal(err)
	}
	conn, err := grpc.NewClient(strings.TrimPrefix(n.APIURL, "http://"), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	property := fmt.Sprintf("properties/%d", site.ID)
	md, err := datapb.NewBetaAnalyticsDataClient(conn).GetMetadata(metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+key),
		&datapb.GetMetadataRequest{Name: property + "/metadata"})
	if err != nil || md.GetName() != property+"/metadata" || len(md.GetMetrics()) == 0 {
		t.Fatalf("getMetadata over gRPC: %v, %v", md, err)
	}
	_, err = alphapb.NewAlphaAnalyticsDataClient(conn).RunFunnelReport(ctx, &alphapb.RunFunnelReportRequest{Property: property})
	if status.Code(err) != codes.Unauthenticated {
		t.Fatalf("runFunnelReport over gRPC without a key: %v, want Unauthenticated", err)
	}

	sctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if err := n.Shutdown(sctx); err != nil {
		t.Fatal(err)
	}
	if _, err := http.Get(n.APIURL + "/healthz"); err == nil {
		t.Error("API still answers after Shutdown")
	}
	short, cancel2 := context.WithTimeout(ctx, 3*time.Second)
	defer cancel2()
	if _, err := c.SendBatch(short, wire); err == nil {
		t.Error("QUIC still answers after Shutdown")
	}
}

func TestReadyzReportsDatabaseDown(t *testing.T) {
	ctx := context.Background()
	store, err := postgres.Open(ctx, testenv.PostgresURL(t), nil)
	if err != nil {
		t.Fatal(err)
	}
	store.Close() // the database is gone for this node
	n := &Node{store: store, log: slog.New(slog.DiscardHandler)}
	// The operator address gives the reason in full, the API address
	// only that the database is unavailable.
	op := httptest.NewServer(n.operatorRoutes())
	defer op.Close()
	code, body := get(t, op.URL+"/readyz")
	if code != http.StatusServiceUnavailable || !strings.Contains(body, "not ready: postgres: ping") {
		t.Errorf("operator /readyz %d %q, want 503 with the reason", code, body)
	}
	api := httptest.NewServer(n.routes())
	defer api.Close()
	if code, body := get(t, api.URL+"/readyz"); code != http.StatusServiceUnavailable || body != "not ready: database unavailable\n" {
		t.Errorf("API /readyz %d %q, want 503 without the driver's error", code, body)
	}
}

func TestStartErrors(t *testing.T) {
	ctx := context.Background()
	f := func(cfg Config, want string) {
		t.Helper()
		_, err := Start(ctx, cfg, slog.New(slog.DiscardHandler))
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Start error %v, want %q", err, want)
		}
	}
	f(Config{}, "set --database-url or DATABASE_URL")
	f(Config{DatabaseURL: "postgres://postgres@127.0.0.1:1/x?sslmode=disable", TLSCert: "a"}, "--tls-cert and --tls-key go together")
	f(Config{DatabaseURL: "postgres://postgres@127.0.0.1:1/x?sslmode=disable"}, "connection refused (is PostgreSQL running? set DATABASE_URL)")
}

// TestNodeAPIOverTLS: with --api-tls-cert and --api-tls-key the API port
// serves HTTPS, and HTTP/2 by ALPN: the Data API answers a gRPC client
// over TLS and REST over HTTPS on the same port.
func TestNodeAPIOverTLS(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "api"},
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}, NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	certFile, keyFile := filepath.Join(dir, "api.crt"), filepath.Join(dir, "api.key")
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER}), 0o600); err != nil {
		t.Fatal(err)
	}
	n, err := Start(ctx, Config{DatabaseURL: testenv.PostgresURL(t), ListenQUIC: "127.0.0.1:0", ListenAPI: "127.0.0.1:0", DataDir: dir,
		APITLSCert: certFile, APITLSKey: keyFile}, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		sctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		defer cancel()
		_ = n.Shutdown(sctx)
	})
	site, err := n.store.CreateSite(ctx, postgres.SiteSpec{Name: "tls"})
	if err != nil {
		t.Fatal(err)
	}
	apiKey, err := n.store.CreateAPIKey(ctx, "tls", []uint32{site.ID})
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(leaf)
	host, ok := strings.CutPrefix(n.APIURL, "https://")
	if !ok {
		t.Fatalf("API URL %s, want https://", n.APIURL)
	}
	conn, err := grpc.NewClient(host, grpc.WithTransportCredentials(credentials.NewClientTLSFromCert(pool, "")))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	property := fmt.Sprintf("properties/%d", site.ID)
	md, err := datapb.NewBetaAnalyticsDataClient(conn).GetMetadata(metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+apiKey),
		&datapb.GetMetadataRequest{Name: property + "/metadata"})
	if err != nil || md.GetName() != property+"/metadata" {
		t.Fatalf("getMetadata over gRPC and TLS: %v, %v", md, err)
	}
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}, ForceAttemptHTTP2: true}}
	req, _ := http.NewRequest(http.MethodGet, n.APIURL+"/v1beta/"+property+"/metadata", nil)
	req.Header.Set("Authorization", "Bearer "+apiKey)
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || resp.ProtoMajor != 2 {
		t.Fatalf("REST over HTTPS: %s %s, want 200 over HTTP/2", resp.Proto, resp.Status)
	}
}
