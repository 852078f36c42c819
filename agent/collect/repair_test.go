package collect

import (
	"net/url"
	"strings"
	"testing"
)

// Values the rules repair are stored repaired, answered 204 with the rules in
// Avila-Repaired, and counted once per event and rule; a valid hit carries
// no such header.
func TestRepairedHits(t *testing.T) {
	repaired := map[string]int{}
	r := newRigWith(t, func(o *Options) { o.CountRepaired = func(rule string) { repaired[rule]++ } })
	q := "v=2&tid=" + testTID + "&cid=1.2&en=page_view&dl=http%3A%2F%2Fshop.example%2Fa"
	if w := r.do("GET", q+"&dt=ok", "", nil, nil); w.Code != 204 || w.Header().Get("Avila-Repaired") != "" {
		t.Fatalf("valid hit: %d, Avila-Repaired %q", w.Code, w.Header().Get("Avila-Repaired"))
	}
	title := url.QueryEscape(strings.Repeat("é", 301))
	body := "en=a&dt=" + title + "\nen=b&dt=x%00y&ep.plan=%FFpro\nen=c&dt=" + title
	w := r.do("POST", q, "text/plain", strings.NewReader(body), nil)
	if w.Code != 204 || w.Header().Get("Avila-Repaired") != "page_title_length, invalid_utf8, nul_byte" {
		t.Fatalf("repaired hits: %d %q, Avila-Repaired %q", w.Code, w.Body, w.Header().Get("Avila-Repaired"))
	}
	ev := r.q.events(t)
	if len(ev) != 4 || ev[1].Title != strings.Repeat("é", 300) || ev[2].Title != "xy" || ev[2].Params["plan"] != "\uFFFDpro" {
		t.Fatalf("stored %+v", ev)
	}
	if repaired["page_title_length"] != 2 || repaired["nul_byte"] != 1 || repaired["invalid_utf8"] != 1 || len(repaired) != 3 {
		t.Fatalf("CountRepaired tally %v", repaired)
	}
}
