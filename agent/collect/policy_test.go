package collect

import (
	"bytes"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"sync"
	"testing"
	"time"

	"github.com/avila-analytics/avila/protocol"
)

// policyRig is a rig with extra options and a settable clock, counting
// the outcomes reported through Options.Count.
type policyRig struct {
	*rig
	mu     sync.Mutex
	now    time.Time
	counts map[string]int
}

func newPolicyRig(t *testing.T, set func(*Options)) *policyRig {
	t.Helper()
	p := &policyRig{rig: &rig{q: &fakeQueue{}, sites: testSites(t, testNow)}, now: testNow, counts: map[string]int{}}
	opts := Options{
		Sites: func() *Sites { return p.sites },
		Queue: p.q,
		Now: func() time.Time {
			p.mu.Lock()
			defer p.mu.Unlock()
			return p.now
		},
		Count: func(site uint32, outcome string, events int) {
			p.mu.Lock()
			p.counts[outcome] += events
			p.mu.Unlock()
		},
	}
	set(&opts)
	var err error
	if p.c, err = New(opts); err != nil {
		t.Fatal(err)
	}
	return p
}

func (p *policyRig) advance(d time.Duration) {
	p.mu.Lock()
	p.now = p.now.Add(d)
	p.mu.Unlock()
}

func (p *policyRig) count(outcome string) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.counts[outcome]
}

// from sends a page view from remote (host:port) with headers.
func (p *policyRig) from(remote string, query string, hdr map[string]string) *httptest.ResponseRecorder {
	req := httptest.NewRequest(http.MethodGet, "/g/collect?"+query, nil)
	req.RemoteAddr = remote
	req.Header.Set("User-Agent", testUA)
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	w := httptest.NewRecorder()
	mux := http.NewServeMux()
	p.c.Register(mux)
	mux.ServeHTTP(w, req)
	return w
}

const hitQuery = "v=2&tid=" + testTID + "&cid=1.1&uid=alice&en=page_view&dl=https%3A%2F%2Fshop.test%2F"

func TestDoNotTrackDropped(t *testing.T) {
	p := newPolicyRig(t, func(*Options) {})
	for _, hdr := range []map[string]string{{"DNT": "1"}, {"Sec-GPC": "1"}} {
		w := p.from(testIP+":1", hitQuery, hdr)
		if w.Code != http.StatusNoContent {
			t.Fatalf("%v: status %d %q, want 204 as GA4 answers", hdr, w.Code, w.Body)
		}
	}
	if len(p.q.calls) != 0 {
		t.Fatalf("DNT/GPC hits were stored: %d Appends", len(p.q.calls))
	}
	if got := p.count(OutcomeDoNotTrack); got != 2 {
		t.Fatalf("do_not_track counted %d, want 2", got)
	}
	// DNT: 0 is no signal.
	if w := p.from(testIP+":1", hitQuery, map[string]string{"DNT": "0"}); w.Code != http.StatusNoContent || len(p.q.events(t)) != 1 {
		t.Fatalf("DNT: 0: status %d, %d events; want it stored", w.Code, len(p.q.events(t)))
	}
}

func TestDoNotTrackCookieless(t *testing.T) {
	p := newPolicyRig(t, func(o *Options) { o.DoNotTrack = DNTCookieless })
	p.from(testIP+":1", hitQuery, map[string]string{"Sec-GPC": "1"})
	p.from(testIP+":1", "v=2&tid="+testTID+"&cid=2.2&en=page_view", map[string]string{"DNT": "1"})
	p.from(testIP+":1", hitQuery, nil)
	evs := p.q.events(t)
	if len(evs) != 3 {
		t.Fatalf("%d events stored, want 3", len(evs))
	}
	if evs[0].Visitor != evs[1].Visitor || evs[0].User != 0 {
		t.Fatalf("cookieless: visitors %x/%x user %x; want one visitor (cid ignored), no user", evs[0].Visitor, evs[1].Visitor, evs[0].User)
	}
	if evs[2].Visitor == evs[0].Visitor || evs[2].User == 0 {
		t.Fatal("without the signal cid and uid must count")
	}
	if p.count(OutcomeDoNotTrack) != 0 {
		t.Fatal("cookieless hits counted as dropped")
	}
}

