package collect

import (
	"bytes"
	"net"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"testing"

	"github.com/valyala/fasthttp"
)

// TestTransportsAnswerAlike sends the same requests through the net/http
// routes (Register) and the native fasthttp handlers (FastHandler), each
// with a collector of its own, and requires the same status, body and
// headers, and the same events queued: the handlers are written once, but
// each transport reads the request and writes the answer its own way.
func TestTransportsAnswerAlike(t *testing.T) {
	type request struct {
		name, method, target, body string
		header                     map[string]string
	}
	text := map[string]string{"Content-Type": "text/plain;charset=UTF-8"}
	json := map[string]string{"Content-Type": "application/json"}
	mpQuery := "?measurement_id=" + testTID + "&api_secret=" + testSecret
	requests := []request{
		{"GET page view", "GET", "/g/collect?" + pageView, "", nil},
		{"GET page view cross-origin", "GET", "/g/collect?" + pageView, "", map[string]string{"Origin": "https://shop.test"}},
		{"POST two events", "POST", "/g/collect?v=2&tid=" + testTID + "&cid=1.2&dl=https%3A%2F%2Fshop.test%2F",
			"en=page_view\nen=scroll&epn.percent_scrolled=90\n", text},
		{"POST no content type", "POST", "/g/collect?v=2&tid=" + testTID + "&cid=1.2&dl=https%3A%2F%2Fshop.test%2F", "en=click\n", nil},
		{"consent denied", "GET", "/g/collect?" + pageView + "&gcs=G100", "", nil},
		{"DNT", "GET", "/g/collect?" + pageView, "", map[string]string{"DNT": "1"}},
		{"GPC", "GET", "/g/collect?" + pageView, "", map[string]string{"Sec-GPC": "1"}},
		{"bad event name", "GET", "/g/collect?v=2&tid=" + testTID + "&en=" + strings.Repeat("x", 41), "", nil},
		{"unknown tid", "GET", "/g/collect?v=2&tid=G-NOPE&en=page_view", "", nil},
		{"body over GA4's limit", "POST", "/g/collect?v=2&tid=" + testTID, "en=a&x=" + strings.Repeat("x", DefaultMaxBodyBytes), text},
		{"wrong content type", "POST", "/g/collect?v=2&tid=" + testTID, "en=a", map[string]string{"Content-Type": "image/png"}},
		{"PUT", "PUT", "/g/collect?" + pageView, "", nil},
		{"preflight", "OPTIONS", "/g/collect", "", map[string]string{"Origin": "https://shop.test",
			"Access-Control-Request-Method": "POST", "Access-Control-Request-Headers": "content-type"}},
		{"t.js event", "POST", "/api/event", `{"m":"` + testTID + `","n":"signup","u":"https://shop.test/plans"}`, text},
		{"t.js GET", "GET", "/api/event", "", nil},
		{"MP good", "POST", "/mp/collect" + mpQuery, string(fixture(t, "good.json")), json},
		{"MP mixed", "POST", "/mp/collect" + mpQuery, string(fixture(t, "mixed.json")), json},
		{"MP bad JSON", "POST", "/mp/collect" + mpQuery, string(fixture(t, "bad_json.json")), json},
		{"MP wrong secret", "POST", "/mp/collect?measurement_id=" + testTID + "&api_secret=nope", string(fixture(t, "good.json")), json},
		{"MP debug", "POST", "/debug/mp/collect" + mpQuery, string(fixture(t, "too_many_events.json")), json},
	}
	compared := []string{"Content-Type", "Cache-Control", "Retry-After", "Allow", "X-Content-Type-Options",
		"Access-Control-Allow-Origin", "Access-Control-Allow-Credentials", "Access-Control-Allow-Methods",
		"Access-Control-Allow-Headers", "Access-Control-Max-Age", "Avila-Validation"}

	viaHTTP, viaFast := newMPRig(t), newMPRig(t)
	mux := http.NewServeMux()
	viaHTTP.c.Register(mux)
	for _, rq := range requests {
		req := httptest.NewRequest(rq.method, rq.target, strings.NewReader(rq.body))
		req.RemoteAddr = testIP + ":51234"
		req.Header.Set("User-Agent", testUA)
		for k, v := range rq.header {
			req.Header.Set(k, v)
		}
		w := httptest.NewRecorder()
		mux.ServeHTTP(w, req)

		var fr fasthttp.Request
		fr.Header.SetMethod(rq.method)
		fr.SetRequestURI(rq.target)
		fr.Header.Set("User-Agent", testUA)
		for k, v := range rq.header {
			fr.Header.Set(k, v)
		}
		if rq.body != "" {
			fr.SetBodyString(rq.body)
		}
		var ctx fasthttp.RequestCtx
		ctx.Init(&fr, &net.TCPAddr{IP: net.ParseIP(testIP), Port: 51234}, nil)
		serve := viaFast.c.FastHandler(ctx.Path())
		if serve == nil {
			t.Fatalf("%s: no native handler for %s", rq.name, ctx.Path())
		}
		serve(&ctx)

		if got, want := ctx.Response.StatusCode(), w.Code; got != want {
			t.Errorf("%s: status %d natively, %d through net/http (%q)", rq.name, got, want, w.Body.String())
		}
		if got, want := string(ctx.Response.Body()), w.Body.String(); got != want {
			t.Errorf("%s: body %q natively, %q through net/http", rq.name, got, want)
		}
		for _, h := range compared {
			if got, want := string(ctx.Response.Header.Peek(h)), w.Header().Get(h); got != want {
				t.Errorf("%s: %s %q natively, %q through net/http", rq.name, h, got, want)
			}
		}
		if got, want := strings.Join(peekAll(&ctx.Response.Header, "Vary"), ", "), strings.Join(w.Header().Values("Vary"), ", "); got != want {
			t.Errorf("%s: Vary %q natively, %q through net/http", rq.name, got, want)
		}
	}
	got, want := viaFast.q.events(t), viaHTTP.q.events(t)
	if len(want) < 8 {
		t.Fatalf("only %d events stored through net/http; the requests should store more", len(want))
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("events queued natively differ from net/http's:\n%+v\n%+v", got, want)
	}
	if !reflect.DeepEqual(viaFast.rejected, viaHTTP.rejected) {
		t.Errorf("MP rejections natively %v, through net/http %v", viaFast.rejected, viaHTTP.rejected)
	}
}

// FastHandler has handlers for the collection paths only.
func TestFastHandlerPaths(t *testing.T) {
	c := newRig(t).c
	for _, p := range []string{"/g/collect", "/api/event", "/mp/collect", "/debug/mp/collect"} {
		if c.FastHandler([]byte(p)) == nil {
			t.Errorf("%s: no native handler", p)
		}
	}
	for _, p := range []string{"/t.js", "/", "/g/collect/", "/metrics", "/G/COLLECT"} {
		if c.FastHandler([]byte(p)) != nil {
			t.Errorf("%s: a native handler, want none", p)
		}
	}
}

func peekAll(h *fasthttp.ResponseHeader, name string) []string {
	var out []string
	for _, v := range h.PeekAll(name) {
		out = append(out, string(bytes.Clone(v)))
	}
	return out
}
