package postgres

import (
	"context"
	"testing"
	"time"

	"github.com/avila-analytics/avila/internal/benchtraffic"
	"github.com/avila-analytics/avila/protocol"
)

// resolveBenchEvents are n events of the end-to-end bench's traffic
// (benchtraffic.Event) of site, decoded from their wire
// form as a derivation decodes staged rows (protocol.EventDecoder: equal
// strings share one allocation).
func resolveBenchEvents(tb testing.TB, site uint32, n int) []protocol.Event {
	tb.Helper()
	first := time.Date(2026, 12, 6, 10, 0, 0, 0, time.UTC)
	plain := protocol.AppendBatchHead(nil, "bench", 1, 0, n)
	for j := range n {
		e := benchtraffic.Event(site, first, j)
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

// ResolveEvents reuses scratch memory from call to call (eventProfiles'
// keys): a call's rows are the same after a larger call of other events
// as before it.
func TestResolveEventsAfterLarger(t *testing.T) {
	s := newStore(t)
	ctx := context.Background()
	site, err := s.CreateSite(ctx, SiteSpec{Name: "reuse"})
	if err != nil {
		t.Fatal(err)
	}
	all := resolveBenchEvents(t, site.ID, 3000)
	small := all[2000:]
	first, err := s.ResolveEvents(ctx, small, benchTraffic)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.ResolveEvents(ctx, all[:2000], benchTraffic); err != nil {
		t.Fatal(err)
	}
	again, err := s.ResolveEvents(ctx, small, benchTraffic)
	if err != nil {
		t.Fatal(err)
	}
	if len(again.Rows) != len(first.Rows) {
		t.Fatalf("%d rows, then %d", len(first.Rows), len(again.Rows))
	}
	for i := range first.Rows {
		a, b := first.Rows[i], again.Rows[i]
		if a.Content != b.Content || a.Client != b.Client || a.Traffic != b.Traffic || a.Dims != b.Dims || a.Site != b.Site {
			t.Fatalf("row %d: %+v, then %+v", i, a, b)
		}
		if a.Content == 0 || a.Client == 0 {
			t.Fatalf("row %d has no profiles: %+v", i, a)
		}
	}
}

// BenchmarkResolveEventsCold is BenchmarkResolveEvents for a site none of
// whose strings are cached (a new site, a restarted node, strings of many
// distinct values): each iteration resolves 25,000 events of a new site,
// inserting its strings and profiles.
func BenchmarkResolveEventsCold(b *testing.B) {
	s := newStore(b)
	ctx := context.Background()
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		b.StopTimer()
		site, err := s.CreateSite(ctx, SiteSpec{Name: "bench"})
		if err != nil {
			b.Fatal(err)
		}
		events := resolveBenchEvents(b, site.ID, 25_000)
		b.StartTimer()
		if _, err := s.ResolveEvents(ctx, events, benchTraffic); err != nil {
			b.Fatal(err)
		}
	}
}
