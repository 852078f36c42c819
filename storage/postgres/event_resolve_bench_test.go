package postgres

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/avila-analytics/avila/protocol"
)

// resolveBenchEvents are n events of the end-to-end bench's shape (as
// aggregator/write's pipelineBatches) of site, decoded from their wire
// form as a derivation decodes staged rows (protocol.EventDecoder: equal
// strings share one allocation).
func resolveBenchEvents(tb testing.TB, site uint32, n int) []protocol.Event {
	tb.Helper()
	first := time.Date(2026, 12, 6, 10, 0, 0, 0, time.UTC)
	plain := protocol.AppendBatchHead(nil, "bench", 1, 0, n)
	for j := range n {
		v := (j / 20) % 2048
		h := uint64(j)*0x9e3779b97f4a7c15 ^ uint64(j)>>7
		page := int((h % 2000) * ((h >> 20) % 2000) / 2000)
		e := protocol.Event{Site: site, Visitor: 1 + uint64(v)*7919, SessionID: 1_718_000_000 + int64(v), SessionNum: 1,
			TimeMicros: first.Add(time.Duration(j) * 40 * time.Microsecond).UnixMicro(),
			Host:       "www.bench.example", Path: fmt.Sprintf("/page/%d", page), Title: fmt.Sprintf("Page %d", page),
			Language: "en-us", Screen: "1440x900", Country: "DE", City: "Berlin", Browser: "Chrome", OS: "Windows", Device: "desktop"}
		switch j % 4 {
		case 0:
			e.Name = "page_view"
			if (h>>40)%4 == 0 {
				e.Referrer = fmt.Sprintf("https://ref%d.example/", (h>>44)%300)
			}
			if j%20 == 0 {
				e.Flags |= protocol.FlagSessionStart
			}
		case 1:
			e.Name, e.NumParams = "scroll", map[string]float64{"percent_scrolled": 90}
		case 2:
			e.Name, e.EngageMs, e.Flags = "user_engagement", int64(1000+j%20000), protocol.FlagEngaged
		case 3:
			e.Name, e.Params = "click", map[string]string{"link_domain": "docs.bench.example", "outbound": "true"}
		}
		plain = protocol.AppendEvent(plain, &e)
	}
	var dec protocol.EventDecoder
	events, err := dec.Append(nil, protocol.CompressBatch(nil, plain))
	if err != nil {
		tb.Fatal(err)
	}
	return events
}

// benchTraffic stands for aggregator/channel's attribution (storage does
// not import it): a source per referrer.
func benchTraffic(_, referrer string) Traffic {
	if referrer == "" {
		return Traffic{Source: "(direct)", Medium: "(none)", Group: "Direct"}
	}
	return Traffic{Source: referrer, Medium: "referral", Group: "Referral"}
}

// BenchmarkResolveEvents measures ResolveEvents on 25,000 events of the
// end-to-end bench's traffic once their strings and profiles are cached,
// as they are in a busy site's derivations: Go work only, no statement.
func BenchmarkResolveEvents(b *testing.B) {
	s := newStore(b)
	ctx := context.Background()
	site, err := s.CreateSite(ctx, SiteSpec{Name: "bench"})
	if err != nil {
		b.Fatal(err)
	}
	events := resolveBenchEvents(b, site.ID, 25_000)
	if _, err := s.ResolveEvents(ctx, events, benchTraffic); err != nil { // fills the caches
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := s.ResolveEvents(ctx, events, benchTraffic); err != nil {
			b.Fatal(err)
		}
	}
}
