package collect

import (
	"context"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"
)

func BenchmarkParseGtag(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		if _, err := ParseGtag(pageView, nil); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkServeGtag is one page view through the handler, with a queue
// that stores nothing: the edge's own cost per hit.
func BenchmarkServeGtag(b *testing.B) {
	sites := testSites(b, testNow)
	c, err := New(Options{Sites: func() *Sites { return sites }, Queue: discard{}, Now: func() time.Time { return testNow }})
	if err != nil {
		b.Fatal(err)
	}
	req := httptest.NewRequest(http.MethodGet, "/g/collect?"+pageView, nil)
	req.Header.Set("User-Agent", testUA)
	b.ReportAllocs()
	for b.Loop() {
		w := httptest.NewRecorder()
		c.ServeGtag(w, req)
		if w.Code != http.StatusNoContent {
			b.Fatalf("status %d %s", w.Code, w.Body)
		}
	}
}

type discard struct{}

func (discard) Append(context.Context, [][]byte) error { return nil }
