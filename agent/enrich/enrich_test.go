package enrich

import (
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/maxmind/mmdbwriter"
	"github.com/maxmind/mmdbwriter/mmdbtype"

	"github.com/avila-analytics/avila/protocol"
)

const (
	uaChromeWin  = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36"
	uaIPhone     = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 Mobile/15E148 Safari/604.1"
	uaIPad       = "Mozilla/5.0 (iPad; CPU OS 16_6 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/16.6 Mobile/15E148 Safari/604.1"
	uaAndroid    = "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/130.0.6723.58 Mobile Safari/537.36"
	uaFirefoxLin = "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0"
	uaHeadless   = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) HeadlessChrome/131.0.0.0 Safari/537.36"
)

func TestUserAgent(t *testing.T) {
	f := func(ua, browser, version, os, device string) {
		t.Helper()
		got := parseUA(ua)
		want := uaInfo{browser: browser, version: version, os: os, device: device}
		if got != want {
			t.Fatalf("parseUA(%q)\n got %+v\nwant %+v", ua, got, want)
		}
	}
	f(uaChromeWin, "Chrome", "131", "Windows", DeviceDesktop)
	f(uaIPhone, "Safari", "17", "iOS", DeviceMobile)
	f(uaIPad, "Safari", "16", "iOS", DeviceTablet)
	f(uaAndroid, "Chrome", "130", "Android", DeviceMobile)
	f(uaFirefoxLin, "Firefox", "128", "Linux", DeviceDesktop)
	f("Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36 Edg/131.0.0.0",
		"Edge", "131", "Windows", DeviceDesktop)
	f("Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/122.0.0.0 YaBrowser/24.4.0.0 Safari/537.36",
		"YaBrowser", "24", "Windows", DeviceDesktop)
	f("Mozilla/5.0 (Windows NT 10.0; Trident/7.0; rv:11.0) like Gecko", "Internet Explorer", "7", "Windows", DeviceDesktop)
	f("Mozilla/5.0 (X11; CrOS x86_64 14541.0.0) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36",
		"Chrome", "131", "Chrome OS", DeviceDesktop)
	f("Mozilla/5.0 (Web0S; Linux/SmartTV) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/79.0.3945.79 Safari/537.36 WebAppManager",
		"Chrome", "79", "Linux", DeviceSmartTV)
	// Product tokens of unknown browsers never come out: they could single
	// a visitor out.
	f("Mozilla/5.0 (X11; Linux x86_64) AgentTestBrowser/7.0", BrowserOther, "", "Linux", DeviceDesktop)
	f("Mozilla/5.0 (Plan9; rio) Acme-Unique-7f3a/1.2", BrowserOther, "", "", "")
}

// TestUserAgentGA4Names: real user agents come out under the names GA4
// prints for operatingSystem, browser and deviceCategory (GA4's reports
// and BigQuery export: Macintosh, not macOS; Chrome OS; Samsung Internet;
// desktop, mobile, tablet).
func TestUserAgentGA4Names(t *testing.T) {
	f := func(ua, browser, os, device string) {
		t.Helper()
		got := parseUA(ua)
		if got.browser != browser || got.os != os || got.device != device {
			t.Fatalf("parseUA(%q) = %s / %s / %s, want %s / %s / %s", ua, got.browser, got.os, got.device, browser, os, device)
		}
	}
	f("Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 Safari/605.1.15",
		"Safari", "Macintosh", "desktop")
	f("Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36",
		"Chrome", "Macintosh", "desktop")
	f("Mozilla/5.0 (Macintosh; Intel Mac OS X 14.5; rv:128.0) Gecko/20100101 Firefox/128.0", "Firefox", "Macintosh", "desktop")
	f("Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36 OPR/115.0.0.0",
		"Opera", "Windows", "desktop")
	f("Mozilla/5.0 (Linux; Android 14; SAMSUNG SM-S918B) AppleWebKit/537.36 (KHTML, like Gecko) SamsungBrowser/26.0 Chrome/122.0.0.0 Mobile Safari/537.36",
		"Samsung Internet", "Android", "mobile")
	f("Mozilla/5.0 (X11; CrOS x86_64 14541.0.0) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36",
		"Chrome", "Chrome OS", "desktop")
	f(uaIPad, "Safari", "iOS", "tablet")
	f(uaFirefoxLin, "Firefox", "Linux", "desktop")
	f("Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36 Edg/131.0.0.0",
		"Edge", "Windows", "desktop")
	f("Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Mobile/15E148 [FBAN/FBIOS;FBAV/470.0.0.0]",
		"Safari (in-app)", "iOS", "mobile")
}

