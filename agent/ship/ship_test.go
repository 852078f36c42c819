package ship

import (
	"context"
	"crypto/tls"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/avila-analytics/avila/agent/queue"
	"github.com/avila-analytics/avila/protocol"
)

type rig struct {
	t       *testing.T
	path    string
	q       *queue.Queue
	s       *Shipper
	configs atomic.Int64
	nextID  atomic.Uint64
	cancel  context.CancelFunc
	done    chan struct{}
}

// newRig opens a queue and runs a Shipper on it against addrs.
func newRig(t *testing.T, cli *tls.Config, addrs ...string) *rig {
	t.Helper()
	path := filepath.Join(t.TempDir(), "queue.db")
	q, err := queue.Open(queue.Options{Path: path})
	if err != nil {
		t.Fatal(err)
	}
	r := &rig{t: t, q: q, path: path}
	r.s, err = New(Options{Aggregators: addrs, TLS: cli, SegmentEvents: 50, SealInterval: 20 * time.Millisecond, InFlight: 3,
		SendTimeout: time.Second, ConfigRefresh: 100 * time.Millisecond}, q,
		func(*protocol.Config) { r.configs.Add(1) })
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	r.cancel, r.done = cancel, make(chan struct{})
	go func() { defer close(r.done); _ = r.s.Run(ctx) }()
	t.Cleanup(func() { r.stop(); _ = q.Close() })
	return r
}

func (r *rig) stop() {
	r.cancel()
	<-r.done
}

