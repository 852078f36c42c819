package collect

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"mime"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/avila-analytics/avila/agent/queue"
	"github.com/avila-analytics/avila/protocol"
)

const (
	testTID  = "G-TEST1"
	testSite = 7
	testUA   = "Mozilla/5.0 (X11; Linux x86_64) TestBrowser/1.0"
	testIP   = "203.0.113.77"
)

var testNow = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

func testSites(tb testing.TB, now time.Time) *Sites {
	tb.Helper()
	s, err := NewSites(&protocol.Config{
		Sites: []protocol.Site{
			{ID: testSite, MeasurementID: testTID, Domains: []string{"shop.test"}, IdentitySecret: identitySecret(1)},
			{ID: 8, MeasurementID: "G-NOSALT", IdentitySecret: identitySecret(2)},
		},
		Salts: []protocol.Salt{{Site: testSite, Day: now.UTC().Format(time.DateOnly), Key: bytes.Repeat([]byte{7}, 32)}},
	})
	if err != nil {
		tb.Fatal(err)
	}
	return s
}

// identitySecret is an identity secret for tests.
func identitySecret(b byte) []byte { return bytes.Repeat([]byte{b}, 32) }

// fakeQueue records Appends and answers them with err.
type fakeQueue struct {
	mu    sync.Mutex
	calls [][][]byte
	err   error
}

func (q *fakeQueue) Append(ctx context.Context, events [][]byte) error {
	q.mu.Lock()
	defer q.mu.Unlock()
	// The collector reuses events' bytes after Append returns (Appender).
	kept := make([][]byte, len(events))
	for i, e := range events {
		kept[i] = bytes.Clone(e)
	}
	q.calls = append(q.calls, kept)
	if q.err != nil {
		return q.err
	}
	return ctx.Err()
}

func (q *fakeQueue) events(t *testing.T) []protocol.Event {
	t.Helper()
	q.mu.Lock()
	defer q.mu.Unlock()
	var out []protocol.Event
	for _, call := range q.calls {
		for _, b := range call {
			var e protocol.Event
			if err := protocol.DecodeEvent(b, &e); err != nil {
				t.Fatal(err)
			}
			out = append(out, e)
		}
	}
	return out
}

type rig struct {
	c        *Collector
	q        *fakeQueue
	sites    *Sites
	nudges   int
	rejected map[string]int // CountMPRejected's tally
	nudgeMu  sync.Mutex
}

func newRig(t *testing.T) *rig {
	t.Helper()
	return newRigWith(t, nil)
}

