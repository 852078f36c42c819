package collect

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
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
// that stores nothing: the edge's own cost per hit. plain is a page view
// as gtag.js sends most (make bench's single hit), custom one with event
// parameters and a user property.
func BenchmarkServeGtag(b *testing.B) {
	sites := testSites(b, testNow)
	c, err := New(Options{Sites: func() *Sites { return sites }, Queue: discard{}, Now: func() time.Time { return testNow }})
	if err != nil {
		b.Fatal(err)
	}
	for _, tc := range []struct{ name, query string }{
		{"plain", plainPageView},
		{"custom", pageView},
	} {
		b.Run(tc.name, func(b *testing.B) {
			req := httptest.NewRequest(http.MethodGet, "/g/collect?"+tc.query, nil)
			req.Header.Set("User-Agent", testUA)
			b.ReportAllocs()
			for b.Loop() {
				w := httptest.NewRecorder()
				c.ServeGtag(w, req)
				if w.Code != http.StatusNoContent {
					b.Fatalf("status %d %s", w.Code, w.Body)
				}
			}
		})
	}
}

// BenchmarkServeGtagPost is a 20-event POST through the handler (make
// bench's batched and end-to-end load), with a queue that stores nothing;
// events/s and allocations are per POST.
func BenchmarkServeGtagPost(b *testing.B) {
	sites := testSites(b, testNow)
	c, err := New(Options{Sites: func() *Sites { return sites }, Queue: discard{}, Now: func() time.Time { return testNow }})
	if err != nil {
		b.Fatal(err)
	}
	var body strings.Builder
	for i := range 20 {
		fmt.Fprintf(&body, "en=scroll&dl=https%%3A%%2F%%2Fblog.test%%2Fp%d&dt=Post+%d&ep.percent_scrolled=90&epn.n=%d\n", i, i, i)
	}
	post := body.String()
	b.ReportAllocs()
	for b.Loop() {
		req := httptest.NewRequest(http.MethodPost, "/g/collect?"+plainPageView, strings.NewReader(post))
		req.Header.Set("User-Agent", testUA)
		w := httptest.NewRecorder()
		c.ServeGtag(w, req)
		if w.Code != http.StatusNoContent {
			b.Fatalf("status %d %s", w.Code, w.Body)
		}
	}
}

// plainPageView is a page view without custom parameters, as make bench
// sends it.
const plainPageView = "v=2&tid=" + testTID + "&cid=1987654321.1718000000&sid=1718000000&sct=3&seg=1&en=page_view&_et=1520" +
	"&ul=en-us&sr=1920x1080&dl=https%3A%2F%2Fblog.test%2Fblog%2Fga4-wire-format%3Futm_source%3Dnewsletter" +
	"&dt=The+GA4+wire+format+%7C+Bench+Example+blog&dr=https%3A%2F%2Fwww.google.com%2F"

type discard struct{}

func (discard) Append(context.Context, [][]byte) error { return nil }

func BenchmarkParseMP(b *testing.B) {
	body, err := os.ReadFile("testdata/mp/good.json")
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, msgs := ParseMP(testTID, body, testNow); msgs != nil {
			b.Fatal(msgs)
		}
	}
}

func BenchmarkParseTrackerEvent(b *testing.B) {
	body := []byte(`{"m":"G-TEST1","n":"page_view","u":"https://shop.test/cart?utm_source=news","r":"https://search.test/",` +
		`"t":"Cart","l":"de-DE","s":"390x844"}`)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := ParseTrackerEvent(body); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkRateLimit is one token taken from a bucket among many keys.
func BenchmarkRateLimit(b *testing.B) {
	l := newLimiter[int](Rate{PerSecond: 1e9, Burst: 1e9}, time.Now)
	i := 0
	b.ReportAllocs()
	for b.Loop() {
		l.take(i % 1024)
		i++
	}
}

// BenchmarkParseGtagPost is a 20-event POST: each body line's parameters
// over the query string's.
func BenchmarkParseGtagPost(b *testing.B) {
	var body strings.Builder
	for i := range 20 {
		fmt.Fprintf(&body, "en=click&dl=https%%3A%%2F%%2Fshop.test%%2Fp%d&ep.link=out&epn.n=%d\n", i, i)
	}
	post := []byte(body.String())
	b.ReportAllocs()
	for b.Loop() {
		if _, err := ParseGtag(pageView, post); err != nil {
			b.Fatal(err)
		}
	}
}
