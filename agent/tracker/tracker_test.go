package tracker

import (
	"bytes"
	"net/http"
	"net/http/httptest"
	"testing"
)

func TestHandler(t *testing.T) {
	h := Handler()
	w := httptest.NewRecorder()
	h.ServeHTTP(w, httptest.NewRequest(http.MethodGet, Path, nil))
	if w.Code != http.StatusOK || !bytes.Equal(w.Body.Bytes(), script) {
		t.Fatalf("GET: %d, %d bytes", w.Code, w.Body.Len())
	}
	if ct := w.Header().Get("Content-Type"); ct != "text/javascript; charset=utf-8" {
		t.Fatalf("Content-Type %q", ct)
	}
	etag := w.Header().Get("ETag")
	if etag == "" || w.Header().Get("Set-Cookie") != "" {
		t.Fatalf("ETag %q, Set-Cookie %q", etag, w.Header().Get("Set-Cookie"))
	}
	req := httptest.NewRequest(http.MethodGet, Path, nil)
	req.Header.Set("If-None-Match", etag)
	w = httptest.NewRecorder()
	h.ServeHTTP(w, req)
	if w.Code != http.StatusNotModified || w.Body.Len() != 0 {
		t.Fatalf("revalidation: %d with %d bytes", w.Code, w.Body.Len())
	}
	w = httptest.NewRecorder()
	h.ServeHTTP(w, httptest.NewRequest(http.MethodPost, Path, nil))
	if w.Code != http.StatusMethodNotAllowed {
		t.Fatalf("POST: %d", w.Code)
	}
}

// TestScriptPromises checks the script stays small and cookie-free.
func TestScriptPromises(t *testing.T) {
	s := script
	if len(s) >= 1536 {
		t.Fatalf("t.js is %d bytes; keep it under 1.5 KiB", len(s))
	}
	for _, banned := range []string{"document.cookie", "localStorage", "sessionStorage", "indexedDB"} {
		if bytes.Contains(s, []byte(banned)) {
			t.Fatalf("t.js uses %s", banned)
		}
	}
	for _, needed := range []string{"/api/event", "pushState", "popstate", "w.avila = function"} {
		if !bytes.Contains(s, []byte(needed)) {
			t.Fatalf("t.js lacks %s", needed)
		}
	}
}