// newRigWith is newRig with the collector's options adjusted by set.
func newRigWith(t *testing.T, set func(*Options)) *rig {
	t.Helper()
	r := &rig{q: &fakeQueue{}, sites: testSites(t, testNow), rejected: map[string]int{}}
	opts := Options{
		Sites: func() *Sites { return r.sites },
		Queue: r.q,
		Now:   func() time.Time { return testNow },
		OnUnknownSite: func() {
			r.nudgeMu.Lock()
			r.nudges++
			r.nudgeMu.Unlock()
		},
		CountMPRejected: func(reason string, n int) {
			r.nudgeMu.Lock()
			r.rejected[reason] += n
			r.nudgeMu.Unlock()
		},
	}
	if set != nil {
		set(&opts)
	}
	var err error
	r.c, err = New(opts)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// do sends one request through the collector and returns the recorded answer.
func (r *rig) do(method, query, contentType string, body io.Reader, hdr map[string]string) *httptest.ResponseRecorder {
	req := httptest.NewRequest(method, "/g/collect?"+query, body)
	req.RemoteAddr = testIP + ":51234"
	req.Header.Set("User-Agent", testUA)
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	w := httptest.NewRecorder()
	mux := http.NewServeMux()
	r.c.Register(mux)
	mux.ServeHTTP(w, req)
	return w
}

const pageView = "v=2&tid=" + testTID + "&cid=111.222&sid=1764000000&sct=2&seg=1&_ss=1&_et=250&en=page_view" +
	"&dl=https%3A%2F%2FShop.test%2Fcart%3Fid%3D5%26utm_source%3Dnews%23x&dr=https%3A%2F%2Fsearch.test%2Fq%3Fterm%3Dsecret" +
	"&dt=Cart&ul=de-DE&sr=390x844&ep.step=2&epn.value=9.5&up.plan=pro"

func TestGETStoresEvent(t *testing.T) {
	r := newRig(t)
	w := r.do(http.MethodGet, pageView, "", nil, nil)
	if w.Code != http.StatusNoContent {
		t.Fatalf("status %d %q, want 204", w.Code, w.Body)
	}
	if len(r.q.calls) != 1 {
		t.Fatalf("%d Appends, want 1", len(r.q.calls))
	}
	evs := r.q.events(t)
	if len(evs) != 1 {
		t.Fatalf("%d events, want 1", len(evs))
	}
	e := evs[0]
	if e.Visitor == 0 {
		t.Fatal("no visitor id")
	}
	want := protocol.Event{
		Site: testSite, TimeMicros: testNow.UnixMicro(), Name: "page_view", Visitor: e.Visitor,
		SessionID: 1764000000, SessionNum: 2, Flags: protocol.FlagSessionStart | protocol.FlagEngaged | protocol.FlagPersistent, EngageMs: 250,
		Host: "shop.test", Path: "/cart?utm_source=news", Title: "Cart", Referrer: "https://search.test/q",
		Language: "de-de", Screen: "390x844", Params: map[string]string{"step": "2"}, Value: 9.5,
		UserProps: map[string]string{"plan": "pro"},
	}
	if fmt.Sprintf("%+v", e) != fmt.Sprintf("%+v", want) {
		t.Fatalf("event\n got %+v\nwant %+v", e, want)
	}
	raw := bytes.Join(r.q.calls[0], nil)
	for _, secret := range []string{testIP, "203.0.113", testUA, "TestBrowser", "111.222", "secret"} {
		if bytes.Contains(raw, []byte(secret)) {
			t.Fatalf("queued event contains %q", secret)
		}
	}
}

func TestVisitorAndConsent(t *testing.T) {
	r := newRig(t)
	visitor := func(query string, hdr map[string]string) protocol.Event {
		t.Helper()
		r.q.calls = nil
		if w := r.do(http.MethodGet, query, "", nil, hdr); w.Code != http.StatusNoContent {
			t.Fatalf("status %d %q", w.Code, w.Body)
		}
		return r.q.events(t)[0]
	}
	base := "tid=" + testTID + "&en=page_view"
	a := visitor(base+"&cid=1.1&uid=alice", nil)
	if a.User == 0 {
		t.Fatal("uid with consent: no user hash")
	}
	if b := visitor(base+"&cid=1.1&uid=alice", nil); b.Visitor != a.Visitor || b.User != a.User {
		t.Fatal("same browser, same day: ids differ")
	}
	if b := visitor(base+"&cid=2.2", nil); b.Visitor == a.Visitor {
		t.Fatal("another client id gave the same visitor")
	}
	c := visitor(base+"&cid=1.1", nil)
	if c.Visitor == a.Visitor || c.Flags&protocol.FlagPersistent == 0 {
		t.Fatal("without uid the client id's key identifies the visitor, apart from the user_id's")
	}
	if b := visitor(base+"&cid=1.1", map[string]string{"User-Agent": "Other/2"}); b.Visitor != c.Visitor {
		t.Fatal("the same client id with another user agent: another visitor")
	}
	// Consent denied (gcs=G100): cid and uid are ignored, so two cookies
	// on one browser are one cookieless visitor, and no user hash is kept.
	d1 := visitor(base+"&cid=1.1&uid=alice&gcs=G100", nil)
	d2 := visitor(base+"&cid=2.2&gcs=G100", nil)
	if d1.Visitor != d2.Visitor || d1.User != 0 {
		t.Fatalf("consent denied: visitors %x/%x, user %x; want one visitor and no user", d1.Visitor, d2.Visitor, d1.User)
	}
}

// The events of one POST get the visitor id each would get alone, also
// when lines change the client id or deny consent between equal lines (a
// request remembers only the last id it computed).
func TestPOSTVisitorPerLine(t *testing.T) {
	r := newRig(t)
	alone := func(query string) uint64 {
		t.Helper()
		r.q.calls = nil
		if w := r.do(http.MethodGet, "tid="+testTID+"&en=page_view&"+query, "", nil, nil); w.Code != http.StatusNoContent {
			t.Fatalf("status %d %q", w.Code, w.Body)
		}
		return r.q.events(t)[0].Visitor
	}
	want := []uint64{alone("cid=1.1"), alone("cid=2.2"), alone("cid=1.1"), alone("cid=1.1&gcs=G100"), alone("cid=1.1")}
	r.q.calls = nil
	body := "en=a\nen=b&cid=2.2\nen=c\nen=d&gcs=G100\nen=e\n"
	if w := r.do(http.MethodPost, "v=2&tid="+testTID+"&cid=1.1", "text/plain", strings.NewReader(body), nil); w.Code != http.StatusNoContent {
		t.Fatalf("status %d %q", w.Code, w.Body)
	}
	evs := r.q.events(t)
	for i, e := range evs {
		if e.Visitor != want[i] {
			t.Fatalf("event %s: visitor %x, want %x as when sent alone", e.Name, e.Visitor, want[i])
		}
	}
	if len(evs) != len(want) || want[0] == want[1] || want[0] == want[3] || want[0] != want[2] {
		t.Fatalf("%d events, ids %x: want 5 events, cid and consent changing the id", len(evs), want)
	}
}

// The events of a POST share the query string's page and referrer,
// scrubbed once, yet each line's are what the line sent alone would get:
// a line's dl or dr replaces the query string's, and a page on the
// referrer's host makes it a self-referral.
func TestPOSTPageAndReferrerPerLine(t *testing.T) {
	r := newRig(t)
	const base = "v=2&tid=" + testTID + "&cid=1.1&dl=https%3A%2F%2Fshop.test%2Fq%3Fq%3Dsecret%26utm_source%3Dnews" +
		"&dr=https%3A%2F%2Fsearch.test%2Fq%3Fterm%3Dx%26utm_source%3Dads"
	lines := []string{
		"en=a",
		"en=b&dl=https%3A%2F%2Fsearch.test%2Fb",
		"en=c",
		"en=d&dl=https%3A%2F%2FShop.test%2FD&dr=https%3A%2F%2Fother.test%2F",
		"en=e&dl=https%3A%2F%2Fshop.test%2Fe",
		"en=f",
	}
	scrubbed := func(e protocol.Event) string { return e.Host + " " + e.Path + " " + e.Referrer }
	var want []string
	for _, l := range lines {
		r.q.calls = nil
		if w := r.do(http.MethodGet, l+"&"+base, "", nil, nil); w.Code != http.StatusNoContent {
			t.Fatalf("status %d %q", w.Code, w.Body)
		}
		want = append(want, scrubbed(r.q.events(t)[0]))
	}
	if want[0] != "shop.test /q?utm_source=news https://search.test/q?utm_source=ads" || want[1] != "search.test /b " ||
		want[3] != "shop.test /D https://other.test/" {
		t.Fatalf("sent alone: %q", want)
	}
	r.q.calls = nil
	if w := r.do(http.MethodPost, base, "text/plain", strings.NewReader(strings.Join(lines, "\n")), nil); w.Code != http.StatusNoContent {
		t.Fatalf("status %d %q", w.Code, w.Body)
	}
	evs := r.q.events(t)
	if len(evs) != len(want) {
		t.Fatalf("%d events, want %d", len(evs), len(want))
	}
	for i, e := range evs {
		if got := scrubbed(e); got != want[i] {
			t.Fatalf("event %s: %q, want %q as when sent alone", e.Name, got, want[i])
		}
	}
}

func TestPOSTMergedOneAppend(t *testing.T) {
	r := newRig(t)
	body := "en=page_view&_et=5\nen=click&ep.link=out&dl=https%3A%2F%2Fshop.test%2Fb\nen=scroll\n"
	w := r.do(http.MethodPost, "v=2&tid="+testTID+"&cid=9.9&dl=https%3A%2F%2Fshop.test%2Fa", "text/plain;charset=UTF-8", strings.NewReader(body), nil)
	if w.Code != http.StatusNoContent {
		t.Fatalf("status %d %q", w.Code, w.Body)
	}
	if len(r.q.calls) != 1 || len(r.q.calls[0]) != 3 {
		t.Fatalf("appends %d, want one Append of 3 events", len(r.q.calls))
	}
	evs := r.q.events(t)
	got := []string{}
	for _, e := range evs {
		got = append(got, e.Name+" "+e.Path)
	}
	if strings.Join(got, ",") != "page_view /a,click /b,scroll /a" {
		t.Fatalf("events %v", got)
	}
	// A line's parameters stay its own: the next line's event has neither its
	// dl nor its ep.link (the lines share one parsed map, emptied between).
	if evs[0].Visitor != evs[1].Visitor || evs[0].EngageMs != 5 || evs[1].Params["link"] != "out" || evs[2].Params != nil || evs[2].EngageMs != 0 {
		t.Fatalf("merged fields wrong: %+v", evs)
	}
	// No content type (fetch with a string body in some browsers) works too.
	if w := r.do(http.MethodPost, "tid="+testTID+"&en=a", "", strings.NewReader(""), nil); w.Code != http.StatusNoContent {
		t.Fatalf("no content type: %d %q", w.Code, w.Body)
	}
}

func TestRefusals(t *testing.T) {
	tid := "tid=" + testTID
	tests := []struct {
		name, method, query, ctype, body string
		status                           int
		reason                           string
		retryAfter                       string
		nudge                            bool
	}{
		{name: "missing tid", method: "GET", query: "en=page_view", status: 400,
			reason: "tid: missing measurement id (G-…)"},
		{name: "unknown tid", method: "GET", query: "tid=G-NEW&en=page_view", status: 400, nudge: true,
			reason: `tid: unknown measurement id "G-NEW"; no site with it is configured on this agent (a site created just now is known within seconds)`},
		{name: "unknown tid on a body line", method: "POST", query: tid, body: "en=a\ntid=G-OTHER&en=b", status: 400, nudge: true,
			reason: `tid: unknown measurement id "G-OTHER"; no site with it is configured on this agent (a site created just now is known within seconds)`},
		{name: "missing en", method: "GET", query: tid, status: 400, reason: "en: missing event name (rule event_name_required)"},
		{name: "wrong version", method: "GET", query: "v=1&" + tid + "&en=a", status: 400,
			reason: `v: protocol version "1" is not supported, want 2`},
		{name: "bad sid", method: "GET", query: tid + "&en=a&sid=abc", status: 400,
			reason: `sid: want a non-negative integer, got "abc"`},
		{name: "bad epn on line 2", method: "POST", query: tid, body: "en=a\nen=b&epn.value=x", status: 400,
			reason: `event on body line 2: epn.value: not a number: "x"`},
		{name: "bad dl", method: "GET", query: tid + "&en=a&dl=http%3A%2F%2F%5B%3A%3A1", status: 400,
			reason: `dl: not a URL: missing ']' in host`},
		{name: "bad dr on line 1", method: "POST", query: tid, body: "en=a&dr=http%3A%2F%2F%5B%3A%3A1", status: 400,
			reason: `event on body line 1: dr: not a URL: missing ']' in host`},
		{name: "JSON content type", method: "POST", query: tid + "&en=a", ctype: "application/json", body: "{}", status: 415,
			reason: `content type "application/json" not accepted; send text/plain (as sendBeacon does) or none`},
		{name: "PUT", method: "PUT", query: tid + "&en=a", status: 405,
			reason: "method PUT not allowed; gtag.js sends GET or POST"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := newRig(t)
			w := r.do(tt.method, tt.query, tt.ctype, strings.NewReader(tt.body), nil)
			if w.Code != tt.status || w.Body.String() != tt.reason+"\n" {
				t.Fatalf("got %d %q\nwant %d %q", w.Code, w.Body, tt.status, tt.reason+"\n")
			}
			if got := w.Header().Get("Retry-After"); got != tt.retryAfter {
				t.Fatalf("Retry-After %q, want %q", got, tt.retryAfter)
			}
			if len(r.q.calls) != 0 {
				t.Fatalf("refused request appended %d times", len(r.q.calls))
			}
			if (r.nudges > 0) != tt.nudge {
				t.Fatalf("config refresh nudged %d times, want nudge=%v", r.nudges, tt.nudge)
			}
		})
	}
}

