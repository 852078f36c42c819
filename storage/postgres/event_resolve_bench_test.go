package postgres

import (
	"context"
	"fmt"
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

// BenchmarkResolveEvents measures ResolveEventsTo into a new Resolved on 25,000 events of the
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
	if _, err := resolveNew(ctx, s, events, benchTraffic); err != nil { // fills the caches
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := resolveNew(ctx, s, events, benchTraffic); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkResolveEventsTo is BenchmarkResolveEvents into one Resolved,
// reused, as a derivation resolves its chunks.
func BenchmarkResolveEventsTo(b *testing.B) {
	s := newStore(b)
	ctx := context.Background()
	site, err := s.CreateSite(ctx, SiteSpec{Name: "bench"})
	if err != nil {
		b.Fatal(err)
	}
	events := resolveBenchEvents(b, site.ID, 25_000)
	var res Resolved
	if err := s.ResolveEventsTo(ctx, &res, events, benchTraffic); err != nil { // fills the caches
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if err := s.ResolveEventsTo(ctx, &res, events, benchTraffic); err != nil {
			b.Fatal(err)
		}
	}
}

// A ResolveEventsTo call's rows are the same after a larger call of other
// events as before it (the profile caches they share; ResolveEventsTo's
// reuse of memory is TestResolveEventsToReuses').
func TestResolveEventsAfterLarger(t *testing.T) {
	s := newStore(t)
	ctx := context.Background()
	site, err := s.CreateSite(ctx, SiteSpec{Name: "reuse"})
	if err != nil {
		t.Fatal(err)
	}
	all := resolveBenchEvents(t, site.ID, 3000)
	small := all[2000:]
	first, err := resolveNew(ctx, s, small, benchTraffic)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := resolveNew(ctx, s, all[:2000], benchTraffic); err != nil {
		t.Fatal(err)
	}
	again, err := resolveNew(ctx, s, small, benchTraffic)
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
		if _, err := resolveNew(ctx, s, events, benchTraffic); err != nil {
			b.Fatal(err)
		}
	}
}

// ResolveEventsTo's ids are the dims rows of the events' strings, whether
// cached or inserted by the call (whose pairs it keys by provisional ids),
// across two sites that share strings: each row's ids name its own
// strings, a session start's traffic ids its pair's source, other rows
// none, and each distinct (site, page, referrer) has one pair.
func TestResolveEventsIDs(t *testing.T) {
	s := newStore(t)
	ctx := context.Background()
	var sites [2]uint32
	for i := range sites {
		site, err := s.CreateSite(ctx, SiteSpec{Name: fmt.Sprint("ids", i)})
		if err != nil {
			t.Fatal(err)
		}
		sites[i] = site.ID
	}
	a := resolveBenchEvents(t, sites[0], 400)
	b := resolveBenchEvents(t, sites[1], 400)
	var events []protocol.Event
	for i := range 400 { // the sites' events in turn, a request of 20 each
		if i/20%2 == 0 {
			events = append(events, a[i])
		} else {
			events = append(events, b[i])
		}
	}
	// The first half cached by an earlier call, the second half new.
	if _, err := resolveNew(ctx, s, events[:200], benchTraffic); err != nil {
		t.Fatal(err)
	}
	res, err := resolveNew(ctx, s, events, benchTraffic)
	if err != nil {
		t.Fatal(err)
	}
	idOf := func(site uint32, kind DimKind, value string) int32 {
		t.Helper()
		if value == "" {
			return 0
		}
		var id int32
		if err := s.pool.QueryRow(ctx, "SELECT id FROM dims WHERE site_id = $1 AND kind = $2 AND value = $3",
			int32(site), int16(kind), value).Scan(&id); err != nil {
			t.Fatalf("dims %d %d %q: %v", site, kind, value, err)
		}
		return id
	}
	type pair struct {
		site           uint32
		path, referrer string
	}
	pairs := map[pair]int32{}
	for i := range events {
		e, row := &events[i], &res.Rows[i]
		want := [numDimKinds]int32{idOf(e.Site, DimEventName, e.Name), idOf(e.Site, DimPagePath, e.Path),
			idOf(e.Site, DimHost, e.Host), idOf(e.Site, DimTitle, e.Title), idOf(e.Site, DimReferrer, e.Referrer),
			idOf(e.Site, DimLanguage, e.Language), idOf(e.Site, DimScreen, e.Screen), idOf(e.Site, DimCountry, e.Country),
			idOf(e.Site, DimRegion, e.Region), idOf(e.Site, DimCity, e.City), idOf(e.Site, DimBrowser, e.Browser),
			idOf(e.Site, DimOS, e.OS), idOf(e.Site, DimDevice, e.Device)}
		src := benchTraffic(e.Path, e.Referrer)
		traffic := [numDimKinds]int32{}
		traffic[DimSource-1], traffic[DimMedium-1] = idOf(e.Site, DimSource, src.Source), idOf(e.Site, DimMedium, src.Medium)
		traffic[DimChannelGroup-1] = idOf(e.Site, DimChannelGroup, src.Group)
		if e.Flags&protocol.FlagSessionStart != 0 {
			want[DimSource-1], want[DimMedium-1], want[DimChannelGroup-1] = traffic[DimSource-1], traffic[DimMedium-1], traffic[DimChannelGroup-1]
		}
		if row.Dims != want {
			t.Fatalf("event %d (site %d %s %s): dims %v, want %v", i, e.Site, e.Name, e.Path, row.Dims, want)
		}
		p := pair{e.Site, e.Path, e.Referrer}
		at, seen := pairs[p]
		if !seen {
			at = res.TrafficOf[i]
			pairs[p] = at
		}
		if res.TrafficOf[i] != at {
			t.Fatalf("event %d: pair %d, want %d as an earlier event of %+v", i, res.TrafficOf[i], at, p)
		}
		if got := res.Traffic[at].Dims; got != traffic {
			t.Fatalf("event %d: pair traffic %v, want %v", i, got, traffic)
		}
	}
	if len(res.Traffic) != len(pairs) {
		t.Errorf("%d pairs, want %d", len(res.Traffic), len(pairs))
	}
}
