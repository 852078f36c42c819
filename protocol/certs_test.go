package protocol

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// peerHandler remembers the CommonName of the last batch's sender.
type peerHandler struct {
	recordingHandler
	mu sync.Mutex
	cn string
}

func (h *peerHandler) HandleBatch(ctx context.Context, wire []byte, p Peer) Ack {
	h.mu.Lock()
	h.cn = p.CommonName
	h.mu.Unlock()
	return h.recordingHandler.HandleBatch(ctx, wire, p)
}

func issue(t *testing.T, dir string, req IssueRequest) Issued {
	t.Helper()
	out, err := IssueCert(dir, req)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func TestInitCAAndIssue(t *testing.T) {
	dir := t.TempDir()
	if _, err := IssueCert(dir, IssueRequest{Kind: KindAgent, Name: "a"}); err == nil || !strings.Contains(err.Error(), "avila certs init") {
		t.Errorf("issue without CA: %v", err)
	}
	ca, err := InitCA(dir)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := InitCA(dir); !errors.Is(err, ErrCAExists) {
		t.Errorf("second InitCA: %v, want ErrCAExists", err)
	}
	agent := issue(t, dir, IssueRequest{Kind: KindAgent, Name: "edge-1"})
	agg := issue(t, dir, IssueRequest{Kind: KindAggregator, Name: "agg-1", Hosts: []string{"10.1.2.3", "agg.example"}})
	if agent.Cert != filepath.Join(dir, "agent-edge-1.pem") || agg.Key != filepath.Join(dir, "aggregator-agg-1-key.pem") {
		t.Errorf("files %+v %+v", agent, agg)
	}
	for _, f := range []string{agent.Key, agg.Key, filepath.Join(dir, CAKeyFile)} {
		if fi, err := os.Stat(f); err != nil || fi.Mode().Perm() != 0o600 {
			t.Errorf("%s: mode %v, %v; want 0600", f, fi.Mode(), err)
		}
	}
	c, err := readCert(agg.Cert)
	if err != nil {
		t.Fatal(err)
	}
	if c.Subject.CommonName != "agg-1" || strings.Join(c.DNSNames, ",") != "localhost,agg-1,agg.example" || len(c.IPAddresses) != 3 {
		t.Errorf("aggregator certificate: CN %q, DNS %v, IPs %v", c.Subject.CommonName, c.DNSNames, c.IPAddresses)
	}
	if _, err := ClientTLS(ca, agent.Cert, agent.Key); err != nil {
		t.Errorf("agent TLS from issued files: %v", err)
	}

	f := func(req IssueRequest, want string) {
		t.Helper()
		if _, err := IssueCert(dir, req); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("IssueCert(%+v): %v, want %q", req, err, want)
		}
	}
	f(IssueRequest{Kind: "server", Name: "x"}, `kind "server"`)
	f(IssueRequest{Kind: KindAgent, Name: "a/b"}, `name "a/b"`)
	f(IssueRequest{Kind: KindAgent, Name: ""}, `name ""`)
	f(IssueRequest{Kind: KindAgent, Name: "x", Validity: -time.Second}, "must not be negative")
}

