package names

import "testing"

// TestPlatformNamesAsGoogle: the operatingSystem and browser values the
// table gives, each with where it was checked. No Google document lists
// these dimensions' values; the sources are values Google Analytics
// printed, quoted in public code:
//
//   - [ga4] a public repository translating a property's GA4 Data API
//     export (its browser and operatingSystem reports) into another
//     tool's format, which keys its rows by the names GA4 printed:
//     "Chrome", "Edge", "Firefox", "Safari", "Safari (in-app)", "Opera",
//     "Samsung Internet", "Android Webview", "Internet Explorer",
//     "YaBrowser"; "Macintosh", "Android".
//   - [ua] Google's public Merchandise Store sample
//     (bigquery-public-data.google_analytics_sample, Universal Analytics,
//     2016–2017) as listed by a public repository built on it:
//     operatingSystem "Windows", "Macintosh", "Linux", "Android", "iOS",
//     "Chrome OS", "BlackBerry", "Windows Phone", "FreeBSD"; browser
//     "Opera Mini", "UC Browser", "YaBrowser". GA4 kept Universal
//     Analytics' platform names (the [ga4] source agrees where both list
//     a value), but these are not GA4's own output.
//
// Not found in any source: "HarmonyOS" (Huawei's name for its system)
// and "Vivaldi" (the vendor's token); they stay as they are, unverified.
func TestPlatformNamesAsGoogle(t *testing.T) {
	os := func(family, want, source string) {
		t.Helper()
		if got := OperatingSystems[family]; got != want {
			t.Errorf("operatingSystem of %s: %q, want %q (%s)", family, got, want, source)
		}
	}
	os("macOS", "Macintosh", "ga4, ua")
	os("Android", "Android", "ga4, ua")
	os("Windows", "Windows", "ua")
	os("iOS", "iOS", "ua")
	os("Linux", "Linux", "ua")
	os("ChromeOS", "Chrome OS", "ua")
	os("CrOS", "Chrome OS", "ua")
	os("BlackBerry", "BlackBerry", "ua")
	os("Windows Phone", "Windows Phone", "ua")
	os("FreeBSD", "FreeBSD", "ua")
	os("Harmony", "HarmonyOS", "unverified: no source")

	browser := func(family, sys, want, source string) {
		t.Helper()
		if got, ok := Browser(family, sys); !ok || got != want {
			t.Errorf("browser of %s on %s: %q, want %q (%s)", family, sys, got, want, source)
		}
	}
	browser("Chrome", "Windows", "Chrome", "ga4")
	browser("Edge", "Windows", "Edge", "ga4")
	browser("Firefox", "Linux", "Firefox", "ga4")
	browser("Safari", "macOS", "Safari", "ga4")
	browser("Mobile Safari", "iOS", "Safari", "ga4")
	browser("Facebook App", "iOS", "Safari (in-app)", "ga4")
	browser("Instagram App", "Android", "Android Webview", "ga4")
	browser("Opera", "Windows", "Opera", "ga4")
	browser("Samsung Browser", "Android", "Samsung Internet", "ga4")
	browser("Internet Explorer", "Windows", "Internet Explorer", "ga4")
	browser("YaBrowser", "Windows", "YaBrowser", "ga4, ua")
	browser("Yandex Browser", "Android", "YaBrowser", "ga4, ua")
	browser("Opera Mini", "Android", "Opera Mini", "ua")
	browser("UC Browser", "Android", "UC Browser", "ua")
	browser("Vivaldi", "Windows", "Vivaldi", "unverified: no source")

	// Reports map what older agents stored (the parser's names) through
	// the same table.
	for stored, want := range map[string]string{"macOS": "Macintosh", "ChromeOS": "Chrome OS", "Samsung Browser": "Samsung Internet"} {
		if got := Stored[stored]; got != want {
			t.Errorf("stored %q shown as %q, want %q", stored, got, want)
		}
	}
}