func TestBots(t *testing.T) {
	for _, ua := range []string{
		"",
		"   ",
		"Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)",
		"Mozilla/5.0 (compatible; bingbot/2.0; +http://www.bing.com/bingbot.htm)",
		"Mozilla/5.0 AppleWebKit/537.36 (KHTML, like Gecko; compatible; GPTBot/1.2; +https://openai.com/gptbot)",
		"facebookexternalhit/1.1 (+http://www.facebook.com/externalhit_uatext.php)",
		"Mozilla/5.0 (compatible; Yahoo! Slurp; http://help.yahoo.com/help/us/ysearch/slurp)",
		uaHeadless,
		"Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36 Chrome-Lighthouse",
		"curl/8.5.0",
		"Wget/1.21.4",
		"python-requests/2.32.3",
		"Go-http-client/1.1",
		"Pingdom.com_bot_version_1.4_(http://www.pingdom.com/)",
	} {
		if got := parseUA(ua); !got.bot {
			t.Errorf("parseUA(%q) = %+v, want a bot", ua, got)
		}
	}
	for _, ua := range []string{uaChromeWin, uaIPhone, uaIPad, uaAndroid, uaFirefoxLin} {
		if got := parseUA(ua); got.bot {
			t.Errorf("parseUA(%q): a browser taken for a bot", ua)
		}
	}
}

func TestEnrichCachesUserAgents(t *testing.T) {
	en := newTest(t, Config{UACacheSize: 2})
	ip := netip.MustParseAddr("8.8.8.8")
	for _, ua := range []string{uaChromeWin, uaChromeWin, uaIPhone, uaChromeWin, uaFirefoxLin, uaIPhone} {
		var e protocol.Event
		if en.Enrich(&e, ip, ua) {
			t.Fatalf("%q taken for a bot", ua)
		}
		if e.Browser == "" || e.Device == "" {
			t.Fatalf("%q: event %+v has no browser or device", ua, e)
		}
	}
	// Cache of 2: Chrome miss, hit; iPhone miss; Chrome hit; Firefox miss
	// (evicts iPhone, the least recently used); iPhone miss.
	st := en.Stats()
	if st.UACacheHits != 2 || st.UACacheMisses != 4 || st.Events != 6 {
		t.Fatalf("stats %+v, want 2 hits, 4 misses, 6 events", st)
	}
	long := uaChromeWin + strings.Repeat(" x", maxCachedUA)
	var e protocol.Event
	en.Enrich(&e, ip, long)
	en.Enrich(&e, ip, long)
	if st2 := en.Stats(); st2.UACacheMisses != st.UACacheMisses+2 {
		t.Fatalf("an over-long user agent was cached: %+v", st2)
	}
}

func TestEnrichBotLeavesEventAndCounts(t *testing.T) {
	en := newTest(t, Config{})
	e := protocol.Event{Name: "page_view"}
	if !en.Enrich(&e, netip.MustParseAddr("8.8.8.8"), "curl/8.5.0") {
		t.Fatal("curl not taken for a bot")
	}
	if e.Country != "" || e.Browser != "" || e.Device != "" || e.OS != "" {
		t.Fatalf("bot event changed: %+v", e)
	}
	if st := en.Stats(); st.Bots != 1 || st.Events != 1 {
		t.Fatalf("stats %+v, want 1 bot of 1 event", st)
	}
}

