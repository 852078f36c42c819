package enrich

import (
	"github.com/avila-analytics/avila/protocol/names"
	"net/netip"
	"strings"
	"testing"

	"github.com/avila-analytics/avila/protocol"
)

// FuzzEnrich feeds arbitrary user agents and addresses: nothing panics, and
// what comes out is only ever a known browser or OS family, a number as the
// version and a GA4 device category, never a piece of the user agent.
func FuzzEnrich(f *testing.F) {
	for _, ua := range []string{uaChromeWin, uaIPhone, uaIPad, uaAndroid, uaFirefoxLin, uaHeadless, "", "curl/8.5.0",
		"Mozilla/5.0 (X11; Linux x86_64) AgentTestBrowser/7.0", "Mozilla/5.0 (", "Opera/9.80 (J2ME/MIDP; Opera Mini/9.80 (S60; SymbOS; Opera Mobi/23.348; U; en) Presto/2.5.25 Version/10.54"} {
		f.Add(ua, []byte{8, 8, 8, 8})
	}
	f.Add("Mozilla/5.0 (Linux; Android 14; SM-X710) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/130.0.0.0 Safari/537.36",
		[]byte{0x2a, 0x02, 0x80, 0x10, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1})
	en, err := New(Config{UACacheSize: 64})
	if err != nil {
		f.Fatal(err)
	}
	known := map[string]bool{BrowserOther: true}
	for _, b := range names.Browsers {
		known[b] = true
	}
	known["Safari (in-app)"], known["Android Webview"] = true, true
	systems := map[string]bool{}
	for _, o := range names.OperatingSystems {
		systems[o] = true
	}
	f.Fuzz(func(t *testing.T, ua string, ipb []byte) {
		ip, _ := netip.AddrFromSlice(ipb)
		var e protocol.Event
		if en.Enrich(&e, ip, ua) {
			return
		}
		if !known[e.Browser] {
			t.Fatalf("browser %q from %q", e.Browser, ua)
		}
		if strings.Trim(e.BrowserVer, "0123456789") != "" {
			t.Fatalf("version %q from %q", e.BrowserVer, ua)
		}
		if e.OS != "" && !systems[e.OS] {
			t.Fatalf("os %q from %q", e.OS, ua)
		}
		switch e.Device {
		case "", DeviceDesktop, DeviceMobile, DeviceTablet, DeviceSmartTV:
		default:
			t.Fatalf("device %q from %q", e.Device, ua)
		}
		if len(e.Country) != 0 && len(e.Country) != 2 {
			t.Fatalf("country %q from %v", e.Country, ip)
		}
	})
}
