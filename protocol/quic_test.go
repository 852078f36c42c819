package protocol

import (
	"context"
	"crypto/tls"
	"errors"
	"io"
	"log/slog"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/quic-go/quic-go"
)

type recordingHandler struct {
	batches atomic.Int64
}

func (h *recordingHandler) HandleBatch(_ context.Context, wire []byte, _ Peer) Ack {
	b, err := DecodeBatch(wire)
	if err != nil {
		return Ack{Status: AckReject, Reason: err.Error()}
	}
	h.batches.Add(1)
	return Ack{Status: AckOK, Stored: len(b.Events)}
}

func (h *recordingHandler) HandleConfig(_ context.Context, req ConfigRequest, _ Peer) (*Config, error) {
	if req.AgentID == "" {
		return nil, errors.New("no agent id")
	}
	return &Config{Version: Version, Sites: []Site{{ID: 1, MeasurementID: "G-TEST"}}, Salts: []Salt{{Site: 1, Day: "2026-11-25", Key: make([]byte, 32)}}}, nil
}

func startServer(t *testing.T, h Handler) (*Server, *tls.Config) {
	t.Helper()
	certs, err := EnsureDevCerts(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	srvTLS, err := ServerTLS(certs.Cert, certs.Key, "")
	if err != nil {
		t.Fatal(err)
	}
	srv, err := Listen("127.0.0.1:0", srvTLS, h, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = srv.Serve(ctx) }()
	t.Cleanup(func() { cancel(); _ = srv.Close(); <-done })
	cliTLS, err := ClientTLS(certs.CA, "", "")
	if err != nil {
		t.Fatal(err)
	}
	return srv, cliTLS
}

// dialRaw opens a plain quic-go connection to srv, closed at the test's
// end, for tests that write raw streams.
func dialRaw(ctx context.Context, t *testing.T, srv *Server, cliTLS *tls.Config) *quic.Conn {
	t.Helper()
	conf := cliTLS.Clone()
	conf.NextProtos = []string{ALPN}
	conn, err := quic.DialAddr(ctx, srv.Addr().String(), conf, quicConfig())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.CloseWithError(0, "") })
	return conn
}

func TestClientServerRoundTrip(t *testing.T) {
	h := &recordingHandler{}
	srv, cliTLS := startServer(t, h)
	c := NewClient(srv.Addr().String(), cliTLS)
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	cfg, err := c.FetchConfig(ctx, ConfigRequest{AgentID: "a1"})
	if err != nil {
		t.Fatal(err)
	}
	if len(cfg.Sites) != 1 || cfg.Sites[0].MeasurementID != "G-TEST" || len(cfg.Salts[0].Key) != 32 {
		t.Fatalf("config = %+v", cfg)
	}
	if _, err := c.FetchConfig(ctx, ConfigRequest{}); err == nil || !strings.Contains(err.Error(), "no agent id") {
		t.Fatalf("config error not passed on: %v", err)
	}

	wire, _ := EncodeBatch(&Batch{Version: Version, AgentID: "a1", Seq: 1, Events: sampleEvents()})
	for i := 0; i < 20; i++ {
		ack, err := c.SendBatch(ctx, wire)
		if err != nil {
			t.Fatal(err)
		}
		if ack.Status != AckOK || ack.Stored != 3 {
			t.Fatalf("ack = %+v", ack)
		}
	}
	ack, err := c.SendBatch(ctx, wire[:len(wire)-2])
	if err != nil || ack.Status != AckReject || !strings.Contains(ack.Reason, "zstd") {
		t.Fatalf("truncated batch: ack %+v, err %v", ack, err)
	}
	if got := h.batches.Load(); got != 20 {
		t.Fatalf("handler stored %d batches, want 20", got)
	}
}

// Malformed frames on raw streams get a Reject and leave the server serving.
func TestServerSurvivesMalformedFrames(t *testing.T) {
	h := &recordingHandler{}
	srv, cliTLS := startServer(t, h)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn := dialRaw(ctx, t, srv, cliTLS)
	f := func(name string, raw []byte, wantReason string) {
		t.Helper()
		str, err := conn.OpenStreamSync(ctx)
		if err != nil {
			t.Fatal(err)
		}
		_, _ = str.Write(raw)
		_ = str.Close()
		typ, payload, err := ReadFrame(str, MaxFrameSize)
		if err != nil {
			t.Fatalf("%s: no answer: %v", name, err)
		}
		var ack Ack
		if typ != FrameAck || DecodeMsg(payload, &ack) != nil || ack.Status != AckReject || !strings.Contains(ack.Reason, wantReason) {
			t.Fatalf("%s: got %s %+v, want reject saying %q", name, typ, ack, wantReason)
		}
	}
	f("unknown frame type", []byte{77, 0, 0, 0, 0}, "unknown frame type")
	f("oversized length", []byte{1, 0xff, 0xff, 0xff, 0xff}, "frame too large")
	f("short payload", []byte{1, 0, 0, 0, 10, 1, 2}, "read batch frame")
	f("garbage batch", append([]byte{1, 0, 0, 0, 4}, "junk"...), "bad batch")
	f("ack from agent", []byte{2, 0, 0, 0, 0}, "unexpected ack frame")

	c := NewClient(srv.Addr().String(), cliTLS)
	defer c.Close()
	wire, _ := EncodeBatch(&Batch{Version: Version, AgentID: "a1", Seq: 1})
	if ack, err := c.SendBatch(ctx, wire); err != nil || ack.Status != AckOK {
		t.Fatalf("server stopped serving after bad frames: %+v %v", ack, err)
	}
}

