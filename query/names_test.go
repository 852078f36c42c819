package query

import (
	"context"
	"slices"
	"testing"

	"github.com/avila-analytics/avila/protocol"
)

// TestGA4DisplayNames: platform, geography and language dimensions print
// the values GA4 prints (its reports and BigQuery export: operatingSystem
// "Macintosh", "Chrome OS"; browser "Samsung Internet"; country "United
// States" beside countryId "US"; language "English" beside languageCode
// "en-us"), whether the agent stored GA4's name or, before it did, the
// user agent parser's (macOS, ChromeOS, Samsung Browser).
func TestGA4DisplayNames(t *testing.T) {
	f := newFixture(t, 0)
	at := fixtureNow.Add(-30 * 60 * 1e9).UnixMicro()
	var events []protocol.Event
	for i, c := range []struct{ os, browser, device, country, lang string }{
		{"macOS", "Safari", "desktop", "US", "en-us"},
		{"Macintosh", "Chrome", "desktop", "GB", "en-gb"},
		{"ChromeOS", "Chrome", "desktop", "DE", "de-de"},
		{"Windows", "Edge", "desktop", "TR", "tr"},
		{"Android", "Samsung Browser", "mobile", "HK", "zh-hk"},
		{"iOS", "Safari", "tablet", "FR", "fr"},
		{"Linux", "Firefox", "desktop", "JP", "ja"},
		{"Windows", "Opera", "desktop", "MK", "mk"},
	} {
		events = append(events, protocol.Event{Site: 3, Visitor: uint64(i+1) << 58, TimeMicros: at + int64(i), Name: "page_view",
			Path: "/", OS: c.os, Browser: c.browser, Device: c.device, Country: c.country, Language: c.lang})
	}
	f.events = events
	if _, err := f.writeBatch(context.Background(), "names", 1, events, nil); err != nil {
		t.Fatal(err)
	}
	markSessions(f.events, []uint32{3})
	h := f.handler(t)
	events2, rollups := f.routedHandler(t, routeEvents), f.routedHandler(t, routeRollups)
	values := func(dim string) []string {
		t.Helper()
		req := RunReportRequest{Dimensions: dims(dim), Metrics: mets("eventCount"), DateRanges: []DateRange{{StartDate: "today", EndDate: "today"}},
			OrderBys: []OrderBy{byDim(dim, "", false)}}
		got := checkOracle(t, f, h, 3, req, false)
		checkOracle(t, f, events2, 3, req, false)
		if f.coveredByRollups(t, 3, req) {
			checkOracle(t, f, rollups, 3, req, false)
		}
		var out []string
		for _, r := range got.Rows {
			out = append(out, r.DimensionValues[0].Value)
		}
		return out
	}
	f1 := func(dim string, want ...string) {
		t.Helper()
		if got := values(dim); !slices.Equal(got, want) {
			t.Fatalf("%s: got %q, want %q", dim, got, want)
		}
	}
	f1("operatingSystem", "Android", "Chrome OS", "Linux", "Macintosh", "Windows", "iOS")
	f1("browser", "Chrome", "Edge", "Firefox", "Opera", "Safari", "Samsung Internet")
	f1("deviceCategory", "desktop", "mobile", "tablet")
	f1("country", "France", "Germany", "Hong Kong", "Japan", "North Macedonia", "Türkiye", "United Kingdom", "United States")
	f1("countryId", "DE", "FR", "GB", "HK", "JP", "MK", "TR", "US")
	f1("language", "Chinese", "English", "French", "German", "Japanese", "Macedonian", "Turkish")
	f1("languageCode", "de-de", "en-gb", "en-us", "fr", "ja", "mk", "tr", "zh-hk")
}

// TestCountryNamesAsGoogle: the country names that differ between
// sources, as the table holds them, with where each was checked.
//
// Sources: Google Ads API geo targets (developers.google.com/google-ads/
// api/data/geotargets, the "Name" of each Country target; read through a
// copy keyed by Google's criteria ids, as its CSV could not be fetched
// here), which name Czechia (criteria 2203), South Korea (2410), North
// Macedonia (2807) and Eswatini (2748) as below. That list spells every
// name in ASCII ("Turkiye", 2792; "Cote d'Ivoire"; "Curacao"), so it does
// not settle the diacritic of "Türkiye", which is Google's spelling since
// 2022 but was not found in a GA4 document; Hong Kong, Macao and Palestine
// were not in the copy. No GA4 document listing country values was found:
// these are Google's geographic names, not proven to be GA4's.
func TestCountryNamesAsGoogle(t *testing.T) {
	f := func(code, want string) {
		t.Helper()
		if got := countryNames[code]; got != want {
			t.Fatalf("country %s: %q, want %q", code, got, want)
		}
	}
	f("CZ", "Czechia")         // Google Ads geo target 2203
	f("KR", "South Korea")     // Google Ads geo target 2410
	f("MK", "North Macedonia") // Google Ads geo target 2807
	f("SZ", "Eswatini")        // Google Ads geo target 2748
	f("TR", "Türkiye")         // Google Ads: "Turkiye" (ASCII); the diacritic unverified for GA4
	f("HK", "Hong Kong")       // unverified: not found in the sources above
	f("MO", "Macao")           // unverified
	f("PS", "Palestine")       // unverified
}
