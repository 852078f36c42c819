package collect

import (
	"math/rand/v2"
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

// appendGtag parses each hit in place over dst's array: over an array
// still holding an earlier POST's hits (not even cleared), the hits of
// generated POSTs and GETs are those ParseGtag gives into nothing, and a
// refused request leaves none of its hits in the array.
func TestAppendGtagOverEarlierHits(t *testing.T) {
	r := rand.New(rand.NewPCG(51, 52))
	lines := []string{
		"en=page_view&dl=https%3A%2F%2Fshop.test%2Fa&dr=https%3A%2F%2Fo.test%2F&dt=A&_ss=1&_fv=1",
		"en=purchase&cu=EUR&ep.transaction_id=T1&epn.value=9.5&pr1=idSKU1~nmShirt~pr9.5~qt2&pr2=idSKU2",
		"en=scroll&epn.percent_scrolled=90&up.plan=pro&upn.age=3&_et=1200&seg=1",
		"en=click&ep.link_domain=docs.test&ep.outbound=true&uid=u1&gcs=G100&sid=5&sct=2",
		"en=x", "", "en=login&_nsi=1&cid=9.9",
	}
	bad := []string{"en=" + strings.Repeat("x", 41), "en=a&sid=x", "en=a&%zz=1", "en=a&seg=2"}
	var maps paramMaps
	var dst []Hit
	refusedChecked := 0
	for range 2000 {
		var body strings.Builder
		for range r.IntN(6) {
			body.WriteString(lines[r.IntN(len(lines))])
			body.WriteString("\n")
		}
		refused := r.IntN(8) == 0
		if refused {
			body.WriteString(bad[r.IntN(len(bad))])
		}
		query := "v=2&tid=" + testTID + "&cid=1.1&" + [...]string{"en=page_view", "ep.k=v", "epn.n=1", "sid=7"}[r.IntN(4)]
		want, wantErr := ParseGtag(query, []byte(body.String()))
		got, err := appendGtag(dst[:0], &maps, query, []byte(body.String()))
		if (err == nil) != (wantErr == nil) || err != nil && err.Error() != wantErr.Error() {
			t.Fatalf("%q %q: error %v, ParseGtag %v", query, body.String(), err, wantErr)
		}
		if err != nil {
			// The refused line is the last: every line before it that
			// is not blank was parsed into the array, when it had room
			// for them all.
			n := -1 // the refused line's
			for _, l := range strings.Split(body.String(), "\n") {
				if l != "" {
					n++
				}
			}
			n = max(n, 0) // a body of blank lines: the query string is the hit refused
			if cap(dst) >= strings.Count(body.String(), "\n")+1 {
				for i, h := range dst[:n] {
					if !reflect.DeepEqual(h, Hit{}) {
						t.Fatalf("%q: refused, yet hit %d (%q) stays in the array", body.String(), i, h.Name)
					}
				}
				refusedChecked++
			}
			continue
		}
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("%q %q: over earlier hits\n%+v\nParseGtag gives\n%+v", query, body.String(), got, want)
		}
		dst = got // the next request parses over these, as the pool would hand them on
	}
	if refusedChecked < 50 {
		t.Fatalf("%d refusals checked: the generator misses them", refusedChecked)
	}
}