func TestGeoEmbedded(t *testing.T) {
	en := newTest(t, Config{})
	f := func(ip, country string) {
		t.Helper()
		var e protocol.Event
		en.Enrich(&e, netip.MustParseAddr(ip), uaFirefoxLin)
		if e.Country != country || e.Region != "" || e.City != "" {
			t.Fatalf("%s: country %q region %q city %q, want country %q only", ip, e.Country, e.Region, e.City, country)
		}
	}
	f("8.8.8.8", "US")
	f("::ffff:8.8.8.8", "US")
	f("2001:4860:4860::8888", "US")
	f("193.99.144.80", "DE")
	f("10.1.2.3", "")
	f("127.0.0.1", "")
	f("::1", "")
	var e protocol.Event
	en.Enrich(&e, netip.Addr{}, uaFirefoxLin)
	if e.Country != "" {
		t.Fatalf("no IP: country %q", e.Country)
	}
}

func TestGeoDatabase(t *testing.T) {
	path := writeTestDB(t)
	en := newTest(t, Config{GeoIPDB: path})
	f := func(ip, country, region, city string) {
		t.Helper()
		var e protocol.Event
		en.Enrich(&e, netip.MustParseAddr(ip), uaFirefoxLin)
		if e.Country != country || e.Region != region || e.City != city {
			t.Fatalf("%s: got %q/%q/%q, want %q/%q/%q", ip, e.Country, e.Region, e.City, country, region, city)
		}
	}
	f("81.2.69.142", "GB", "England", "London")
	f("2a02:8010:1::7", "GB", "Scotland", "Edinburgh")
	f("203.0.113.77", "NZ", "", "") // country-only record
	f("8.8.8.8", "US", "", "")      // not in the file: the embedded table answers
	f("10.0.0.1", "", "", "")
	if st := en.Stats(); st.GeoDB != "Avila-Test-City" {
		t.Fatalf("GeoDB %q", st.GeoDB)
	}
}

func TestGeoDatabaseErrors(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.mmdb")
	if err := os.WriteFile(bad, []byte("not a database"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{bad, filepath.Join(dir, "missing.mmdb")} {
		_, err := New(Config{GeoIPDB: p})
		if err == nil || !strings.Contains(err.Error(), "--geoip-db "+p) {
			t.Fatalf("New(%s): error %v, want one naming --geoip-db and the file", p, err)
		}
	}
	if _, err := New(Config{UACacheSize: -1}); err == nil {
		t.Fatal("negative cache size accepted")
	}
}

func newTest(t testing.TB, cfg Config) *Enricher {
	t.Helper()
	en, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := en.Close(); err != nil {
			t.Error(err)
		}
	})
	return en
}

// writeTestDB writes a small City database in MaxMind's format.
func writeTestDB(t testing.TB) string {
	t.Helper()
	w, err := mmdbwriter.New(mmdbwriter.Options{DatabaseType: "Avila-Test-City", RecordSize: 24, IncludeReservedNetworks: true})
	if err != nil {
		t.Fatal(err)
	}
	names := func(en string) mmdbtype.Map { return mmdbtype.Map{"en": mmdbtype.String(en)} }
	city := func(country, region, city string) mmdbtype.Map {
		return mmdbtype.Map{
			"country":      mmdbtype.Map{"iso_code": mmdbtype.String(country)},
			"subdivisions": mmdbtype.Slice{mmdbtype.Map{"names": names(region)}},
			"city":         mmdbtype.Map{"names": names(city)},
		}
	}
	for _, r := range []struct {
		cidr string
		rec  mmdbtype.Map
	}{
		{"81.2.69.0/24", city("GB", "England", "London")},
		{"2a02:8010::/32", city("GB", "Scotland", "Edinburgh")},
		{"203.0.113.0/24", mmdbtype.Map{"country": mmdbtype.Map{"iso_code": mmdbtype.String("NZ")}}},
	} {
		_, n, err := net.ParseCIDR(r.cidr)
		if err != nil {
			t.Fatal(err)
		}
		if err := w.Insert(n, r.rec); err != nil {
			t.Fatalf("insert %s: %v", r.cidr, err)
		}
	}
	path := filepath.Join(t.TempDir(), "city.mmdb")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.WriteTo(f); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	return path
}
