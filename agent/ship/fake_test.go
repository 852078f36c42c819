package ship

import (
	"bytes"
	"context"
	"crypto/tls"
	"io"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/avila-analytics/avila/protocol"
)

// fakeAggregator is the shipper's peer in tests: it decodes batches,
// stores each (agent, seq) once like the real aggregator, and can be told to
// answer Retry or Reject.
type fakeAggregator struct {
	mu        sync.Mutex
	retryNext int             // answer Retry to this many batches first
	retryAll  bool            // answer Retry to every batch
	reject    map[uint64]bool // seqs to reject
	hangNext  int             // store this many batches, then never answer them
	release   chan struct{}   // closed to let hung handlers return
	stored    map[uint64][]uint64
	wires     map[uint64][][]byte // every payload received, per seq
	configs   int
}

func newFake() *fakeAggregator {
	return &fakeAggregator{reject: map[uint64]bool{}, stored: map[uint64][]uint64{}, wires: map[uint64][][]byte{}, release: make(chan struct{})}
}

func (f *fakeAggregator) HandleBatch(_ context.Context, wire []byte, _ protocol.Peer) protocol.Ack {
	b, err := protocol.DecodeBatch(wire)
	if err != nil {
		return protocol.Ack{Status: protocol.AckReject, Reason: err.Error()}
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.wires[b.Seq] = append(f.wires[b.Seq], bytes.Clone(wire))
	switch {
	case f.retryAll:
		return protocol.Ack{Status: protocol.AckRetry, Reason: "database unavailable"}
	case f.retryNext > 0:
		f.retryNext--
		return protocol.Ack{Status: protocol.AckRetry, Reason: "database unavailable"}
	case f.reject[b.Seq]:
		return protocol.Ack{Status: protocol.AckReject, Reason: "test rejects this seq"}
	}
	if _, dup := f.stored[b.Seq]; dup {
		return protocol.Ack{Status: protocol.AckOK, Duplicate: true}
	}
	ids := make([]uint64, len(b.Events))
	for i, e := range b.Events {
		ids[i] = e.Visitor
	}
	f.stored[b.Seq] = ids
	if f.hangNext > 0 {
		// Stored, but the agent never hears so: it must resend, and the
		// resend must be recognized as the same batch.
		f.hangNext--
		f.mu.Unlock()
		<-f.release
		f.mu.Lock()
	}
	return protocol.Ack{Status: protocol.AckOK, Stored: len(ids)}
}

// seqs returns the seqs stored.
func (f *fakeAggregator) seqs() []uint64 {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := make([]uint64, 0, len(f.stored))
	for seq := range f.stored {
		out = append(out, seq)
	}
	return out
}

func (f *fakeAggregator) HandleConfig(_ context.Context, req protocol.ConfigRequest, _ protocol.Peer) (*protocol.Config, error) {
	f.mu.Lock()
	f.configs++
	f.mu.Unlock()
	return &protocol.Config{
		Version: protocol.Version,
		Sites:   []protocol.Site{{ID: 7, MeasurementID: "G-SHIPTEST", Domains: []string{req.AgentID}}},
		Salts:   []protocol.Salt{{Site: 7, Day: "2026-03-01", Key: make([]byte, 32)}},
	}, nil
}

// storedIDs returns how often each event id is stored.
func (f *fakeAggregator) storedIDs() map[uint64]int {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := map[uint64]int{}
	for _, ids := range f.stored {
		for _, id := range ids {
			out[id]++
		}
	}
	return out
}

// received returns how many batch payloads arrived for seq, and whether all
// of them were byte-identical.
func (f *fakeAggregator) received(seq uint64) (n int, identical bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	w := f.wires[seq]
	for _, x := range w[min(1, len(w)):] {
		if !bytes.Equal(x, w[0]) {
			return len(w), false
		}
	}
	return len(w), true
}

// testCerts makes a dev CA and returns server and client TLS configs.
func testCerts(t *testing.T) (srv, cli *tls.Config) {
	t.Helper()
	certs, err := protocol.EnsureDevCerts(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	if srv, err = protocol.ServerTLS(certs.Cert, certs.Key, ""); err != nil {
		t.Fatal(err)
	}
	if cli, err = protocol.ClientTLS(certs.CA, "", ""); err != nil {
		t.Fatal(err)
	}
	return srv, cli
}

// server is a protocol.Server running in the test, stoppable and
// restartable on the same address.
type server struct {
	t      *testing.T
	addr   string
	tls    *tls.Config
	h      protocol.Handler
	srv    *protocol.Server
	cancel context.CancelFunc
	done   chan struct{}
}

func startServer(t *testing.T, addr string, tlsConf *tls.Config, h protocol.Handler) *server {
	t.Helper()
	s := &server{t: t, addr: addr, tls: tlsConf, h: h}
	s.start()
	t.Cleanup(s.stop)
	if f, ok := h.(*fakeAggregator); ok {
		// Runs before stop: Serve waits for handlers to return.
		t.Cleanup(func() { close(f.release) })
	}
	return s
}

func (s *server) start() {
	s.t.Helper()
	var err error
	// A just-closed socket may linger briefly; poll rather than sleep.
	deadline := time.Now().Add(10 * time.Second)
	for {
		s.srv, err = protocol.Listen(s.addr, s.tls, s.h, slog.New(slog.NewTextHandler(io.Discard, nil)))
		if err == nil || time.Now().After(deadline) {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err != nil {
		s.t.Fatal(err)
	}
	s.addr = s.srv.Addr().String()
	ctx, cancel := context.WithCancel(context.Background())
	s.cancel, s.done = cancel, make(chan struct{})
	go func() { defer close(s.done); _ = s.srv.Serve(ctx) }()
}

func (s *server) stop() {
	if s.cancel == nil {
		return
	}
	s.cancel()
	_ = s.srv.Close()
	<-s.done
	s.cancel = nil
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t *testing.T, what string, within time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", within, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
