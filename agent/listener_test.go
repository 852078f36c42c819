package agent_test

import (
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
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
