package ingest

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"net"
	neturl "net/url"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/avila-analytics/avila/aggregator/write"
	"github.com/avila-analytics/avila/internal/testenv"
	"github.com/avila-analytics/avila/protocol"
	"github.com/avila-analytics/avila/storage/postgres"
)

func TestMain(m *testing.M) { os.Exit(testenv.Run(m)) }

var now0 = time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)

func openStore(t testing.TB, url string) *postgres.Store {
	t.Helper()
	ctx := context.Background()
	s, err := postgres.Open(ctx, url, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	if err := s.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	return s
}

func newHandler(s *postgres.Store) *Handler {
	return New(Options{Now: func() time.Time { return now0 }}, s, derived(s))
}

// derivedWriter stages each batch and derives it before answering, so a
// test reads the events tables right after a batch.
type derivedWriter struct{ *write.Writer }

func derived(s *postgres.Store) derivedWriter {
	return derivedWriter{write.New(write.Config{}, s)}
}

func (w derivedWriter) WriteBatch(ctx context.Context, agent string, seq uint64, ev []protocol.Event, dead []postgres.DeadLetter) (postgres.StageResult, error) {
	res, err := w.Writer.WriteBatch(ctx, agent, seq, ev, dead)
	if err != nil {
		return res, err
	}
	return res, w.Flush(ctx)
}

func (w derivedWriter) WriteWireBatch(ctx context.Context, agent string, seq uint64, ev []protocol.Event, wire []byte) (postgres.StageResult, error) {
	res, err := w.Writer.WriteWireBatch(ctx, agent, seq, ev, wire)
	if err != nil {
		return res, err
	}
	return res, w.Flush(ctx)
}

func events(site uint32, n int) []protocol.Event {
	out := make([]protocol.Event, n)
	for i := range out {
		out[i] = protocol.Event{Site: site, TimeMicros: now0.Add(-time.Duration(i) * time.Second).UnixMicro(),
			Name: "page_view", Visitor: uint64(i), Path: "/", Host: "example.com"}
	}
	return out
}

func wire(t *testing.T, agent string, seq uint64, ev []protocol.Event) []byte {
	t.Helper()
	b, err := protocol.EncodeBatch(&protocol.Batch{Version: protocol.Version, AgentID: agent, Seq: seq, Events: ev})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func count(t *testing.T, db *pgxpool.Pool, sql string) int {
	t.Helper()
	var n int
	if err := db.QueryRow(context.Background(), sql).Scan(&n); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
	return n
}

func TestHandleBatch(t *testing.T) {
	url := testenv.PostgresURL(t)
	s, db := openStore(t, url), testenv.Pool(t, url)
	ctx := context.Background()
	site, err := s.CreateSite(ctx, postgres.SiteSpec{Name: "a"})
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	clock := now0
	h := New(Options{Now: func() time.Time { mu.Lock(); defer mu.Unlock(); return clock }}, s, derived(s))

	ack := h.HandleBatch(ctx, wire(t, "agent-1", 1, events(site.ID, 50)), protocol.Peer{})
	if ack.Status != protocol.AckOK || ack.Stored != 50 || ack.DeadLetters != 0 || ack.Duplicate {
		t.Fatalf("good batch: %+v", ack)
	}
	if n := count(t, db, "SELECT count(*) FROM events WHERE flags & 256 = 0"); n != 50 {
		t.Fatalf("%d events stored, want 50", n)
	}

	ack = h.HandleBatch(ctx, wire(t, "agent-1", 1, events(site.ID, 50)), protocol.Peer{})
	if ack.Status != protocol.AckOK || !ack.Duplicate || ack.Stored != 0 {
		t.Fatalf("resent batch: %+v, want OK duplicate", ack)
	}
	if n := count(t, db, "SELECT count(*) FROM events WHERE flags & 256 = 0"); n != 50 {
		t.Fatalf("%d events after resend, want 50", n)
	}

	// A site created after the handler cached the list: the batch is retried
	// until the list may be read again, then the site is found.
	later, _ := s.CreateSite(ctx, postgres.SiteSpec{Name: "b"})
	ev := events(later.ID, 1)
	if ack = h.HandleBatch(ctx, wire(t, "agent-1", 10, ev), protocol.Peer{}); ack.Status != protocol.AckRetry || !strings.Contains(ack.Reason, "refreshed") {
		t.Fatalf("new site within the refresh period: %+v, want Retry", ack)
	}
	mu.Lock()
	clock = clock.Add(siteRefreshEvery)
	mu.Unlock()
	ev = events(site.ID, 10)
	ev[3].Name = ""
	ev[5].Site = later.ID
	ack = h.HandleBatch(ctx, wire(t, "agent-1", 2, ev), protocol.Peer{})
	if ack.Status != protocol.AckOK || ack.Stored != 9 || ack.DeadLetters != 1 {
		t.Fatalf("batch with one bad event: %+v", ack)
	}
	var idx int
	var reason string
	var body []byte
	if err := db.QueryRow(ctx, "SELECT idx, reason, event FROM dead_letters WHERE seq = 2").Scan(&idx, &reason, &body); err != nil {
		t.Fatal(err)
	}
	var back protocol.Event
	if err := protocol.DecodeEvent(body, &back); err != nil || back.Visitor != 3 {
		t.Errorf("dead letter body: %+v, %v", back, err)
	}
	if idx != 3 || reason != "name: missing event name (rule event_name_required)" {
		t.Errorf("dead letter idx %d reason %q", idx, reason)
	}

	for _, garbage := range [][]byte{nil, []byte("not zstd"), wire(t, "", 3, nil)} {
		ack = h.HandleBatch(ctx, garbage, protocol.Peer{})
		if ack.Status != protocol.AckReject || ack.Reason == "" {
			t.Errorf("garbage %q: %+v, want Reject with a reason", garbage, ack)
		}
	}
}

func TestHandleBatchDeadLetterReasons(t *testing.T) {
	url := testenv.PostgresURL(t)
	s, db := openStore(t, url), testenv.Pool(t, url)
	ctx := context.Background()
	site, _ := s.CreateSite(ctx, postgres.SiteSpec{Name: "a"})
	h := newHandler(s)
	f := func(seq uint64, mutate func(e *protocol.Event), rule, want string) {
		t.Helper()
		ev := events(site.ID, 2)
		mutate(&ev[1])
		before := counterValue(t, h.opts.Metrics.dead.WithLabelValues(rule))
		ack := h.HandleBatch(ctx, wire(t, "agent-r", seq, ev), protocol.Peer{})
		if ack.Status != protocol.AckOK || ack.Stored != 1 || ack.DeadLetters != 1 {
			t.Fatalf("%s: %+v", want, ack)
		}
		if rule != "unknown_site" { // (a resend of which would wait for the site list)
			// The resend finds the batch stored: its dead letter is counted once.
			if ack := h.HandleBatch(ctx, wire(t, "agent-r", seq, ev), protocol.Peer{}); !ack.Duplicate {
				t.Fatalf("%s: resend %+v, want a duplicate", want, ack)
			}
		}
		if got := counterValue(t, h.opts.Metrics.dead.WithLabelValues(rule)) - before; got != 1 {
			t.Errorf("analytics_dead_letters_total{rule=%q} grew by %v, want 1", rule, got)
		}
		var reason string
		if err := db.QueryRow(ctx, "SELECT reason FROM dead_letters WHERE agent_id = 'agent-r' AND seq = $1", int64(seq)).Scan(&reason); err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(reason, want) || !strings.Contains(reason, "(rule "+rule+")") {
			t.Errorf("reason %q lacks %q or the rule %s", reason, want, rule)
		}
	}
	f(1, func(e *protocol.Event) { e.Site = 4242 }, "unknown_site", "unknown site 4242")
	f(2, func(e *protocol.Event) { e.Name = strings.Repeat("é", 41) }, "event_name_length", "41 characters, GA4 allows 40")
	f(3, func(e *protocol.Event) { e.TimeMicros = now0.Add(2 * time.Hour).UnixMicro() }, "event_time", "ahead of the aggregator's clock")
	f(4, func(e *protocol.Event) { e.TimeMicros = 0 }, "event_time", "before 2000-01-01")
	f(5, func(e *protocol.Event) { e.Path = "/" + strings.Repeat("a", 1000) }, "page_location_length", "path: 1001 characters")
	f(6, func(e *protocol.Event) { e.Title = "bad \xff" }, "invalid_utf8", "title: not valid UTF-8")
	f(7, func(e *protocol.Event) { e.City = "a\x00b" }, "nul_byte", "city: contains a NUL character")
	f(8, func(e *protocol.Event) { e.Params = map[string]string{"k": strings.Repeat("v", 101)} }, "param_value_length", "101 characters")
}

func TestHandleConfig(t *testing.T) {
	s := openStore(t, testenv.PostgresURL(t))
	ctx := context.Background()
	site, _ := s.CreateSite(ctx, postgres.SiteSpec{Name: "a", Domains: []string{"example.com"}, TimeZone: "Europe/Madrid",
		Policy: postgres.SitePolicy{DNT: "cookieless", KeepParams: []string{"ref"}, Identity: postgres.IdentityCookieless}})
	if err := s.EnsureSalts(ctx, now0); err != nil {
		t.Fatal(err)
	}
	clock := now0
	h := New(Options{Now: func() time.Time { return clock }}, s, derived(s))
	cfg, err := h.HandleConfig(ctx, protocol.ConfigRequest{Version: protocol.Version, AgentID: "a"}, protocol.Peer{})
	if err != nil {
		t.Fatal(err)
	}
	if len(cfg.Sites) != 1 || cfg.Sites[0].ID != site.ID || cfg.Sites[0].MeasurementID != site.MeasurementID ||
		cfg.Sites[0].APISecret != site.APISecret || cfg.Sites[0].TimeZone != "Europe/Madrid" || cfg.Sites[0].Domains[0] != "example.com" ||
		cfg.Sites[0].DNT != "cookieless" || len(cfg.Sites[0].KeepParams) != 1 || cfg.Sites[0].KeepParams[0] != "ref" ||
		cfg.Sites[0].Identity != protocol.IdentityCookieless || !bytes.Equal(cfg.Sites[0].IdentitySecret, site.IdentitySecret) ||
		len(site.IdentitySecret) != 32 {
		t.Errorf("sites %+v", cfg.Sites)
	}
	if len(cfg.Salts) != 2 || cfg.Salts[0].Day != "2025-06-01" || cfg.Salts[1].Day != "2025-06-02" || cfg.Version != protocol.Version {
		t.Errorf("config %+v", cfg)
	}
	// Cached for a few seconds, then read again.
	_, _ = s.CreateSite(ctx, postgres.SiteSpec{Name: "b"})
	if cfg, _ = h.HandleConfig(ctx, protocol.ConfigRequest{Version: protocol.Version}, protocol.Peer{}); len(cfg.Sites) != 1 {
		t.Errorf("config not cached: %d sites", len(cfg.Sites))
	}
	clock = clock.Add(configTTL)
	if cfg, _ = h.HandleConfig(ctx, protocol.ConfigRequest{Version: protocol.Version}, protocol.Peer{}); len(cfg.Sites) != 2 {
		t.Errorf("config not refreshed: %d sites", len(cfg.Sites))
	}
	if _, err := h.HandleConfig(ctx, protocol.ConfigRequest{Version: 99}, protocol.Peer{}); err == nil {
		t.Error("unknown config request version accepted")
	}
}

// TestHandleBatchDatabaseDown stops the database under the handler (by
// cutting a proxy in front of it) and expects Retry, then OK once it is back.
func TestHandleBatchDatabaseDown(t *testing.T) {
	url := testenv.PostgresURL(t)
	direct := openStore(t, url)
	ctx := context.Background()
	site, _ := direct.CreateSite(ctx, postgres.SiteSpec{Name: "a"})

	u, err := neturl.Parse(url)
	if err != nil {
		t.Fatal(err)
	}
	p := startProxy(t, u.Host)
	u.Host = p.addr
	q := u.Query()
	q.Set("connect_timeout", "2")
	u.RawQuery = q.Encode()
	s := openStore(t, u.String())
	h := newHandler(s)
	if ack := h.HandleBatch(ctx, wire(t, "agent-d", 1, events(site.ID, 5)), protocol.Peer{}); ack.Status != protocol.AckOK {
		t.Fatalf("before outage: %+v", ack)
	}
	p.stop()
	ack := h.HandleBatch(ctx, wire(t, "agent-d", 2, events(site.ID, 5)), protocol.Peer{})
	if ack.Status != protocol.AckRetry || !strings.Contains(ack.Reason, "storage unavailable") {
		t.Fatalf("database down: %+v, want Retry with reason", ack)
	}
	if n := count(t, testenv.Pool(t, url), "SELECT count(*) FROM events WHERE flags & 256 = 0"); n != 5 {
		t.Fatalf("%d events, want 5", n)
	}
	p.restart(t)
	deadline := time.Now().Add(20 * time.Second)
	for {
		ack = h.HandleBatch(ctx, wire(t, "agent-d", 2, events(site.ID, 5)), protocol.Peer{})
		if ack.Status == protocol.AckOK || time.Now().After(deadline) {
			break
		}
	}
	if ack.Status != protocol.AckOK || ack.Stored != 5 {
		t.Fatalf("after outage: %+v", ack)
	}
}

// proxy forwards TCP connections to a database; stop closes the listener and
// every connection, as a stopped server would.
type proxy struct {
	addr, target string
	mu           sync.Mutex
	ln           net.Listener
	conns        []net.Conn
	wg           sync.WaitGroup
}

func startProxy(t *testing.T, target string) *proxy {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &proxy{addr: ln.Addr().String(), target: target}
	p.serve(ln)
	t.Cleanup(func() { p.stop(); p.wg.Wait() })
	return p
}

func (p *proxy) restart(t *testing.T) {
	ln, err := net.Listen("tcp", p.addr)
	if err != nil {
		t.Fatal(err)
	}
	p.serve(ln)
}

func (p *proxy) serve(ln net.Listener) {
	p.mu.Lock()
	p.ln = ln
	p.mu.Unlock()
	p.wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			up, err := net.Dial("tcp", p.target)
			if err != nil {
				c.Close()
				continue
			}
			p.mu.Lock()
			p.conns = append(p.conns, c, up)
			p.mu.Unlock()
			p.wg.Go(func() { _, _ = io.Copy(up, c); up.Close() })
			p.wg.Go(func() { _, _ = io.Copy(c, up); c.Close() })
		}
	})
}

func (p *proxy) stop() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.ln.Close()
	for _, c := range p.conns {
		c.Close()
	}
	p.conns = nil
}

func counterValue(t *testing.T, c prometheus.Counter) float64 {
	t.Helper()
	var m dto.Metric
	if err := c.Write(&m); err != nil {
		t.Fatal(err)
	}
	return m.GetCounter().GetValue()
}
