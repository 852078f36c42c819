package collect

import (
	"net/http"
	"net/netip"
	"strings"
	"testing"

	"github.com/avila-analytics/avila/protocol"
)

// stubEnricher marks user agents containing "bot" as bots and stamps the
// rest with what it was given, so the test sees what reached it.
type stubEnricher struct{ calls int }

func (s *stubEnricher) Enrich(e *protocol.Event, ip netip.Addr, ua string) bool {
	s.calls++
	if strings.Contains(ua, "bot") {
		return true
	}
	e.Country = ip.String()
	e.Browser = ua
	return false
}

func TestEnricherFillsEventsAndDropsBots(t *testing.T) {
	r := newRig(t)
	en := &stubEnricher{}
	r.c.opts.Enricher = en

	body := "en=a\nen=b\n"
	w := r.do(http.MethodPost, "v=2&tid="+testTID+"&cid=1.2&dl=https%3A%2F%2Fshop.test%2F", "text/plain", strings.NewReader(body), nil)
	if w.Code != http.StatusNoContent {
		t.Fatalf("status %d %q, want 204", w.Code, w.Body)
	}
	evs := r.q.events(t)
	if len(evs) != 2 {
		t.Fatalf("%d events, want 2", len(evs))
	}
	for _, e := range evs {
		if e.Country != testIP || e.Browser != testUA {
			t.Fatalf("event %s: country %q browser %q, want the request's IP and UA", e.Name, e.Country, e.Browser)
		}
	}

	w = r.do(http.MethodGet, "v=2&tid="+testTID+"&cid=1.2&en=page_view&dl=https%3A%2F%2Fshop.test%2F", "", nil,
		map[string]string{"User-Agent": "Mozilla/5.0 (compatible; Googlebot/2.1)"})
	if w.Code != http.StatusNoContent {
		t.Fatalf("bot hit: status %d %q, want 204 as GA4 answers", w.Code, w.Body)
	}
	if got := len(r.q.events(t)); got != 2 {
		t.Fatalf("after a bot hit %d events stored, want still 2", got)
	}
	if en.calls != 2 {
		t.Fatalf("enricher called %d times, want 2 (once per request)", en.calls)
	}
	// A bot's POST: none of its events is stored, on one verdict.
	w = r.do(http.MethodPost, "v=2&tid="+testTID+"&cid=1.2&dl=https%3A%2F%2Fshop.test%2F", "text/plain", strings.NewReader(body),
		map[string]string{"User-Agent": "Mozilla/5.0 (compatible; Googlebot/2.1)"})
	if w.Code != http.StatusNoContent {
		t.Fatalf("bot POST: status %d %q, want 204", w.Code, w.Body)
	}
	if got := len(r.q.events(t)); got != 2 || en.calls != 3 {
		t.Fatalf("after a bot POST %d events stored and %d calls, want still 2 events and 3 calls", got, en.calls)
	}
}
