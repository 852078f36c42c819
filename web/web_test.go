package web

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

func get(t *testing.T, h http.Handler, method, path string) *http.Response {
	t.Helper()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(method, path, nil))
	return rec.Result()
}

func TestIndexServedWithSecurityHeaders(t *testing.T) {
	res := get(t, Handler(), http.MethodGet, "/")
	body, _ := io.ReadAll(res.Body)
	if res.StatusCode != http.StatusOK {
		t.Fatalf("GET / = %d, want 200", res.StatusCode)
	}
	if ct := res.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/html") {
		t.Errorf("Content-Type = %q, want text/html", ct)
	}
	if !strings.Contains(string(body), `<script defer src="app.js"></script>`) {
		t.Errorf("index does not load app.js:\n%s", body)
	}
	csp := res.Header.Get("Content-Security-Policy")
	for _, want := range []string{"script-src 'self'", "connect-src 'self'", "frame-ancestors 'none'"} {
		if !strings.Contains(csp, want) {
			t.Errorf("Content-Security-Policy %q lacks %q", csp, want)
		}
	}
	if got := res.Header.Get("X-Content-Type-Options"); got != "nosniff" {
		t.Errorf("X-Content-Type-Options = %q, want nosniff", got)
	}
	if got := res.Header.Get("Cache-Control"); got != "no-cache" {
		t.Errorf("Cache-Control = %q, want no-cache", got)
	}
}

func TestAssetsHaveTheirTypes(t *testing.T) {
	for path, want := range map[string]string{
		"/app.js":  "text/javascript",
		"/app.css": "text/css",
	} {
		res := get(t, Handler(), http.MethodGet, path)
		if res.StatusCode != http.StatusOK {
			t.Errorf("GET %s = %d, want 200", path, res.StatusCode)
			continue
		}
		if ct := res.Header.Get("Content-Type"); !strings.HasPrefix(ct, want) {
			t.Errorf("GET %s: Content-Type = %q, want %s", path, ct, want)
		}
	}
}

func TestUnknownPathIsNotFound(t *testing.T) {
	for _, path := range []string{"/nope", "/v1beta/typo", "/static/app.js", "/../web.go"} {
		res := get(t, Handler(), http.MethodGet, path)
		if res.StatusCode != http.StatusNotFound {
			t.Errorf("GET %s = %d, want 404", path, res.StatusCode)
		}
	}
}

func TestOnlyGetAndHead(t *testing.T) {
	res := get(t, Handler(), http.MethodHead, "/")
	if res.StatusCode != http.StatusOK {
		t.Errorf("HEAD / = %d, want 200", res.StatusCode)
	}
	res = get(t, Handler(), http.MethodPost, "/")
	if res.StatusCode != http.StatusMethodNotAllowed {
		t.Fatalf("POST / = %d, want 405", res.StatusCode)
	}
	if allow := res.Header.Get("Allow"); allow != "GET, HEAD" {
		t.Errorf("Allow = %q, want %q", allow, "GET, HEAD")
	}
}

// TestCardsSayWhatTheyCount: every card of the dashboard states what its
// number counts, so the realtime card (the last 30 minutes, as events
// arrive) and the period's cards (the sessions that began in the period)
// are not read as the same users.
func TestCardsSayWhatTheyCount(t *testing.T) {
	body, _ := io.ReadAll(get(t, Handler(), http.MethodGet, "/").Body)
	cards := strings.Split(string(body), `<div class="card"`)[1:]
	if len(cards) < 7 {
		t.Fatalf("%d cards in the index, want the realtime card, six totals and revenue", len(cards))
	}
	described := map[string]string{} // label: what it counts
	for _, c := range cards {
		c, _, _ = strings.Cut(c, "</div>")
		_, label, _ := strings.Cut(c, `<span class="label">`)
		label, _, _ = strings.Cut(label, "</span>")
		var what string
		for _, d := range strings.Split(c, `<span class="detail">`)[1:] { // details with an id are filled in by app.js
			d, _, _ = strings.Cut(d, "</span>")
			what += d
		}
		if strings.TrimSpace(what) == "" {
			t.Errorf("card %q does not say what it counts", label)
		}
		described[label] = what
	}
	for label, want := range map[string]string{"Active users, last 30 minutes": "in the last 30 minutes", "Active users": "began in the period"} {
		if !strings.Contains(described[label], want) {
			t.Errorf("card %q says %q, want it to say %q", label, described[label], want)
		}
	}
}
