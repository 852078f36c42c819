package collect

import (
	"bytes"
	"fmt"
	"net"
	"net/url"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/avila-analytics/avila/agent/enrich"
	"github.com/avila-analytics/avila/agent/queue"
	"github.com/avila-analytics/avila/protocol"
)

// benchUA is a current desktop Chrome user agent, as make bench sends.
const benchUA = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0.0.0 Safari/537.36"

// pathRequest is one request of BenchmarkAgentPath.
type pathRequest struct {
	method, target string
	body           []byte
	contentType    string
}

// BenchmarkAgentPath sends make bench's three kinds of request through the
// native (fasthttp) handler with the agent's own enricher and a real queue
// (fdatasynced log, AES-GCM), sealing a segment (msgpack batch, zstd)
// whenever 2000 events are pending, as the shipper does: the agent's work
// per event short of the network. Requests rotate over 64 variants of
// visitors and pages. events/op is the events per request; compare
// B/op and allocs/op per event by dividing by it. wire-B/event is the
// compressed batch bytes per event of the segments sealed (what is sent,
// and what the aggregator stages in PostgreSQL).
func BenchmarkAgentPath(b *testing.B) {
	for _, tc := range []struct {
		name   string
		events int
		reqs   func(i int) pathRequest
	}{
		{"single", 1, func(int) pathRequest {
			return pathRequest{method: "GET", target: "/g/collect?" + benchSingleHit}
		}},
		{"batched", 20, benchBatched},
		{"mp", 25, benchMP},
	} {
		b.Run(tc.name, func(b *testing.B) {
			q, err := queue.Open(queue.Options{Path: filepath.Join(b.TempDir(), "queue.db"), MaxBytes: 1 << 34})
			if err != nil {
				b.Fatal(err)
			}
			defer func() { _ = q.Close() }()
			en, err := enrich.New(enrich.Config{})
			if err != nil {
				b.Fatal(err)
			}
			defer func() { _ = en.Close() }()
			reqs, serve := pathRig(b, q, en, tc.reqs)
			addr := &net.TCPAddr{IP: net.ParseIP("198.51.100.23"), Port: 51234}
			var ctx fasthttp.RequestCtx
			i := 0
			var wireBytes, wireEvents int // of the segments sealed
			b.ReportAllocs()
			for b.Loop() {
				ctx.Init(&reqs[i%len(reqs)], addr, nil)
				serve(&ctx)
				if s := ctx.Response.StatusCode(); s != 204 {
					b.Fatalf("status %d %s", s, ctx.Response.Body())
				}
				ctx.Response.Reset()
				i++
				for q.Pending() >= 2000 {
					seq, ok, err := q.Seal(2000)
					if err != nil || !ok {
						b.Fatalf("seal: ok %v, %v", ok, err)
					}
					segs, err := q.OldestSegments(1)
					if err != nil || len(segs) != 1 || segs[0].Seq != seq {
						b.Fatalf("sealed segment %d: %v, %v", seq, segs, err)
					}
					wireBytes, wireEvents = wireBytes+segs[0].Bytes, wireEvents+segs[0].Events
					if err := q.Ack(seq); err != nil {
						b.Fatal(err)
					}
				}
			}
			b.ReportMetric(float64(tc.events), "events/op")
			if wireEvents > 0 {
				b.ReportMetric(float64(wireBytes)/float64(wireEvents), "wire-B/event")
			}
		})
	}
}

// BenchmarkRequestPath is BenchmarkAgentPath's requests with a queue
// that keeps nothing: the agent's work per event from the request to its
// encoded events, without the queue's.
func BenchmarkRequestPath(b *testing.B) {
	for _, tc := range []struct {
		name   string
		events int
		reqs   func(i int) pathRequest
	}{
		{"single", 1, func(int) pathRequest {
			return pathRequest{method: "GET", target: "/g/collect?" + benchSingleHit}
		}},
		{"batched", 20, benchBatched},
		{"mp", 25, benchMP},
	} {
		b.Run(tc.name, func(b *testing.B) {
			en, err := enrich.New(enrich.Config{})
			if err != nil {
				b.Fatal(err)
			}
			defer func() { _ = en.Close() }()
			reqs, serve := pathRig(b, discard{}, en, tc.reqs)
			addr := &net.TCPAddr{IP: net.ParseIP("198.51.100.23"), Port: 51234}
			var ctx fasthttp.RequestCtx
			i := 0
			b.ReportAllocs()
			for b.Loop() {
				ctx.Init(&reqs[i%len(reqs)], addr, nil)
				serve(&ctx)
				if s := ctx.Response.StatusCode(); s != 204 {
					b.Fatalf("status %d %s", s, ctx.Response.Body())
				}
				ctx.Response.Reset()
				i++
			}
			b.ReportMetric(float64(tc.events), "events/op")
		})
	}
}

