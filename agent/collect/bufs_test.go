package collect

import (
	"net/http"
	"reflect"
	"strings"
	"testing"
)

// TestReusedBuffersCarryNothingOver sends a page view through a collector
// that has served a batch with parameters, items and a rejected line
// before, and through a fresh one: both store the same event.
func TestReusedBuffersCarryNothingOver(t *testing.T) {
	used, fresh := newRig(t), newRig(t)
	base := "v=2&tid=" + testTID + "&cid=1.2&dl=https%3A%2F%2Fshop.test%2Fa"
	body := "en=purchase&ep.coupon=x&epn.n=3&cu=EUR&pr1=idsku1~nmShoe~pr9.5&up.plan=pro\nen=scroll&epn.percent_scrolled=90\n"
	for range 3 {
		if w := used.do(http.MethodPost, base, "text/plain", strings.NewReader(body), nil); w.Code != http.StatusNoContent {
			t.Fatalf("batch: status %d %q", w.Code, w.Body)
		}
		if w := used.do(http.MethodPost, base, "text/plain", strings.NewReader("en=ok\nen="+strings.Repeat("x", 41)), nil); w.Code != http.StatusBadRequest {
			t.Fatalf("bad batch: status %d %q, want 400", w.Code, w.Body)
		}
	}
	before := len(used.q.events(t))
	for _, r := range []*rig{used, fresh} {
		if w := r.do(http.MethodGet, pageView, "", nil, nil); w.Code != http.StatusNoContent {
			t.Fatalf("page view: status %d %q", w.Code, w.Body)
		}
	}
	got, want := used.q.events(t)[before:], fresh.q.events(t)
	if len(got) != 1 || len(want) != 1 {
		t.Fatalf("%d and %d events stored, want 1 each", len(got), len(want))
	}
	if !reflect.DeepEqual(got[0], want[0]) {
		t.Fatalf("after other requests the page view is\n%+v\nfresh it is\n%+v", got[0], want[0])
	}
}

// TestOversizedBuffersNotKept: buffers a request grew past what gtag.js
// sends are not handed to later requests.
func TestOversizedBuffersNotKept(t *testing.T) {
	c := newRig(t).c
	big := &requestBufs{hits: make([]Hit, maxPooledHits+1), enc: make([]byte, 0, maxPooledEncBytes+1)}
	c.releaseBufs(big)
	if b := c.takeBufs(); b == big || cap(b.hits) > maxPooledHits || cap(b.enc) > maxPooledEncBytes {
		t.Fatalf("took buffers of %d hits and %d bytes, over the bounds %d and %d", cap(b.hits), cap(b.enc), maxPooledHits, maxPooledEncBytes)
	}
	small := &requestBufs{hits: make([]Hit, 3, maxPooledHits), enc: make([]byte, 10, 100)}
	small.hits[0].Name = "kept"
	c.releaseBufs(small)
	if small.hits[:1][0].Name != "" || len(small.hits) != 0 || len(small.enc) != 0 {
		t.Fatalf("released buffers still hold the request's hits or bytes: %d hits, %d bytes", len(small.hits), len(small.enc))
	}
}

// Parameter maps handed from one request's hits to the next's hold only
// the later hits' own parameters: a batch stores the same events after
// batches whose maps had other and more keys as it does fresh.
func TestReusedParamMapsCarryNothingOver(t *testing.T) {
	used, fresh := newRig(t), newRig(t)
	base := "v=2&tid=" + testTID + "&cid=1.2&dl=https%3A%2F%2Fshop.test%2Fa"
	first := "en=click&ep.a=1&ep.b=2&ep.c=3&epn.x=1&epn.y=2\nen=scroll&epn.percent_scrolled=90&ep.z=9\n"
	for range 3 {
		if w := used.do(http.MethodPost, base, "text/plain", strings.NewReader(first), nil); w.Code != http.StatusNoContent {
			t.Fatalf("first batch: status %d %q", w.Code, w.Body)
		}
	}
	before := len(used.q.events(t))
	second := "en=click&ep.link=x\nen=scroll&epn.percent_scrolled=25\nen=page_view\n"
	for _, r := range []*rig{used, fresh} {
		if w := r.do(http.MethodPost, base, "text/plain", strings.NewReader(second), nil); w.Code != http.StatusNoContent {
			t.Fatalf("second batch: status %d %q", w.Code, w.Body)
		}
	}
	got, want := used.q.events(t)[before:], fresh.q.events(t)
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("after other batches the events are\n%+v\nfresh they are\n%+v", got, want)
	}
}

// paramMaps keeps a hit's maps emptied, and not those grown past a few
// entries.
func TestParamMapsKept(t *testing.T) {
	big := map[string]string{}
	for i := range maxPooledMapLen + 1 {
		big[strings.Repeat("k", i+1)] = "v"
	}
	var m paramMaps
	m.keep([]Hit{{Params: map[string]string{"a": "1"}, NumParams: map[string]float64{"n": 1}}, {Params: big}})
	if len(m.str) != 1 || len(m.num) != 1 {
		t.Fatalf("kept %d string and %d number maps, want 1 and 1 (not the one of %d entries)", len(m.str), len(m.num), len(big))
	}
	if p, n := m.strings(), m.numbers(); len(p) != 0 || len(n) != 0 {
		t.Fatalf("reused maps hold %v and %v", p, n)
	}
	if p := m.strings(); p == nil || len(p) != 0 {
		t.Fatalf("with none kept, strings() = %v, want a new empty map", p)
	}
}