func TestNoConfigYet(t *testing.T) {
	r := newRig(t)
	r.sites = nil
	w := r.do(http.MethodGet, "tid="+testTID+"&en=a", "", nil, nil)
	if w.Code != http.StatusServiceUnavailable || w.Header().Get("Retry-After") != "5" ||
		!strings.Contains(w.Body.String(), "no site config yet") || r.nudges != 1 {
		t.Fatalf("got %d %q (Retry-After %q, nudges %d)", w.Code, w.Body, w.Header().Get("Retry-After"), r.nudges)
	}
}

func TestBodyLimit(t *testing.T) {
	line := "en=page_view&dl=https%3A%2F%2Fshop.test%2F\n"
	fill := func(n int) string { // a valid body of exactly n bytes
		b := strings.Repeat(line, n/len(line))
		return b + strings.Repeat("\n", n-len(b))
	}
	r := newRig(t)
	if w := r.do(http.MethodPost, "tid="+testTID, "text/plain", strings.NewReader(fill(16384)), nil); w.Code != http.StatusNoContent {
		t.Fatalf("16384-byte body: %d %q, want 204", w.Code, w.Body)
	}
	want := "body larger than 16384 bytes, GA4's limit; send fewer events per request\n"
	// Declared length over the limit, and a chunked body (length unknown)
	// that runs over it.
	for _, body := range []io.Reader{strings.NewReader(fill(16385)), io.MultiReader(strings.NewReader(fill(16385)))} {
		r := newRig(t)
		w := r.do(http.MethodPost, "tid="+testTID, "text/plain", body, nil)
		if w.Code != http.StatusRequestEntityTooLarge || w.Body.String() != want {
			t.Fatalf("16385-byte body: %d %q, want 413 %q", w.Code, w.Body, want)
		}
		if len(r.q.calls) != 0 {
			t.Fatal("oversized body appended")
		}
	}
}