func TestStartupRefusesBadKeyModeAndExpiredCerts(t *testing.T) {
	dir := t.TempDir()
	ca, err := InitCA(dir)
	if err != nil {
		t.Fatal(err)
	}
	agg := issue(t, dir, IssueRequest{Kind: KindAggregator, Name: "agg"})
	agent := issue(t, dir, IssueRequest{Kind: KindAgent, Name: "edge"})
	old := issue(t, dir, IssueRequest{Kind: KindAgent, Name: "old", Validity: 24 * time.Hour, now: time.Now().AddDate(0, 0, -3)})

	if err := os.Chmod(agg.Key, 0o640); err != nil {
		t.Fatal(err)
	}
	if _, err := ServerTLS(agg.Cert, agg.Key, ca); err == nil || !strings.Contains(err.Error(), "accessible to group or others (mode 0640); run: chmod 600") {
		t.Errorf("group-readable server key: %v", err)
	}
	if err := os.Chmod(agent.Key, 0o604); err != nil {
		t.Fatal(err)
	}
	if _, err := ClientTLS(ca, agent.Cert, agent.Key); err == nil || !strings.Contains(err.Error(), "(mode 0604)") {
		t.Errorf("world-readable agent key: %v", err)
	}
	if _, err := ClientTLS(ca, old.Cert, old.Key); err == nil || !strings.Contains(err.Error(), "(old) expired on") {
		t.Errorf("expired agent certificate: %v", err)
	}
	if _, err := IssueCert(t.TempDir(), IssueRequest{Kind: KindAgent, Name: "x"}); err == nil {
		t.Error("issued without a CA")
	}
}

func TestMutualTLS(t *testing.T) {
	dir, other := t.TempDir(), t.TempDir()
	ca, err := InitCA(dir)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := InitCA(other); err != nil {
		t.Fatal(err)
	}
	agg := issue(t, dir, IssueRequest{Kind: KindAggregator, Name: "agg"})
	good := issue(t, dir, IssueRequest{Kind: KindAgent, Name: "edge-1"})
	foreign := issue(t, other, IssueRequest{Kind: KindAgent, Name: "intruder"})

	srvTLS, err := ServerTLS(agg.Cert, agg.Key, ca)
	if err != nil {
		t.Fatal(err)
	}
	var logs syncBuffer
	h := &peerHandler{}
	srv, err := Listen("127.0.0.1:0", srvTLS, h, slog.New(slog.NewTextHandler(&logs, nil)))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = srv.Serve(ctx) }()
	t.Cleanup(func() { cancel(); _ = srv.Close(); <-done })

	wire, _ := EncodeBatch(&Batch{Version: Version, AgentID: "q", Seq: 1, Events: []Event{{Site: 1, Name: "x"}}})
	send := func(conf *tls.Config) (Ack, error) {
		c := NewClient(srv.Addr().String(), conf)
		defer c.Close()
		sctx, scancel := context.WithTimeout(ctx, 10*time.Second)
		defer scancel()
		return c.SendBatch(sctx, wire)
	}

	conf, err := ClientTLS(ca, good.Cert, good.Key)
	if err != nil {
		t.Fatal(err)
	}
	if ack, err := send(conf); err != nil || ack.Status != AckOK {
		t.Fatalf("agent with a valid certificate: %+v, %v", ack, err)
	}
	h.mu.Lock()
	cn := h.cn
	h.mu.Unlock()
	if cn != "edge-1" {
		t.Errorf("peer CommonName %q, want edge-1", cn)
	}

	f := func(conf *tls.Config, logged string) {
		t.Helper()
		if ack, err := send(conf); err == nil {
			t.Errorf("refused agent got an answer: %+v", ack)
		}
		deadline := time.Now().Add(5 * time.Second)
		for !strings.Contains(logs.String(), logged) {
			if time.Now().After(deadline) {
				t.Fatalf("log lacks %q:\n%s", logged, logs.String())
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	noCert, _ := ClientTLS(ca, "", "")
	f(noCert, "no client certificate")
	fromOther, _ := ClientTLS(ca, foreign.Cert, foreign.Key)
	f(fromOther, `client certificate \"intruder\" refused: x509: certificate signed by unknown authority`)
	// A server certificate of the right CA is no client certificate.
	serverAsClient, _ := ClientTLS(ca, agg.Cert, agg.Key)
	f(serverAsClient, `client certificate \"agg\" refused: x509: certificate specifies an incompatible key usage`)
	if !strings.Contains(logs.String(), "refused agent connection") || !strings.Contains(logs.String(), "peer=127.0.0.1:") {
		t.Errorf("refusals logged without message or peer:\n%s", logs.String())
	}
}