func TestRateLimitPerIP(t *testing.T) {
	p := newPolicyRig(t, func(o *Options) { o.RatePerIP = Rate{PerSecond: 0.5, Burst: 2} })
	for i := range 2 {
		if w := p.from(testIP+":1", hitQuery, nil); w.Code != http.StatusNoContent {
			t.Fatalf("hit %d within burst: %d %q", i, w.Code, w.Body)
		}
	}
	w := p.from(testIP+":1", hitQuery, nil)
	if w.Code != http.StatusTooManyRequests || w.Header().Get("Retry-After") != "2" {
		t.Fatalf("third hit: %d Retry-After %q, want 429 and 2 (0.5 tokens/s)", w.Code, w.Header().Get("Retry-After"))
	}
	// Another client has its own bucket.
	if w := p.from("198.51.100.1:1", hitQuery, nil); w.Code != http.StatusNoContent {
		t.Fatalf("other client: %d", w.Code)
	}
	p.advance(2 * time.Second)
	if w := p.from(testIP+":1", hitQuery, nil); w.Code != http.StatusNoContent {
		t.Fatalf("after refill: %d %q", w.Code, w.Body)
	}
	if got := len(p.q.events(t)); got != 4 {
		t.Fatalf("%d events stored, want 4", got)
	}
	if p.count(OutcomeRateLimited) != 1 {
		t.Fatalf("rate_limited counted %d, want 1", p.count(OutcomeRateLimited))
	}
}

func TestRateLimitPerSite(t *testing.T) {
	p := newPolicyRig(t, func(o *Options) { o.RatePerSite = Rate{PerSecond: 1, Burst: 1} })
	if w := p.from(testIP+":1", hitQuery, nil); w.Code != http.StatusNoContent {
		t.Fatalf("first: %d", w.Code)
	}
	// A different client does not escape the site's limit.
	w := p.from("198.51.100.1:1", hitQuery, nil)
	if w.Code != http.StatusTooManyRequests || w.Header().Get("Retry-After") != "1" {
		t.Fatalf("second: %d Retry-After %q, want 429 and 1", w.Code, w.Header().Get("Retry-After"))
	}
	if len(p.q.events(t)) != 1 {
		t.Fatal("a refused hit was stored")
	}
}

func TestClientIPTrustedProxies(t *testing.T) {
	trusted, err := ParseTrustedProxies("10.0.0.0/8, 127.0.0.1,::1")
	if err != nil {
		t.Fatal(err)
	}
	f := func(remote string, hdr map[string]string, want string) {
		t.Helper()
		req := httptest.NewRequest(http.MethodGet, "/", nil)
		req.RemoteAddr = remote
		for k, v := range hdr {
			req.Header.Set(k, v)
		}
		if got := clientIP(httpExchange{r: req}, trusted); got != netip.MustParseAddr(want) {
			t.Fatalf("%s %v: client %s, want %s", remote, hdr, got, want)
		}
	}
	xff := func(v string) map[string]string { return map[string]string{"X-Forwarded-For": v} }
	// Untrusted peer: forged headers ignored.
	f("203.0.113.9:5", xff("1.2.3.4"), "203.0.113.9")
	f("203.0.113.9:5", map[string]string{"Forwarded": "for=1.2.3.4"}, "203.0.113.9")
	// Trusted peer: the rightmost address that is not a trusted proxy.
	f("127.0.0.1:5", xff("1.2.3.4"), "1.2.3.4")
	f("127.0.0.1:5", xff("6.6.6.6, 1.2.3.4, 10.1.1.1"), "1.2.3.4")
	f("[::1]:5", xff("2001:db8::7"), "2001:db8::7")
	f("127.0.0.1:5", map[string]string{"Forwarded": `for="[2001:db8::8]:4711";proto=https, for=10.0.0.2`}, "2001:db8::8")
	f("127.0.0.1:5", map[string]string{"Forwarded": "for=198.51.100.3", "X-Forwarded-For": "9.9.9.9"}, "198.51.100.3")
	f("127.0.0.1:5", xff("1.2.3.4:443"), "1.2.3.4")
	// No header, or garbage: the peer itself.
	f("127.0.0.1:5", nil, "127.0.0.1")
	f("127.0.0.1:5", xff("unknown"), "127.0.0.1")
	f("127.0.0.1:5", xff("5.5.5.5, garbage, 10.0.0.1"), "10.0.0.1")
	f("[::ffff:10.0.0.5]:5", xff("1.2.3.4"), "1.2.3.4")

	for _, bad := range []string{"10.0.0.0/33", "nope", "10.0.0.1/8x"} {
		if _, err := ParseTrustedProxies(bad); err == nil {
			t.Fatalf("ParseTrustedProxies(%q) accepted", bad)
		}
	}
}