func TestCORS(t *testing.T) {
	r := newRig(t)
	w := r.do(http.MethodOptions, "", "", nil, map[string]string{
		"Origin": "https://shop.test", "Access-Control-Request-Method": "POST", "Access-Control-Request-Headers": "content-type",
	})
	h := w.Header()
	if w.Code != http.StatusNoContent || h.Get("Access-Control-Allow-Origin") != "https://shop.test" ||
		h.Get("Access-Control-Allow-Credentials") != "true" || !strings.Contains(h.Get("Access-Control-Allow-Methods"), "POST") ||
		h.Get("Access-Control-Allow-Headers") != "content-type" || h.Get("Access-Control-Max-Age") == "" {
		t.Fatalf("preflight: %d %v", w.Code, h)
	}
	if len(r.q.calls) != 0 {
		t.Fatal("preflight appended")
	}
	w = r.do(http.MethodPost, "tid="+testTID+"&en=a", "text/plain", strings.NewReader(""), map[string]string{"Origin": "https://shop.test"})
	if w.Code != http.StatusNoContent || w.Header().Get("Access-Control-Allow-Origin") != "https://shop.test" ||
		w.Header().Get("Access-Control-Allow-Credentials") != "true" || w.Header().Get("Vary") != "Origin" {
		t.Fatalf("cross-origin POST: %d %v", w.Code, w.Header())
	}
	// Errors carry CORS headers too, so the page can read the reason.
	w = r.do(http.MethodGet, "en=a", "", nil, map[string]string{"Origin": "https://shop.test"})
	if w.Code != http.StatusBadRequest || w.Header().Get("Access-Control-Allow-Origin") != "https://shop.test" {
		t.Fatalf("cross-origin error: %d %v", w.Code, w.Header())
	}
	// Same-origin requests get no CORS headers.
	w = r.do(http.MethodGet, "tid="+testTID+"&en=a", "", nil, nil)
	if w.Header().Get("Access-Control-Allow-Origin") != "" {
		t.Fatal("CORS header without Origin")
	}
}

