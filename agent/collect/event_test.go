package collect

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/avila-analytics/avila/protocol"
)

func (r *rig) event(contentType, body string, hdr map[string]string) *httptest.ResponseRecorder {
	req := httptest.NewRequest(http.MethodPost, "/api/event", strings.NewReader(body))
	req.RemoteAddr = testIP + ":4000"
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

func TestTrackerEventStored(t *testing.T) {
	r := newRig(t)
	body := `{"m":"` + testTID + `","n":"signup","u":"https://Shop.test/plans?ref=mail&utm_campaign=x#y","r":"https://news.test/a?id=1",` +
		`"t":"Plans","l":"en-GB","s":"1280x720","p":{"plan":"pro","seats":3,"trial":true}}`
	w := r.event("text/plain;charset=UTF-8", body, map[string]string{"Origin": "https://shop.test"})
	if w.Code != http.StatusNoContent || w.Header().Get("Access-Control-Allow-Origin") != "https://shop.test" {
		t.Fatalf("status %d %q, CORS %q", w.Code, w.Body, w.Header().Get("Access-Control-Allow-Origin"))
	}
	evs := r.q.events(t)
	if len(evs) != 1 {
		t.Fatalf("%d events, want 1", len(evs))
	}
	want := protocol.Event{Site: testSite, TimeMicros: testNow.UnixMicro(), Name: "signup", Visitor: evs[0].Visitor,
		Host: "shop.test", Path: "/plans?utm_campaign=x", Title: "Plans", Referrer: "https://news.test/a", Language: "en-gb",
		Screen: "1280x720", Params: map[string]string{"plan": "pro", "trial": "true"}, NumParams: map[string]float64{"seats": 3}}
	if d := cmp.Diff(want, evs[0]); d != "" || evs[0].Visitor == 0 {
		t.Fatalf("event (-want +got):\n%s", d)
	}
	// application/json works too (after a preflight).
	if w := r.event("application/json", `{"m":"`+testTID+`","n":"page_view"}`, nil); w.Code != http.StatusNoContent {
		t.Fatalf("application/json: %d %q", w.Code, w.Body)
	}
	if w := r.event("text/plain", `{"m":"`+testTID+`","n":"page_view"}`, map[string]string{"DNT": "1"}); w.Code != http.StatusNoContent {
		t.Fatalf("DNT: %d", w.Code)
	}
	if n := len(r.q.events(t)); n != 2 {
		t.Fatalf("%d events stored, want 2 (the DNT one dropped)", n)
	}
}

func TestTrackerEventRefusals(t *testing.T) {
	f := func(contentType, body string, wantStatus int, want string) {
		t.Helper()
		r := newRig(t)
		w := r.event(contentType, body, nil)
		if w.Code != wantStatus || strings.TrimSpace(w.Body.String()) != want {
			t.Fatalf("%s: got %d %q, want %d %q", body, w.Code, w.Body, wantStatus, want)
		}
		if len(r.q.calls) != 0 {
			t.Fatal("refused event stored")
		}
	}
	tid := `"m":"` + testTID + `"`
	f("text/plain", `{"n":"page_view"}`, 400, "m: missing measurement id (G-…); set data-id on the script tag")
	f("text/plain", `{`+tid+`}`, 400, "n: missing event name (rule event_name_required)")
	f("text/plain", `{`+tid+`,"n":"sign up"}`, 400, `n: event name "sign up" must start with a letter and hold only letters, digits and underscores (rule name_pattern)`)
	f("text/plain", `{`+tid+`,"n":"`+strings.Repeat("a", 41)+`"}`, 400, "n: event name has 41 characters, GA4 allows 40 (rule event_name_length)")
	f("text/plain", `{`+tid+`,"n":"a","p":{"x":"`+strings.Repeat("v", 101)+`"}}`, 400, "p.x: value has 101 characters, GA4 allows 100 (rule param_value_length)")
	f("text/plain", `{`+tid+`,"n":"a","p":{"x":[1]}}`, 400, "p.x: value must be a string, number or boolean")
	f("text/plain", `{`+tid+`,"n":"a","cid":"1"}`, 400, `body: not the t.js event JSON: Cannot find field "cid".`)
	f("text/plain", `{`+tid+`,"n":"a"`, 400, "body: not the t.js event JSON: The body is empty or the JSON ends early.")
	f("image/png", `{}`, 415, `content type "image/png" not accepted; send text/plain (as t.js does) or none`)
	f("text/plain", `{"m":"G-NOPE","n":"a"}`, 400,
		`tid: unknown measurement id "G-NOPE"; no site with it is configured on this agent (a site created just now is known within seconds)`)
}

func TestTrackerEventPreflight(t *testing.T) {
	r := newRig(t)
	req := httptest.NewRequest(http.MethodOptions, "/api/event", nil)
	req.Header.Set("Origin", "https://shop.test")
	req.Header.Set("Access-Control-Request-Method", "POST")
	req.Header.Set("Access-Control-Request-Headers", "content-type")
	w := httptest.NewRecorder()
	mux := http.NewServeMux()
	r.c.Register(mux)
	mux.ServeHTTP(w, req)
	h := w.Header()
	if w.Code != http.StatusNoContent || h.Get("Access-Control-Allow-Origin") != "https://shop.test" ||
		!strings.Contains(h.Get("Access-Control-Allow-Methods"), "POST") || h.Get("Access-Control-Allow-Headers") != "content-type" {
		t.Fatalf("preflight: %d %v", w.Code, h)
	}
}

func TestEmailsScrubbedEverywhere(t *testing.T) {
	r := newRig(t)
	body := `{"m":"` + testTID + `","n":"contact","u":"https://shop.test/u/ann%40mail.test?utm_term=ann@mail.test",` +
		`"t":"Profile of ann@mail.test","p":{"from":"Ann <ann@mail.test>"}}`
	if w := r.event("text/plain", body, nil); w.Code != http.StatusNoContent {
		t.Fatalf("status %d %q", w.Code, w.Body)
	}
	q := "v=2&tid=" + testTID + "&en=page_view&up.contact=bo%40mail.test"
	if w := r.do(http.MethodGet, q, "", nil, nil); w.Code != http.StatusNoContent {
		t.Fatalf("gtag: status %d %q", w.Code, w.Body)
	}
	evs := r.q.events(t)
	if e := evs[0]; e.Path != "/u/[email]?utm_term=%5Bemail%5D" || e.Title != "Profile of [email]" || e.Params["from"] != "Ann <[email]>" {
		t.Fatalf("event kept an e-mail: %+v", e)
	}
	if evs[1].UserProps["contact"] != "[email]" {
		t.Fatalf("user property kept an e-mail: %+v", evs[1].UserProps)
	}
	for _, call := range r.q.calls {
		for _, b := range call {
			if strings.Contains(string(b), "mail.test") {
				t.Fatalf("queued event holds an address: %q", b)
			}
		}
	}
}