func TestClientTLSRefusesUnknownCA(t *testing.T) {
	srv, _ := startServer(t, &recordingHandler{})
	other, err := EnsureDevCerts(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	cliTLS, err := ClientTLS(other.CA, "", "")
	if err != nil {
		t.Fatal(err)
	}
	c := NewClient(srv.Addr().String(), cliTLS)
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := c.SendBatch(ctx, []byte("x")); err == nil || !strings.Contains(err.Error(), "certificate") {
		t.Fatalf("err = %v, want a certificate error", err)
	}
}

func TestEnsureDevCertsReuses(t *testing.T) {
	dir := t.TempDir()
	a, err := EnsureDevCerts(dir)
	if err != nil {
		t.Fatal(err)
	}
	before, _ := os.ReadFile(a.CA)
	b, err := EnsureDevCerts(dir)
	if err != nil {
		t.Fatal(err)
	}
	after, _ := os.ReadFile(b.CA)
	if string(before) != string(after) {
		t.Fatal("second EnsureDevCerts replaced the CA; agents would stop trusting the aggregator")
	}
	if st, _ := os.Stat(b.Key); st.Mode().Perm() != 0o600 {
		t.Fatalf("key mode %v, want 0600", st.Mode().Perm())
	}
}

// A stopped server closes the connections it accepted and frees its port:
// a client's next request fails at once instead of waiting for a stream
// timeout, and a new server binds the same address and serves the same
// client, which redials.
func TestServeStopClosesConnectionsAndPort(t *testing.T) {
	certs, err := EnsureDevCerts(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	srvTLS, err := ServerTLS(certs.Cert, certs.Key, "")
	if err != nil {
		t.Fatal(err)
	}
	cliTLS, err := ClientTLS(certs.CA, "", "")
	if err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.DiscardHandler)
	serve := func(addr string) (*Server, context.CancelFunc, chan struct{}) {
		srv, err := ListenOptions(addr, srvTLS, &recordingHandler{}, log, ServerOptions{ResetKey: make([]byte, 32)})
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		go func() { defer close(done); _ = srv.Serve(ctx) }()
		return srv, cancel, done
	}
	srv, cancel, done := serve("127.0.0.1:0")
	addr := srv.Addr().String()
	c := NewClient(addr, cliTLS)
	defer c.Close()
	ctx, cancelReq := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancelReq()
	if _, err := c.FetchConfig(ctx, ConfigRequest{AgentID: "a1"}); err != nil {
		t.Fatal(err)
	}
	cancel()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("Serve did not return after its context ended")
	}
	// The client's connection was closed by the server: the next request
	// fails well before the 10 s context, not by timeout.
	if _, err := c.FetchConfig(ctx, ConfigRequest{AgentID: "a1"}); err == nil {
		t.Fatal("request to a stopped server succeeded")
	} else if ctx.Err() != nil {
		t.Fatalf("request waited for the deadline: %v", err)
	}
	if _, err := ListenOptions("127.0.0.1:0", srvTLS, &recordingHandler{}, log, ServerOptions{ResetKey: []byte("short")}); err == nil {
		t.Fatal("a short reset key was accepted")
	}
	_, cancel2, done2 := serve(addr)
	defer func() { cancel2(); <-done2 }()
	if _, err := c.FetchConfig(ctx, ConfigRequest{AgentID: "a1"}); err != nil {
		t.Fatalf("client did not redial the restarted server: %v", err)
	}
}

func TestEnsureResetKeyKeeps(t *testing.T) {
	dir := t.TempDir()
	a, err := EnsureResetKey(dir)
	if err != nil {
		t.Fatal(err)
	}
	b, err := EnsureResetKey(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(a) != 32 || string(a) != string(b) {
		t.Fatalf("key not kept: %x vs %x", a, b)
	}
	if err := os.WriteFile(dir+"/"+ResetKeyFile, []byte("bad"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := EnsureResetKey(dir); err == nil || !strings.Contains(err.Error(), "want 32 bytes") {
		t.Fatalf("damaged key file: %v", err)
	}
}

// A stream whose end comes after its frame, in a packet of its own (here:
// the client closes its side only once it has the answer), is done once
// the server has read that end: more requests than the server's stream
// limit, one after another on one connection, all get their answers. A
// server that stopped reading at the frame's last byte held every such
// stream, and the client's next stream waited for credit forever after
// MaxIncomingStreams of them.
func TestServerFreesStreamsWhoseEndComesLate(t *testing.T) {
	h := &recordingHandler{}
	srv, cliTLS := startServer(t, h)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	conn := dialRaw(ctx, t, srv, cliTLS)
	wire, _ := EncodeBatch(&Batch{Version: Version, AgentID: "a1", Seq: 1, Events: sampleEvents()})
	n := quicConfig().MaxIncomingStreams + 20
	for i := range n {
		octx, ocancel := context.WithTimeout(ctx, 3*time.Second)
		str, err := conn.OpenStreamSync(octx)
		ocancel()
		if err != nil {
			t.Fatalf("request %d of %d: no stream to open: %v", i+1, n, err)
		}
		if err := WriteFrame(str, FrameBatch, wire); err != nil {
			t.Fatal(err)
		}
		typ, payload, err := ReadFrame(str, MaxFrameSize)
		var ack Ack
		if err != nil || typ != FrameAck || DecodeMsg(payload, &ack) != nil || ack.Status != AckOK {
			t.Fatalf("request %d: answer %s %+v, err %v", i+1, typ, ack, err)
		}
		if err := str.Close(); err != nil {
			t.Fatal(err)
		}
		if err := readEnd(str); err != nil {
			t.Fatalf("request %d: end of the answer: %v", i+1, err)
		}
	}
	if got := h.batches.Load(); got != int64(n) {
		t.Fatalf("server stored %d batches, want %d", got, n)
	}
}