func TestQueueErrorsNever204(t *testing.T) {
	tests := []struct {
		err        error
		status     int
		retryAfter string
		reason     string
	}{
		{fmt.Errorf("wrapped: %w", queue.ErrFull), 503, "30", "disk buffer is full"},
		{queue.ErrClosed, 503, "5", "shutting down"},
		{context.Canceled, 503, "1", "may or may not be stored"},
		{errors.New("disk on fire"), 500, "", "storing the event failed: disk on fire"},
	}
	for _, tt := range tests {
		r := newRig(t)
		r.q.err = tt.err
		w := r.do(http.MethodGet, "tid="+testTID+"&en=a", "", nil, nil)
		if w.Code != tt.status || w.Header().Get("Retry-After") != tt.retryAfter || !strings.Contains(w.Body.String(), tt.reason) {
			t.Fatalf("%v: got %d %q (Retry-After %q), want %d containing %q", tt.err, w.Code, w.Body, w.Header().Get("Retry-After"), tt.status, tt.reason)
		}
	}
}

// TestDurableBefore204 uses the real queue: once a 204 is written the events
// are in the file, so closing and reopening it (as after a crash) finds
// them; a closed queue gives a 503, never a 204.
func TestDurableBefore204(t *testing.T) {
	path := t.TempDir() + "/queue.db"
	q, err := queue.Open(queue.Options{Path: path})
	if err != nil {
		t.Fatal(err)
	}
	sites := testSites(t, testNow)
	c, err := New(Options{Sites: func() *Sites { return sites }, Queue: q, Now: func() time.Time { return testNow }})
	if err != nil {
		t.Fatal(err)
	}
	send := func(body string) int {
		req := httptest.NewRequest(http.MethodPost, "/g/collect?v=2&tid="+testTID, strings.NewReader(body))
		w := httptest.NewRecorder()
		c.ServeGtag(w, req)
		return w.Code
	}
	if code := send("en=one\nen=two"); code != http.StatusNoContent {
		t.Fatalf("status %d", code)
	}
	if code := send("en=three"); code != http.StatusNoContent {
		t.Fatalf("status %d", code)
	}
	if err := q.Close(); err != nil {
		t.Fatal(err)
	}
	if code := send("en=after_close"); code != http.StatusServiceUnavailable {
		t.Fatalf("closed queue: status %d, want 503", code)
	}

	q, err = queue.Open(queue.Options{Path: path})
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()
	seq, ok, err := q.Seal(100)
	if err != nil || !ok {
		t.Fatalf("seal after reopen: ok=%v err=%v", ok, err)
	}
	wire, err := q.Segment(seq)
	if err != nil {
		t.Fatal(err)
	}
	b, err := protocol.DecodeBatch(wire)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range b.Events {
		names = append(names, e.Name)
	}
	if strings.Join(names, ",") != "one,two,three" {
		t.Fatalf("events after reopen: %v, want one,two,three", names)
	}
}