// TestRateLimitUsesForwardedClient: behind a trusted proxy each browser
// has its own bucket; forged headers from elsewhere share the peer's.
func TestRateLimitUsesForwardedClient(t *testing.T) {
	p := newPolicyRig(t, func(o *Options) {
		o.RatePerIP = Rate{PerSecond: 1, Burst: 1}
		o.TrustedProxies = []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")}
	})
	for _, c := range []string{"1.1.1.1", "2.2.2.2"} {
		if w := p.from("127.0.0.1:9", hitQuery, map[string]string{"X-Forwarded-For": c}); w.Code != http.StatusNoContent {
			t.Fatalf("client %s via proxy: %d", c, w.Code)
		}
	}
	if w := p.from("203.0.113.50:9", hitQuery, map[string]string{"X-Forwarded-For": "3.3.3.3"}); w.Code != http.StatusNoContent {
		t.Fatalf("first from untrusted peer: %d", w.Code)
	}
	if w := p.from("203.0.113.50:9", hitQuery, map[string]string{"X-Forwarded-For": "4.4.4.4"}); w.Code != http.StatusTooManyRequests {
		t.Fatalf("forged header escaped the peer's bucket: %d", w.Code)
	}
}

func TestLimiterBounded(t *testing.T) {
	now := testNow
	l := newLimiter[int](Rate{PerSecond: 1, Burst: 1}, func() time.Time { return now })
	for i := range maxBuckets {
		l.take(i)
	}
	// Every key busy: a new one drops about half rather than growing.
	l.take(-1)
	if n := len(l.buckets); n > maxBuckets/2+1 {
		t.Fatalf("%d buckets, want at most %d", n, maxBuckets/2+1)
	}
	for k := maxBuckets; len(l.buckets) < maxBuckets; k++ {
		l.take(k)
	}
	// A minute later every bucket is full again: all are pruned.
	now = now.Add(time.Minute)
	l.take(-2)
	if n := len(l.buckets); n != 1 {
		t.Fatalf("%d buckets, want only the new key's", n)
	}
}

func TestParseRate(t *testing.T) {
	f := func(in string, want Rate, ok bool) {
		t.Helper()
		got, err := ParseRate(in)
		if (err == nil) != ok || got != want {
			t.Fatalf("ParseRate(%q) = %+v, %v; want %+v, ok %v", in, got, err, want, ok)
		}
	}
	f("", Rate{}, true)
	f("0", Rate{}, true)
	f("10", Rate{PerSecond: 10, Burst: 10}, true)
	f("0.5", Rate{PerSecond: 0.5, Burst: 1}, true)
	f("5:50", Rate{PerSecond: 5, Burst: 50}, true)
	f("-1", Rate{}, false)
	f("x", Rate{}, false)
	f("5:0", Rate{}, false)
	f("5:x", Rate{}, false)
}

