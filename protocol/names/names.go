// Package names is the one table of the names GA4 prints for the platform
// dimensions (operatingSystem, browser, deviceCategory), keyed by the
// family names of the user agent parser (github.com/mileusna/useragent)
// the agent uses. The agent stores GA4's names (agent/enrich); reports map
// values stored before through the same table (query), so a database
// written by an older agent shows GA4's names too. Country and language
// names come from CLDR with GA4's own spellings (query/plan/gen_names.go).
//
// The agent links this package: it imports nothing outside the standard
// library.
package names

// OperatingSystems maps the parser's operating system families to GA4's
// operatingSystem values. Families outside it are not stored.
var OperatingSystems = map[string]string{
	"Windows":       "Windows",
	"Windows Phone": "Windows Phone",
	"macOS":         "Macintosh",
	"iOS":           "iOS",
	"Android":       "Android",
	"Linux":         "Linux",
	"ChromeOS":      "Chrome OS",
	"CrOS":          "Chrome OS",
	"FreeBSD":       "FreeBSD",
	"BlackBerry":    "BlackBerry",
	// "HarmonyOS" is Huawei's name for it, found in no Google Analytics
	// output (TestPlatformNamesAsGoogle lists the sources of the others).
	"Harmony": "HarmonyOS",
}

// Browsers maps the parser's browser families to GA4's browser values
// (TestPlatformNamesAsGoogle: where each was found; "Vivaldi", the
// vendor's token, was found in no Google Analytics output).
// Families outside it are stored as the agent's "Other". The in-app browsers of
// social apps are web views: GA4 names them by the system's web view
// (InAppBrowser).
var Browsers = map[string]string{
	"Chrome":            "Chrome",
	"Firefox":           "Firefox",
	"Safari":            "Safari",
	"Mobile Safari":     "Safari",
	"Edge":              "Edge",
	"Opera":             "Opera",
	"Opera Mini":        "Opera Mini",
	"Opera Touch":       "Opera",
	"Vivaldi":           "Vivaldi",
	"Internet Explorer": "Internet Explorer",
	"MSIE":              "Internet Explorer",
	"Trident":           "Internet Explorer",
	"Samsung Browser":   "Samsung Internet",
	"YaBrowser":         "YaBrowser",
	"Yandex Browser":    "YaBrowser",
	"UCBrowser":         "UC Browser",
	"UC Browser":        "UC Browser",
}

// inApp are the parser's names of social apps' in-app browsers.
var inApp = map[string]bool{"Facebook App": true, "Instagram App": true, "TikTok App": true}

// Browser is GA4's browser value for a parser browser family on a parser
// operating system family; ok is false for a family outside the table.
func Browser(family, os string) (name string, ok bool) {
	if inApp[family] {
		if os == "iOS" {
			return "Safari (in-app)", true
		}
		return "Android Webview", true
	}
	name, ok = Browsers[family]
	return name, ok
}

// Device categories, as GA4 prints them.
const (
	DeviceDesktop = "desktop"
	DeviceMobile  = "mobile"
	DeviceTablet  = "tablet"
	DeviceSmartTV = "smart tv"
)

// Stored maps the values earlier agents stored (the parser's family
// names) to GA4's. Reports show each stored operating system and browser
// through it; a value missing from it is shown as stored.
var Stored = func() map[string]string {
	m := map[string]string{}
	for k, v := range OperatingSystems {
		if k != v {
			m[k] = v
		}
	}
	for k, v := range Browsers {
		if k != v {
			m[k] = v
		}
	}
	return m
}()
