package agent_test

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/avila-analytics/avila/agent"
)

// TestListenerTransport covers what the agent's listener decides before a
// handler runs, and what it must keep of net/http's behaviour: header and
// body bounds answered with the reason, a chunked body read whole, the
// handlers' own body limit, and request ids from one sequence on native
// and adapted paths alike.
func TestListenerTransport(t *testing.T) {
	p := newPipeline(t)
	site := p.createSite()
	a := p.startAgent()
	waitReady(t, a)
	collect := a.URL + "/g/collect?" + url.Values{"v": {"2"}, "tid": {site.MeasurementID}, "dl": {"https://shop.test/"}}.Encode()
	send := func(req *http.Request) (*http.Response, string) {
		t.Helper()
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp, string(b)
	}

	// Headers past the bound: 431 naming it.
	req, _ := http.NewRequest(http.MethodGet, collect+"&en=page_view", nil)
	req.Header.Set("X-Padding", strings.Repeat("p", 20<<10))
	if resp, body := send(req); resp.StatusCode != http.StatusRequestHeaderFieldsTooLarge || !strings.Contains(body, "larger than 16384 bytes") {
		t.Errorf("20 KiB of headers: %d %q, want 431 naming the bound", resp.StatusCode, body)
	}

	// A body past the largest any endpoint takes is refused by the
	// listener; one past /g/collect's own limit by the handler, with GA4's
	// rule. Both are 413 with the limit in the reason.
	for _, c := range []struct {
		size int
		want string
	}{{200_000, "body larger than 130000 bytes"}, {20 << 10, "body larger than 16384 bytes, GA4's limit"}} {
		req, _ := http.NewRequest(http.MethodPost, collect, strings.NewReader("en=page_view&"+strings.Repeat("x", c.size)))
		req.Header.Set("Content-Type", "text/plain")
		if resp, body := send(req); resp.StatusCode != http.StatusRequestEntityTooLarge || !strings.Contains(body, c.want) {
			t.Errorf("%d-byte body: %d %q, want 413 with %q", c.size, resp.StatusCode, body, c.want)
		}
	}

	// A client that writes its whole body before reading (as curl and
	// most clients other than Go's do) reads the listener's 413: the
	// listener closes lingering, reading the rest away, where a plain close
	// with unread bytes would reset the connection under the client.
	c := rawConn(t, a, "")
	wrote := make(chan error, 1)
	go func() {
		_, err := fmt.Fprintf(c, "POST /g/collect?v=2 HTTP/1.1\r\nHost: a\r\nContent-Length: 1000000\r\n\r\n%s", strings.Repeat("x", 1_000_000))
		wrote <- err
	}()
	if err := <-wrote; err != nil {
		t.Errorf("writing a 1 MB body: %v, want it read away", err)
	}
	if got, err := io.ReadAll(c); err != nil || !strings.HasPrefix(string(got), "HTTP/1.1 413") || !strings.Contains(string(got), "body larger than 130000 bytes") {
		t.Errorf("1 MB body written whole: %q, %v; want the 413", got, err)
	}

	// A chunked body (no Content-Length) reaches the parser whole: its
	// second line breaks a rule and the answer names that line.
	body := "en=page_view\nen=" + strings.Repeat("y", 41) + "\n"
	req, _ = http.NewRequest(http.MethodPost, collect, io.MultiReader(strings.NewReader(body)))
	req.TransferEncoding = []string{"chunked"}
	req.Header.Set("Content-Type", "text/plain")
	resp, msg := send(req)
	if resp.StatusCode != http.StatusBadRequest || !strings.Contains(msg, "line 2") {
		t.Errorf("chunked body: %d %q, want 400 naming line 2", resp.StatusCode, msg)
	}

	// Native and adapted paths take ids from one sequence: same prefix,
	// different ids.
	ids := map[string]string{}
	for _, path := range []string{"/healthz", "/g/collect?v=2&tid=" + site.MeasurementID + "&en=page_view&dl=https%3A%2F%2Fshop.test%2F", "/t.js"} {
		req, _ := http.NewRequest(http.MethodGet, a.URL+path, nil)
		resp, _ := send(req)
		id := resp.Header.Get("X-Request-Id")
		prefix, _, ok := strings.Cut(id, "-")
		if !ok {
			t.Fatalf("%s: X-Request-Id %q", path, id)
		}
		ids[id] = prefix
	}
	prefixes := map[string]bool{}
	for _, prefix := range ids {
		prefixes[prefix] = true
	}
	if len(ids) != 3 || len(prefixes) != 1 {
		t.Errorf("request ids %v: want three ids with one prefix", ids)
	}
}

// rawExchange sends req on a new connection from local (empty: any) and
// returns the whole answer the agent sends before closing.
func rawExchange(t *testing.T, a *agent.Agent, local, req string) string {
	t.Helper()
	c := rawConn(t, a, local)
	if _, err := io.WriteString(c, req); err != nil {
		t.Fatal(err)
	}
	// A bound against hanging only: every answer here comes at once, and
	// the read timeout that would answer otherwise is 30 s.
	_ = c.SetReadDeadline(time.Now().Add(20 * time.Second))
	b, err := io.ReadAll(c)
	if err != nil {
		t.Fatalf("reading the answer to %q: %v (got %q)", req, err, b)
	}
	return string(b)
}