func TestConsentStates(t *testing.T) {
	f := func(gcs, gcd string, want bool) {
		t.Helper()
		h := Hit{Consent: gcs, ConsentDetail: gcd}
		if got := h.AnalyticsDenied(); got != want {
			t.Fatalf("gcs %q gcd %q: denied %v, want %v", gcs, gcd, got, want)
		}
	}
	f("", "", false)
	f("G111", "", false)
	f("G100", "", true)
	f("G110", "", true)
	f("G101", "", false)
	f("", "13p3p3p2p5", true)      // denied by default
	f("", "13q3q3q2q5", true)      // denied, update denied
	f("", "13t3t3t2t5", false)     // granted by default
	f("", "13r3r3l1l5", false)     // denied by default, then granted
	f("", "13v3u3v1v5", true)      // analytics granted, then denied
	f("", "13p3l3l1l5", false)     // analytics not set
	f("G111", "13q3q3q2q5", false) // gcs, the current state, wins
	f("", "13", false)
}

// TestSitePolicy: a site's own DNT policy and kept query parameters
// override the agent's defaults for that site only.
func TestSitePolicy(t *testing.T) {
	p := newPolicyRig(t, func(*Options) {}) // agent default: drop
	var err error
	p.sites, err = NewSites(&protocol.Config{
		Sites: []protocol.Site{
			{ID: testSite, MeasurementID: testTID, Domains: []string{"shop.test"}, DNT: "cookieless", KeepParams: []string{"page"}, IdentitySecret: identitySecret(1)},
			{ID: 9, MeasurementID: "G-DEFAULT", IdentitySecret: identitySecret(3)},
			{ID: 10, MeasurementID: "G-IGNORE", DNT: "ignore", IdentitySecret: identitySecret(4)},
		},
		Salts: []protocol.Salt{
			{Site: testSite, Day: testNow.UTC().Format(time.DateOnly), Key: bytes.Repeat([]byte{7}, 32)},
			{Site: 9, Day: testNow.UTC().Format(time.DateOnly), Key: bytes.Repeat([]byte{8}, 32)},
			{Site: 10, Day: testNow.UTC().Format(time.DateOnly), Key: bytes.Repeat([]byte{9}, 32)},
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	dnt := map[string]string{"DNT": "1"}
	page := "&dl=" + url.QueryEscape("https://shop.test/list?page=2&q=secret&utm_source=x")
	// Site under "cookieless": stored, cid and uid ignored, page kept.
	for _, cid := range []string{"1.1", "2.2"} {
		if w := p.from(testIP+":1", "v=2&tid="+testTID+"&cid="+cid+"&uid=alice&en=page_view"+page, dnt); w.Code != http.StatusNoContent {
			t.Fatalf("cookieless site: %d %q", w.Code, w.Body)
		}
	}
	// Site without a policy: the agent's drop.
	if w := p.from(testIP+":1", "v=2&tid=G-DEFAULT&cid=1.1&en=page_view"+page, dnt); w.Code != http.StatusNoContent {
		t.Fatalf("default site: %d %q", w.Code, w.Body)
	}
	// Site under "ignore": cid counts.
	p.from(testIP+":1", "v=2&tid=G-IGNORE&cid=1.1&en=page_view"+page, dnt)
	p.from(testIP+":1", "v=2&tid=G-IGNORE&cid=2.2&en=page_view"+page, dnt)
	evs := p.q.events(t)
	if len(evs) != 4 {
		t.Fatalf("%d events stored, want 4 (2 cookieless, 0 dropped, 2 ignored)", len(evs))
	}
	if evs[0].Site != testSite || evs[0].Visitor != evs[1].Visitor || evs[0].User != 0 {
		t.Errorf("cookieless site: %+v / %+v; want one visitor, no user", evs[0], evs[1])
	}
	if evs[0].Path != "/list?page=2&utm_source=x" {
		t.Errorf("site's kept params: path %q", evs[0].Path)
	}
	if evs[2].Site != 10 || evs[2].Visitor == evs[3].Visitor {
		t.Errorf("ignore site: visitors %x %x, want two (cid counts)", evs[2].Visitor, evs[3].Visitor)
	}
	if evs[2].Path != "/list?utm_source=x" {
		t.Errorf("site without kept params: path %q", evs[2].Path)
	}
	if got := p.count(OutcomeDoNotTrack); got != 1 {
		t.Errorf("do_not_track counted %d, want 1", got)
	}
}
