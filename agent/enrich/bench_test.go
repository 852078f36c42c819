package enrich

import (
	"net/netip"
	"testing"

	"github.com/avila-analytics/avila/protocol"
)

// BenchmarkEnrich is the hot path: a repeated user agent (cache hit) and an
// embedded-table country lookup.
func BenchmarkEnrich(b *testing.B) {
	en := newTest(b, Config{})
	ip := netip.MustParseAddr("193.99.144.80")
	b.ReportAllocs()
	for b.Loop() {
		var e protocol.Event
		en.Enrich(&e, ip, uaChromeWin)
	}
}

// BenchmarkEnrichCityDB adds a City database lookup.
func BenchmarkEnrichCityDB(b *testing.B) {
	en := newTest(b, Config{GeoIPDB: writeTestDB(b)})
	ip := netip.MustParseAddr("81.2.69.142")
	b.ReportAllocs()
	for b.Loop() {
		var e protocol.Event
		en.Enrich(&e, ip, uaChromeWin)
	}
}

// BenchmarkParseUA is a cache miss: what a user agent costs the first time.
func BenchmarkParseUA(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		parseUA(uaAndroid)
	}
}