// rawConn is a TCP connection to a from the loopback address local (empty:
// any), closed at the test's end.
func rawConn(t *testing.T, a *agent.Agent, local string) net.Conn {
	t.Helper()
	d := net.Dialer{}
	if local != "" {
		d.LocalAddr = &net.TCPAddr{IP: net.ParseIP(local)}
	}
	c, err := d.Dial("tcp", strings.TrimPrefix(a.URL, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// TestListenerFraming: a head with bare LF line endings is answered 400
// with the reason, not left waiting for the read timeout's 408; an HTTP
// version other than 1.x is answered 505 naming it; HTTP/1.0 is served.
func TestListenerFraming(t *testing.T) {
	p := newPipeline(t)
	a := p.startAgent()
	f := func(req, wantStatus, wantReason string) {
		t.Helper()
		got := rawExchange(t, a, "", req)
		if !strings.HasPrefix(got, "HTTP/1.1 "+wantStatus) || !strings.Contains(got, wantReason) {
			t.Errorf("%q: answer %q, want %s saying %q", req, got, wantStatus, wantReason)
		}
	}
	f("GET /healthz HTTP/1.1\nHost: a\n\n", "400", "ends in a bare LF, not CRLF")
	f("GET /healthz HTTP/1.1\r\nHost: a\nConnection: close\r\n\r\n", "400", "ends in a bare LF, not CRLF")
	f("POST /g/collect?v=2 HTTP/1.1\nHost: a\nContent-Length: 13\n\nen=page_view\n", "400", "ends in a bare LF, not CRLF")
	f("GET /healthz HTTP/9.9\r\nHost: a\r\n\r\n", "505", "HTTP version HTTP/9.9 is not supported")
	f("GET /g/collect?v=2 HTTP/2.0\r\nHost: a\r\n\r\n", "505", "HTTP version HTTP/2.0 is not supported")
	f("GET /healthz HTTP/1.0\r\n\r\n", "200", "ok")

	// A bare LF in the second request of a keep-alive connection.
	c := rawConn(t, a, "")
	_, _ = io.WriteString(c, "GET /healthz HTTP/1.1\r\nHost: a\r\n\r\n")
	r := bufio.NewReader(c)
	resp, err := http.ReadResponse(r, nil)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("first request: %v %v", resp, err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	_, _ = io.WriteString(c, "GET /healthz HTTP/1.1\nHost: a\n\n")
	_ = c.SetReadDeadline(time.Now().Add(20 * time.Second))
	resp, err = http.ReadResponse(r, nil)
	if err != nil {
		t.Fatalf("second request: %v", err)
	}
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusBadRequest || !strings.Contains(string(body), "bare LF") {
		t.Fatalf("second request with bare LF: %d %q", resp.StatusCode, body)
	}
}

// TestListenerConnectionCaps: idle connections from one address fill its
// cap; its next connection is answered 503 with Retry-After while another
// address is served; the refusal is counted; when the idle connections
// close, the address is served again.
func TestListenerConnectionCaps(t *testing.T) {
	p := newPipeline(t)
	site := p.createSite()
	a := p.startAgent(func(c *agent.Config) { c.MaxConns, c.MaxConnsPerIP = 8, 3 })
	waitReady(t, a)
	http.DefaultClient.CloseIdleConnections() // waitReady's, from 127.0.0.1
	// Scrapes and hits come from 127.0.0.2.
	other := &http.Client{Transport: &http.Transport{DialContext: (&net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP("127.0.0.2")}}).DialContext}}
	open := func(want float64) {
		t.Helper()
		waitFor(t, 10*time.Second, fmt.Sprintf("%v open connections", want), func() error {
			// The scrape is a connection of its own.
			if n := scrapeWith(t, other, a.URL, "analytics_http_connections"); n != want+1 {
				return fmt.Errorf("%v open", n-1)
			}
			return nil
		})
	}
	open(0)
	idle := make([]net.Conn, 3)
	for i := range idle {
		idle[i] = rawConn(t, a, "127.0.0.1")
	}
	open(3)
	got := rawExchange(t, a, "127.0.0.1", "GET /healthz HTTP/1.1\r\nHost: a\r\n\r\n")
	if !strings.HasPrefix(got, "HTTP/1.1 503 ") || !strings.Contains(got, "Retry-After: 5\r\n") ||
		!strings.Contains(got, "too many open connections from your address (cap 3)") {
		t.Fatalf("fourth connection from 127.0.0.1: %q, want 503 with Retry-After naming the cap", got)
	}
	hitFrom := func(local, path string) int {
		t.Helper()
		client := &http.Client{Transport: &http.Transport{DialContext: (&net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(local)}}).DialContext}}
		defer client.CloseIdleConnections()
		u := a.URL + "/g/collect?" + url.Values{"v": {"2"}, "tid": {site.MeasurementID}, "en": {"page_view"}, "dl": {"https://shop.test" + path}}.Encode()
		req, _ := http.NewRequest(http.MethodGet, u, nil)
		req.Header.Set("User-Agent", testUA) // not a bot
		resp, err := client.Do(req)
		if err != nil {
			t.Fatalf("hit from %s: %v", local, err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if code := hitFrom("127.0.0.2", "/other-address"); code != http.StatusNoContent {
		t.Fatalf("hit from another address: %d, want 204", code)
	}
	if n := scrapeWith(t, other, a.URL, "analytics_http_connections_refused_total", "reason", "max_conns_per_ip"); n != 1 {
		t.Errorf("refused per address: %v, want 1", n)
	}
	if n := scrapeWith(t, other, a.URL, "analytics_http_max_connections_per_ip"); n != 3 {
		t.Errorf("analytics_http_max_connections_per_ip %v, want 3", n)
	}
	for _, c := range idle {
		_ = c.Close()
	}
	waitFor(t, 10*time.Second, "the address served again", func() error {
		if code := hitFrom("127.0.0.1", "/after-close"); code != http.StatusNoContent {
			return fmt.Errorf("hit: %d", code)
		}
		return nil
	})
	p.waitStored(site.ID, map[string]int{"/other-address": 1, "/after-close": 1})
}