// The events of a POST whose lines switch between a site with today's
// salt and one without get each the site, visitor id and flags the line
// sent alone gets: the key looked up once per run of one site's events
// is that site's.
func TestPOSTVisitorKeyPerSite(t *testing.T) {
	r := newRig(t)
	lines := []string{"en=a", "en=b&tid=G-NOSALT", "en=c&tid=G-NOSALT", "en=d", "en=e&tid=G-NOSALT", "en=f&cid=2.2", "en=g"}
	var want []protocol.Event
	for _, l := range lines {
		r.q.calls = nil
		// A line's parameters come first: in one query the first value counts.
		if w := r.do(http.MethodGet, l+"&v=2&tid="+testTID+"&cid=1.1", "", nil, nil); w.Code != http.StatusNoContent {
			t.Fatalf("%s: status %d %q", l, w.Code, w.Body)
		}
		want = append(want, r.q.events(t)[0])
	}
	r.q.calls = nil
	body := strings.Join(lines, "\n") + "\n"
	if w := r.do(http.MethodPost, "v=2&tid="+testTID+"&cid=1.1", "text/plain", strings.NewReader(body), nil); w.Code != http.StatusNoContent {
		t.Fatalf("status %d %q", w.Code, w.Body)
	}
	got := r.q.events(t)
	if len(got) != len(want) {
		t.Fatalf("%d events, want %d", len(got), len(want))
	}
	for i := range got {
		g, w := got[i], want[i]
		if g.Name != w.Name || g.Site != w.Site || g.Visitor != w.Visitor || g.Flags != w.Flags {
			t.Fatalf("event %s: site %d, visitor %x, flags %b; sent alone %d, %x, %b", g.Name, g.Site, g.Visitor, g.Flags, w.Site, w.Visitor, w.Flags)
		}
	}
	if want[0].Site == want[1].Site || want[0].Visitor == want[5].Visitor {
		t.Fatalf("sites %d and %d, visitors %x and %x: want two sites and two visitors", want[0].Site, want[1].Site, want[0].Visitor, want[5].Visitor)
	}
}

