package agent_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/avila-analytics/avila/agent"
)

// syncBuffer is a log sink safe for the agent's goroutines.
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

// TestDebugLogsHoldNoIPOrUserAgent runs an agent at debug level and sends
// it good, bad and unknown-site hits from a client address of its own
// (127.0.0.3) with a distinctive user agent and a forged X-Forwarded-For.
// None of these may reach the logs, while each request is logged with the
// id the agent answered in X-Request-Id.
func TestDebugLogsHoldNoIPOrUserAgent(t *testing.T) {
	const clientIP, forged, ua = "127.0.0.3", "198.51.100.23", "Mozilla/5.0 (X11) LeakCheck/9.9"
	p := newPipeline(t)
	site := p.createSite()
	var logs syncBuffer
	log := slog.New(slog.NewJSONHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	a, err := agent.Start(context.Background(), agent.Config{Listen: "127.0.0.1:0", DataDir: p.agentTo,
		Aggregators: []string{p.quic}, CAFile: p.agg.CAFile}, log)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = a.Shutdown(context.Background()) })
	client := &http.Client{Transport: &http.Transport{DialContext: (&net.Dialer{
		LocalAddr: &net.TCPAddr{IP: net.ParseIP(clientIP)}}).DialContext}}
	send := func(query url.Values) (int, string) {
		t.Helper()
		req, err := http.NewRequest(http.MethodGet, a.URL+"/g/collect?"+query.Encode(), nil)
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("User-Agent", ua)
		req.Header.Set("X-Forwarded-For", forged)
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode, resp.Header.Get("X-Request-Id")
	}
	good := url.Values{"v": {"2"}, "tid": {site.MeasurementID}, "cid": {"555.777"}, "en": {"page_view"},
		"dl": {"https://shop.test/secret-page?email=someone@example.com"}}
	waitFor(t, 30*time.Second, "a stored hit", func() error {
		if code, _ := send(good); code != http.StatusNoContent {
			return fmt.Errorf("hit answered %d", code)
		}
		return nil
	})
	var ids []string
	for _, q := range []url.Values{
		good,
		{"v": {"2"}, "tid": {"G-UNKNOWN1"}, "en": {"page_view"}},
		{"v": {"2"}, "tid": {site.MeasurementID}, "en": {strings.Repeat("x", 41)}},
	} {
		code, id := send(q)
		if id == "" || code == 0 {
			t.Fatalf("answer %d without X-Request-Id", code)
		}
		ids = append(ids, id)
	}
	// Requests the listener itself cannot take, which fasthttp logs with
	// the connection's addresses and a quote of the request: a body past
	// every limit, and a request line that is not HTTP.
	req, err := http.NewRequest(http.MethodPost, a.URL+"/g/collect?dl=https%3A%2F%2Fshop.test%2Fsecret-page",
		strings.NewReader(strings.Repeat("x", 200_000)))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("User-Agent", ua)
	if resp, err := client.Do(req); err != nil || resp.StatusCode != http.StatusRequestEntityTooLarge {
		t.Fatalf("oversized body: %v %v, want 413", resp, err)
	} else {
		resp.Body.Close()
	}
	conn, err := (&net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(clientIP)}}).Dial("tcp", strings.TrimPrefix(a.URL, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	_, _ = conn.Write([]byte("BROKEN\x00 /g/collect?dl=secret-page\r\nUser-Agent: " + ua + "\r\n\r\n"))
	answer, _ := io.ReadAll(conn)
	conn.Close()
	if !strings.HasPrefix(string(answer), "HTTP/1.1 400") {
		t.Fatalf("malformed request answered %q, want 400", answer)
	}
	waitFor(t, 10*time.Second, "fasthttp's own log records", func() error {
		if n := strings.Count(logs.String(), `"msg":"http server"`); n < 2 {
			return fmt.Errorf("%d records", n)
		}
		return nil
	})

	waitFor(t, 60*time.Second, "events shipped", func() error {
		if n := scrape(t, p.agg.OperatorURL, "analytics_events_processed_total", "outcome", "stored"); n < 2 {
			return fmt.Errorf("%v of 2 events shipped", n)
		}
		return nil
	})
	if err := a.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}

	out := logs.String()
	for _, secret := range []string{clientIP, forged, "LeakCheck", "secret-page", "someone@example.com", "555.777"} {
		if strings.Contains(out, secret) {
			t.Errorf("agent logs contain %q:\n%s", secret, out)
		}
	}
	logged := map[string]bool{}
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		var rec map[string]any
		if err := json.Unmarshal([]byte(line), &rec); err != nil {
			t.Fatalf("log line %q: %v", line, err)
		}
		if rec["msg"] == "request" && rec["path"] == "/g/collect" {
			id, _ := rec["request"].(string)
			logged[id] = true
		}
	}
	for _, id := range ids {
		if !logged[id] {
			t.Errorf("request %s not logged with its id (debug records: %v)", id, logged)
		}
	}
}