// append stores n events from 4 concurrent callers and returns their ids.
func (r *rig) append(n int) []uint64 {
	r.t.Helper()
	ids := make([]uint64, n)
	for i := range ids {
		ids[i] = r.nextID.Add(1)
	}
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Go(func() {
			for i := w; i < n; i += 4 {
				e, _ := protocol.EncodeEvent(&protocol.Event{Site: 7, Name: "page_view", Visitor: ids[i]})
				if err := r.q.Append(context.Background(), [][]byte{e}); err != nil {
					r.t.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	return ids
}

// waitDelivered waits until every id is stored and the queue is empty, then
// checks that each id is stored exactly once.
func waitDelivered(t *testing.T, r *rig, f *fakeAggregator, ids []uint64, within time.Duration) {
	t.Helper()
	waitFor(t, "every event stored and the queue drained", within, func() bool {
		st := r.q.Stats()
		return len(f.storedIDs()) >= len(ids) && st.Pending == 0 && st.Segments == 0
	})
	got := f.storedIDs()
	for _, id := range ids {
		if got[id] != 1 {
			t.Fatalf("event %d stored %d times, want once", id, got[id])
		}
	}
	if len(got) != len(ids) {
		t.Fatalf("%d events stored, %d appended", len(got), len(ids))
	}
}

func TestShipDeliversAndCachesConfig(t *testing.T) {
	srvTLS, cliTLS := testCerts(t)
	f := newFake()
	srv := startServer(t, "127.0.0.1:0", srvTLS, f)
	r := newRig(t, cliTLS, srv.addr)
	if cfg, err := LoadCachedConfig(r.q); cfg != nil || err != nil {
		t.Fatalf("cached config before any fetch = %+v, %v", cfg, err)
	}
	ids := r.append(1000)
	waitDelivered(t, r, f, ids, 20*time.Second)
	waitFor(t, "config fetched and refreshed", 10*time.Second, func() bool { return r.configs.Load() >= 2 })
	st := r.s.Stats()
	if st.AckedOK == 0 || st.AckedOK != st.Sent || st.LastAck.IsZero() || st.Retries != 0 {
		t.Fatalf("stats = %+v", st)
	}
	// 1000 events, at most 50 per segment.
	if segs := len(f.seqs()); segs < 20 {
		t.Fatalf("%d segments for 1000 events with SegmentEvents 50", segs)
	}
	// An agent restarted while no aggregator answers still has its config.
	r.stop()
	agent := r.q.AgentID()
	if err := r.q.Close(); err != nil {
		t.Fatal(err)
	}
	q, err := queue.Open(queue.Options{Path: r.path})
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()
	cfg, err := LoadCachedConfig(q)
	if err != nil || cfg == nil || len(cfg.Sites) != 1 || cfg.Sites[0].MeasurementID != "G-SHIPTEST" || cfg.Sites[0].Domains[0] != agent {
		t.Fatalf("cached config after reopen = %+v, %v", cfg, err)
	}
}

func TestNewValidates(t *testing.T) {
	q, err := queue.Open(queue.Options{Path: filepath.Join(t.TempDir(), "queue.db")})
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()
	ok := Options{Aggregators: []string{"127.0.0.1:4433"}, TLS: &tls.Config{}}
	f := func(name string, mutate func(*Options), want string) {
		t.Helper()
		o := ok
		mutate(&o)
		_, err := New(o, q, nil)
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Fatalf("%s: New = %v, want an error saying %q", name, err, want)
		}
	}
	f("no aggregator", func(o *Options) { o.Aggregators = nil }, "aggregator")
	f("no tls", func(o *Options) { o.TLS = nil }, "TLS")
	f("huge segments", func(o *Options) { o.SegmentEvents = protocol.MaxBatchEvents + 1 }, "segment events")
	f("negative timeout", func(o *Options) { o.SendTimeout = -time.Second }, "negative")
	s, err := New(ok, q, nil)
	if err != nil {
		t.Fatal(err)
	}
	if s.opts.SegmentEvents != DefaultSegmentEvents || s.opts.InFlight != DefaultInFlight || s.opts.SealInterval != DefaultSealInterval {
		t.Fatalf("defaults not applied: %+v", s.opts)
	}
}

func TestShipResendsSameBytesAfterRetry(t *testing.T) {
	srvTLS, cliTLS := testCerts(t)
	f := newFake()
	f.retryNext = 6
	srv := startServer(t, "127.0.0.1:0", srvTLS, f)
	r := newRig(t, cliTLS, srv.addr)
	ids := r.append(400)
	waitDelivered(t, r, f, ids, 30*time.Second)
	resent := 0
	for _, seq := range f.seqs() {
		n, same := f.received(seq)
		if !same {
			t.Fatalf("segment %d resent with different bytes", seq)
		}
		if n > 1 {
			resent++
		}
	}
	if resent == 0 {
		t.Fatal("no segment was resent after Retry answers")
	}
	if st := r.s.Stats(); st.AckedRetry != 6 || st.Retries != 6 {
		t.Fatalf("stats = %+v, want 6 retries", st)
	}
}

// A batch stored but never answered (connection lost, aggregator stuck) is
// resent with the same bytes and stored once.
func TestShipResendsWhenAnswerLost(t *testing.T) {
	srvTLS, cliTLS := testCerts(t)
	f := newFake()
	f.hangNext = 2
	srv := startServer(t, "127.0.0.1:0", srvTLS, f)
	r := newRig(t, cliTLS, srv.addr)
	ids := r.append(300)
	waitDelivered(t, r, f, ids, 30*time.Second)
	resent := 0
	for _, seq := range f.seqs() {
		n, same := f.received(seq)
		if !same {
			t.Fatalf("segment %d resent with different bytes", seq)
		}
		if n > 1 {
			resent++
		}
	}
	if st := r.s.Stats(); resent < 2 || st.Errors < 2 {
		t.Fatalf("%d segments resent, stats %+v; want at least 2 of each", resent, st)
	}
}

func TestShipRejectSetsAside(t *testing.T) {
	srvTLS, cliTLS := testCerts(t)
	f := newFake()
	f.reject[2] = true
	srv := startServer(t, "127.0.0.1:0", srvTLS, f)
	r := newRig(t, cliTLS, srv.addr)
	// Sealing runs on its own clock; three calls give at least two segments.
	r.append(30)
	waitFor(t, "segment 1 sealed", 10*time.Second, func() bool { n, _ := f.received(1); return n > 0 })
	r.append(30)
	waitFor(t, "segment 2 sent", 10*time.Second, func() bool { n, _ := f.received(2); return n > 0 })
	r.append(30)
	waitFor(t, "segment 2 set aside and the rest delivered", 10*time.Second, func() bool {
		st := r.q.Stats()
		return st.Rejected == 1 && st.Segments == 0 && st.Pending == 0
	})
	if _, _, err := r.q.Rejected(2); err != nil {
		t.Fatalf("rejected segment 2 not kept: %v", err)
	}
	if n, _ := f.received(2); n != 1 {
		t.Fatalf("rejected segment sent %d times, want once", n)
	}
	if st := r.s.Stats(); st.AckedReject != 1 {
		t.Fatalf("stats = %+v", st)
	}
}

// A failing first aggregator (answering Retry) makes the shipper move on to
// the next one.
func TestShipFailsOver(t *testing.T) {
	srvTLS, cliTLS := testCerts(t)
	bad, good := newFake(), newFake()
	bad.retryAll = true
	srvBad := startServer(t, "127.0.0.1:0", srvTLS, bad)
	srvGood := startServer(t, "127.0.0.1:0", srvTLS, good)
	r := newRig(t, cliTLS, srvBad.addr, srvGood.addr)
	ids := r.append(200)
	waitDelivered(t, r, good, ids, 20*time.Second)
	if st := r.s.Stats(); st.Aggregator != srvGood.addr {
		t.Fatalf("aggregator in use %s, want %s", st.Aggregator, srvGood.addr)
	}
}

// With the aggregator stopped, sealing goes on and sends fail; once it is
// back on the same address, it receives the rest.
func TestShipSurvivesAggregatorRestart(t *testing.T) {
	srvTLS, cliTLS := testCerts(t)
	f := newFake()
	srv := startServer(t, "127.0.0.1:0", srvTLS, f)
	r := newRig(t, cliTLS, srv.addr)
	ids := r.append(300)
	waitDelivered(t, r, f, ids, 20*time.Second)

	srv.stop()
	start := time.Now()
	ids = append(ids, r.append(300)...)
	waitFor(t, "sealing while the aggregator is down", 10*time.Second, func() bool {
		st := r.q.Stats()
		return st.Pending == 0 && st.Segments >= 6
	})
	waitFor(t, "a failed send", 60*time.Second, func() bool { return r.s.Stats().Errors > 0 })
	t.Logf("first failed send after %v", time.Since(start))
	srv.start()
	waitDelivered(t, r, f, ids, 60*time.Second)
	t.Logf("delivered after restart in %v", time.Since(start))
}
