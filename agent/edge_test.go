package agent_test

import (
	"context"
	"net/http"
	"net/netip"
	"net/url"
	"strings"
	"testing"

	"github.com/avila-analytics/avila/agent"
	"github.com/avila-analytics/avila/agent/collect"
	"github.com/avila-analytics/avila/storage/postgres"
)

// TestEdgePolicyWired starts an agent with a trusted proxy, a per-client
// rate limit and the default DNT policy, and checks each reaches the
// requests: clients behind the proxy get buckets of their own, a client
// over its limit gets 429, a DNT hit is answered 204 and never stored,
// and /t.js is served.
func TestEdgePolicyWired(t *testing.T) {
	p := newPipeline(t)
	site := p.createSite()
	a, err := agent.Start(context.Background(), agent.Config{Listen: "127.0.0.1:0", DataDir: p.agentTo,
		Aggregators: []string{p.quic}, CAFile: p.agg.CAFile,
		TrustedProxies: []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")},
		RatePerIP:      collect.Rate{PerSecond: 0.001, Burst: 1},
		DoNotTrack:     collect.DNTDrop}, quiet)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = a.Shutdown(context.Background()) })
	waitReady(t, a)

	send := func(client, path string, hdr map[string]string) *http.Response {
		t.Helper()
		q := url.Values{"v": {"2"}, "tid": {site.MeasurementID}, "en": {"page_view"}, "dl": {"https://shop.test" + path}}
		req, _ := http.NewRequest(http.MethodGet, a.URL+"/g/collect?"+q.Encode(), nil)
		req.Header.Set("User-Agent", testUA)
		req.Header.Set("X-Forwarded-For", client)
		for k, v := range hdr {
			req.Header.Set(k, v)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp
	}
	for _, c := range []struct{ client, path string }{{"198.51.100.1", "/one"}, {"198.51.100.2", "/two"}} {
		if resp := send(c.client, c.path, nil); resp.StatusCode != http.StatusNoContent {
			t.Fatalf("%s: %d, want 204 (own bucket behind the trusted proxy)", c.client, resp.StatusCode)
		}
	}
	if resp := send("198.51.100.1", "/again", nil); resp.StatusCode != http.StatusTooManyRequests || resp.Header.Get("Retry-After") == "" {
		t.Fatalf("over the limit: %d Retry-After %q, want 429 with Retry-After", resp.StatusCode, resp.Header.Get("Retry-After"))
	}
	if resp := send("198.51.100.3", "/dnt", map[string]string{"DNT": "1"}); resp.StatusCode != http.StatusNoContent {
		t.Fatalf("DNT: %d, want 204", resp.StatusCode)
	}
	if code, body := do(http.MethodGet, a.URL+"/t.js", ""); code != http.StatusOK || !strings.Contains(body, "/api/event") {
		t.Fatalf("/t.js: %d %.60q", code, body)
	}
	p.waitStored(site.ID, map[string]int{"/one": 1, "/two": 1})
}

// TestSitePolicyWired: a site's DNT policy and kept query parameters, set
// in the database, reach a running agent through the aggregator's config:
// under an agent default of drop, the site with "cookieless" records DNT
// hits as one cookieless visitor and keeps its extra parameter, while
// another site's DNT hits are dropped and its URLs keep only utm_*.
func TestSitePolicyWired(t *testing.T) {
	p := newPipeline(t)
	ctx := context.Background()
	own, err := p.store.CreateSite(ctx, postgres.SiteSpec{Name: "own policy", Domains: []string{"shop.test"},
		Policy: postgres.SitePolicy{DNT: "cookieless", KeepParams: []string{"page"}}})
	if err != nil {
		t.Fatal(err)
	}
	other := p.createSite()
	a := p.startAgent() // --dnt drop, the default
	waitReady(t, a)
	send := func(tid, cid, path string, dnt bool) {
		t.Helper()
		q := url.Values{"v": {"2"}, "tid": {tid}, "cid": {cid}, "en": {"page_view"}, "dl": {"https://shop.test" + path}}
		req, _ := http.NewRequest(http.MethodGet, a.URL+"/g/collect?"+q.Encode(), nil)
		req.Header.Set("User-Agent", testUA)
		if dnt {
			req.Header.Set("DNT", "1")
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusNoContent {
			t.Fatalf("%s %s: %d, want 204", tid, path, resp.StatusCode)
		}
	}
	send(own.MeasurementID, "1.1", "/list?page=2&q=secret&utm_source=x", true)
	send(own.MeasurementID, "2.2", "/list?page=3", true)
	send(other.MeasurementID, "1.1", "/dropped", true)
	send(other.MeasurementID, "1.1", "/kept?page=2&utm_source=x", false)
	p.waitStored(own.ID, map[string]int{"/list?page=2&utm_source=x": 1, "/list?page=3": 1})
	p.waitStored(other.ID, map[string]int{"/kept?utm_source=x": 1})
	var visitors int
	if err := p.db.QueryRow(ctx, "SELECT count(DISTINCT visitor_id) FROM events WHERE site_id = $1", int32(own.ID)).Scan(&visitors); err != nil {
		t.Fatal(err)
	}
	if visitors != 1 {
		t.Fatalf("own-policy site: %d visitors, want 1 (cookieless: the two cids ignored)", visitors)
	}
}