// pathRig is a collector of the bench's site over queue and en, its
// native handler, and 64 variants of the requests reqs makes.
func pathRig(b *testing.B, queue Appender, en Enricher, reqs func(i int) pathRequest) ([]fasthttp.Request, fasthttp.RequestHandler) {
	sites := benchSites(b)
	c, err := New(Options{Sites: func() *Sites { return sites }, Queue: queue, Enricher: en, Now: func() time.Time { return testNow }})
	if err != nil {
		b.Fatal(err)
	}
	out := make([]fasthttp.Request, 64)
	for i := range out {
		r := reqs(i)
		out[i].Header.SetMethod(r.method)
		out[i].SetRequestURI(r.target)
		out[i].Header.Set("User-Agent", benchUA)
		out[i].Header.Set("Accept-Language", "en-US,en;q=0.9")
		if r.contentType != "" {
			out[i].Header.Set("Content-Type", r.contentType)
		}
		if r.body != nil {
			out[i].SetBody(r.body)
		}
	}
	return out, c.FastHandler([]byte(string(out[0].URI().Path())))
}

func benchSites(tb testing.TB) *Sites {
	tb.Helper()
	s, err := NewSites(&protocol.Config{
		Sites: []protocol.Site{{ID: testSite, MeasurementID: testTID, APISecret: testSecret, Domains: []string{"www.bench.example"}, IdentitySecret: identitySecret(1)}},
		Salts: []protocol.Salt{{Site: testSite, Day: testNow.Format(time.DateOnly), Key: bytes.Repeat([]byte{7}, 32)}},
	})
	if err != nil {
		tb.Fatal(err)
	}
	return s
}

const benchSingleHit = "v=2&tid=" + testTID + "&cid=1987654321.1718000000&sid=1718000000&sct=3&seg=1&en=page_view&_et=1520" +
	"&ul=en-us&sr=1920x1080&dl=https%3A%2F%2Fwww.bench.example%2Fblog%2Fga4-wire-format%3Futm_source%3Dnewsletter" +
	"&dt=The+GA4+wire+format+%7C+Bench+Example+blog&dr=https%3A%2F%2Fwww.google.com%2F"

// benchBatched is a gtag.js POST of 20 events of one visitor, shaped as
// make bench's batched phase sends them.
func benchBatched(variant int) pathRequest {
	cid := strconv.Itoa(1_000_000_000+variant*7919) + ".1718000000"
	q := url.Values{
		"v": {"2"}, "tid": {testTID}, "cid": {cid}, "sid": {strconv.Itoa(1_718_000_000 + variant)}, "sct": {"1"},
		"seg": {"1"}, "ul": {"en-us"}, "sr": {"1440x900"},
	}
	var body bytes.Buffer
	for i := range 20 {
		page := (variant*20 + i*7) % 500
		line := url.Values{"dl": {fmt.Sprintf("https://www.bench.example/blog/post-%d", page)}, "dt": {fmt.Sprintf("Post %d | Bench Example blog", page)}}
		switch i % 4 {
		case 0:
			line.Set("en", "page_view")
			if variant%4 == 0 {
				line.Set("dr", fmt.Sprintf("https://news%d.example/item?id=%d", variant%30, i))
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
	return pathRequest{method: "POST", target: "/g/collect?" + q.Encode(), body: body.Bytes(), contentType: "text/plain;charset=UTF-8"}
}

// benchMP is a Measurement Protocol POST of 25 page views of one client,
// shaped as make bench's mp phase sends them.
func benchMP(variant int) pathRequest {
	var b bytes.Buffer
	fmt.Fprintf(&b, `{"client_id":"%d.1718000000","events":[`, 2_000_000_000+variant)
	for i := range 25 {
		if i > 0 {
			b.WriteByte(',')
		}
		page := (variant*25 + i*7) % 500
		fmt.Fprintf(&b, `{"name":"page_view","params":{"page_location":"https://www.bench.example/blog/post-%d","page_title":"Post %d | Bench Example blog","session_id":"%d","engagement_time_msec":%d}}`,
			page, page, 1_718_000_000+variant, 100+(variant*31+i)%5000)
	}
	b.WriteString("]}")
	return pathRequest{method: "POST", target: "/mp/collect?measurement_id=" + testTID + "&api_secret=" + testSecret,
		body: b.Bytes(), contentType: "application/json"}
}
