package demo

import (
	"math/rand/v2"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"
)

func TestPlanVisit(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	now := time.Date(2025, 3, 4, 10, 0, 0, 0, time.UTC)
	const visits = 3000
	names := map[string]int{}
	referrers := map[string]bool{}
	paths := map[string]bool{}
	agents := map[string]bool{}
	bounces, campaigns, returning := 0, 0, 0
	for range visits {
		hits := planVisit(r, "G-DEMO123456", now, 4*time.Second)
		if len(hits) == 0 {
			t.Fatal("a visit without hits")
		}
		first := hits[0].params
		if first.Get("en") != "page_view" || first.Get("_ss") != "1" || first.Get("_et") != "" || hits[0].pause != 0 {
			t.Fatalf("first hit %v: want a page_view starting the session at once, without engagement time", first)
		}
		if first.Get("sct") != "1" {
			returning++
		} else if first.Get("_fv") != "1" {
			t.Fatalf("a first session without _fv: %v", first)
		}
		referrers[first.Get("dr")] = true
		if strings.Contains(first.Get("dl"), "utm_medium=") {
			campaigns++
		}
		pageViews := 0
		for i, h := range hits {
			v := h.params
			for _, k := range []string{"v", "tid", "cid", "sid", "sct", "_s", "en", "dl", "dt", "ul", "sr", "seg"} {
				if v.Get(k) == "" {
					t.Fatalf("hit %d lacks %s: %v", i, k, v)
				}
			}
			if v.Get("v") != "2" || v.Get("tid") != "G-DEMO123456" {
				t.Fatalf("hit %d: v=%s tid=%s", i, v.Get("v"), v.Get("tid"))
			}
			if v.Get("cid") != first.Get("cid") || v.Get("sid") != first.Get("sid") || h.userAgent != hits[0].userAgent {
				t.Fatalf("hit %d changed identity within a visit: %v vs %v", i, v, first)
			}
			if v.Get("_s") != strconv.Itoa(i+1) {
				t.Fatalf("hit %d has _s=%s, want %d", i, v.Get("_s"), i+1)
			}
			if i > 0 && (v.Get("_et") == "" || v.Get("_ss") != "") {
				t.Fatalf("later hit %d: _et=%q _ss=%q", i, v.Get("_et"), v.Get("_ss"))
			}
			if h.pause < 0 || h.pause > 4*time.Second {
				t.Fatalf("hit %d pause %s outside [0, 4s]", i, h.pause)
			}
			u, err := url.Parse(v.Get("dl"))
			if err != nil || u.Host != SiteDomain {
				t.Fatalf("hit %d dl %q not on %s", i, v.Get("dl"), SiteDomain)
			}
			if v.Get("en") == "page_view" {
				pageViews++
			}
			names[v.Get("en")]++
			paths[u.Path] = true
			agents[h.userAgent] = true
		}
		if pageViews == 1 {
			bounces++
		}
	}
	if names["page_view"] < visits {
		t.Errorf("%d page views over %d visits", names["page_view"], visits)
	}
	for _, ev := range customEvents {
		if names[ev.name] == 0 {
			t.Errorf("custom event %s never sent", ev.name)
		}
	}
	if len(referrers) < 6 || !referrers[""] {
		t.Errorf("referrers %v: want a mix including direct visits", referrers)
	}
	if len(paths) != len(pages) || len(agents) != len(devices) {
		t.Errorf("%d of %d pages and %d of %d devices seen", len(paths), len(pages), len(agents), len(devices))
	}
	// Shares drawn from fixed weights; the seed is fixed, the bounds loose.
	share := func(n int) float64 { return float64(n) / visits }
	if s := share(bounces); s < 0.3 || s > 0.5 {
		t.Errorf("bounce share %.2f, want about 0.4", s)
	}
	if s := share(returning); s < 0.18 || s > 0.32 {
		t.Errorf("returning share %.2f, want about 0.25", s)
	}
	if campaigns == 0 {
		t.Error("no campaign-tagged landing pages")
	}
}