// buildEventInto over an Event that held another hit's event gives what
// buildEvent gives from nothing: no field of the earlier event (items,
// parameters, user properties, referrer, flags, commerce) stays.
func TestBuildEventIntoReused(t *testing.T) {
	sites := testSites(t, testNow)
	site, _ := sites.Lookup(testTID)
	key, err := sites.Key(site.ID, testNow)
	if err != nil {
		t.Fatal(err)
	}
	ip := netip.MustParseAddr(testIP)
	lines := []string{
		"en=page_view&dl=https%3A%2F%2Fshop.test%2Fa%3Fq%3D1&dr=https%3A%2F%2Fother.test%2F&dt=A+a%40b.example&_ss=1&_fv=1",
		"en=purchase&cu=EUR&ep.transaction_id=T1&epn.value=9.5&epn.tax=1&epn.shipping=2&pr1=idSKU1~nmShirt~pr9.5~qt2&pr2=idSKU2~nmHat",
		"en=scroll&epn.percent_scrolled=90&up.plan=pro&upn.age=3&_et=1200&seg=1",
		"en=click&ep.link_domain=docs.test&ep.outbound=true&uid=u1&gcs=G100",
		"en=x",
		"en=page_view&dl=https%3A%2F%2Fshop.test%2F&_p=1",
		"en=login&sid=99&sct=4&_nsi=1&ep.mail=a%40b.example",
	}
	r := rand.New(rand.NewPCG(41, 42))
	var e protocol.Event
	for range 500 {
		l := lines[r.IntN(len(lines))]
		hits, err := ParseGtag("v=2&tid="+testTID+"&cid=1.1", []byte(l))
		if err != nil {
			t.Fatalf("%s: %v", l, err)
		}
		h := &hits[0]
		want, wantErr := buildEvent(h, site, key, nil, ip, testUA, testNow, nil)
		gotErr := buildEventInto(&e, h, site, key, nil, ip, testUA, testNow, nil)
		if (gotErr == nil) != (wantErr == nil) {
			t.Fatalf("%s: buildEventInto error %v, buildEvent %v", l, gotErr, wantErr)
		}
		if d := cmp.Diff(want, e, cmpopts.EquateNaNs()); d != "" {
			t.Fatalf("%s: buildEventInto over an earlier event differs from buildEvent (-want +got):\n%s", l, d)
		}
	}
}

// mediaType gives what mime.ParseMediaType gives, error or media type,
// for the common Content-Type values it knows, their variants in case,
// spacing and parameters, and broken ones.
func TestMediaType(t *testing.T) {
	cts := []string{"", "text/plain", "TEXT/PLAIN", "text/plain;", "text/plain;charset=UTF-8;", "text/plain;charset", "text/plain;;charset=UTF-8",
		"text/plain ; charset=UTF-8", "text/plain;charset=\"UTF-8\"", "application/json;charset=UTF-8;x=1", "application/json;x", "text/",
		"/json", "application/x-www-form-urlencoded;charset=", "multipart/form-data; boundary=x", "text/html"}
	for ct := range commonMediaTypes {
		cts = append(cts, ct, strings.ToUpper(ct), ct+";", ct+"; q=1", " "+ct, ct+" ", strings.ReplaceAll(ct, ";", ";;"))
	}
	if len(commonMediaTypes) < 13 {
		t.Fatalf("%d common media types: one of the list does not parse", len(commonMediaTypes))
	}
	for _, ct := range cts {
		got, err := mediaType(ct)
		want, _, wantErr := mime.ParseMediaType(ct)
		if got != want || (err == nil) != (wantErr == nil) {
			t.Fatalf("mediaType(%q) = %q, %v; mime.ParseMediaType gives %q, %v", ct, got, err, want, wantErr)
		}
	}
}
