package bench

import (
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/avila-analytics/avila/internal/benchtraffic"
)

// benchHost is the host name of the pages the harness's hits come from;
// the sites list it as their own domain, so their referrers are external.
const benchHost = "www.bench.example"

// browserUA is a current desktop Chrome user agent: the agent treats hits
// without a browser's user agent differently, and real requests carry one.
const browserUA = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0.0.0 Safari/537.36"

// batchEvents is the number of events in one batched POST.
const batchEvents = 20

// hitHeader is what a browser's beacon carries that the agent reads.
func hitHeader() http.Header {
	return http.Header{"User-Agent": {browserUA}, "Accept-Language": {"en-US,en;q=0.9"}}
}

// singleHit is one gtag.js page view as a GET, the commonest request a
// site sends.
func singleHit(base, measurementID string) Request {
	q := url.Values{
		"v": {"2"}, "tid": {measurementID}, "cid": {"1987654321.1718000000"}, "sid": {"1718000000"}, "sct": {"3"},
		"seg": {"1"}, "en": {"page_view"}, "_et": {"1520"}, "ul": {"en-us"}, "sr": {"1920x1080"},
		"dl": {"https://" + benchHost + "/blog/ga4-wire-format?utm_source=newsletter"}, "dt": {"The GA4 wire format | Bench Example blog"},
		"dr": {"https://www.google.com/"},
	}
	return Request{Method: http.MethodGet, URL: base + "/g/collect?" + q.Encode(), Header: hitHeader()}
}

// batchedHits is a gtag.js POST carrying batchEvents events of one visitor:
// the query string holds what they share, each body line one event.
// variant picks the visitor, session, pages and referrers, so a set of
// variants is as varied as a site's traffic.
func batchedHits(base, measurementID string, variant int) Request {
	cid := strconv.Itoa(1_000_000_000+variant*7919) + ".1718000000"
	q := url.Values{
		"v": {"2"}, "tid": {measurementID}, "cid": {cid}, "sid": {strconv.Itoa(1_718_000_000 + variant)}, "sct": {"1"},
		"seg": {"1"}, "ul": {"en-us"}, "sr": {"1440x900"},
	}
	var body strings.Builder
	for i := range batchEvents {
		h := mix64(uint64(variant)*batchEvents + uint64(i))
		page := benchtraffic.Page(h)
		line := url.Values{"dl": {"https://" + benchHost + dictValue(kindPage, page)}, "dt": {dictValue(kindTitle, page)}}
		switch i % 4 {
		case 0:
			line.Set("en", "page_view")
			if (h>>40)%4 == 0 { // a quarter of page views come from another site
				line.Set("dr", dictValue(kindReferrer, int(h>>44)%dictSizes[kindReferrer]))
			}
			if i == 0 {
				line.Set("_ss", "1")
			}
		case 1:
			line.Set("en", "scroll")
			line.Set("epn.percent_scrolled", "90")
		case 2:
			line.Set("en", "user_engagement")
			line.Set("_et", strconv.Itoa(1000+(variant*31+i)%20000))
		case 3:
			line.Set("en", "click")
			line.Set("ep.link_domain", "docs.bench.example")
			line.Set("ep.outbound", "true")
		}
		body.WriteString(line.Encode())
		body.WriteByte('\n')
	}
	h := hitHeader()
	h.Set("Content-Type", "text/plain;charset=UTF-8")
	return Request{Method: http.MethodPost, URL: base + "/g/collect?" + q.Encode(), Header: h, Body: []byte(body.String())}
}

// batchedSet returns n distinct batched requests.
func batchedSet(base, measurementID string, n int) []Request {
	reqs := make([]Request, n)
	for i := range reqs {
		reqs[i] = batchedHits(base, measurementID, i)
	}
	return reqs
}

// withBase points r at another server, same path and query.
func withBase(r Request, base string) (Request, error) {
	u, err := url.Parse(r.URL)
	if err != nil {
		return Request{}, fmt.Errorf("bench: %w", err)
	}
	r.URL = base + u.RequestURI()
	return r, nil
}

// mpEvents is the number of events in one Measurement Protocol request,
// the most GA4 accepts.
const mpEvents = 25

// mpBatch is a GA4 Measurement Protocol POST of mpEvents events of one
// client, as server-side senders batch them.
func mpBatch(base, measurementID, apiSecret string, variant int) Request {
	var b strings.Builder
	fmt.Fprintf(&b, `{"client_id":"%d.1718000000","events":[`, 2_000_000_000+variant)
	for i := range mpEvents {
		if i > 0 {
			b.WriteByte(',')
		}
		h := mix64(uint64(variant)*mpEvents + uint64(i) + 1<<40)
		page := benchtraffic.Page(h)
		fmt.Fprintf(&b, `{"name":"page_view","params":{"page_location":"https://%s%s","page_title":"%s","session_id":"%d","engagement_time_msec":%d}}`,
			benchHost, dictValue(kindPage, page), dictValue(kindTitle, page), 1_718_000_000+variant, 100+h%5000)
	}
	b.WriteString("]}")
	q := url.Values{"measurement_id": {measurementID}, "api_secret": {apiSecret}}
	return Request{Method: http.MethodPost, URL: base + "/mp/collect?" + q.Encode(),
		Header: http.Header{"Content-Type": {"application/json"}, "User-Agent": {"bench-server/1.0"}}, Body: []byte(b.String())}
}
