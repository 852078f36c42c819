package rules

import (
	"strings"
	"testing"
)

// reservedPrefixByLower is ReservedPrefix as GA4's rule reads: the name
// lower-cased, then its prefix compared.
func reservedPrefixByLower(name string) string {
	for _, p := range reservedPrefixes {
		if strings.HasPrefix(strings.ToLower(name), p) {
			return p
		}
	}
	return ""
}

func sameReservedPrefix(t *testing.T, name string) {
	t.Helper()
	if got, want := ReservedPrefix(name), reservedPrefixByLower(name); got != want {
		t.Fatalf("ReservedPrefix(%q) = %q, lower-cased it is %q", name, got, want)
	}
}

func TestReservedPrefix(t *testing.T) {
	f := func(name, want string) {
		t.Helper()
		if got := ReservedPrefix(name); got != want {
			t.Fatalf("ReservedPrefix(%q) = %q, want %q", name, got, want)
		}
		sameReservedPrefix(t, name)
	}
	f("page_view", "")
	f("_private", "_")
	f("Firebase_x", "firebase_")
	f("GA_session", "ga_")
	f("Google_ads", "google_")
	f("GTAG.config", "gtag.")
	f("gtag", "")
	f("ga", "")
	f("gaming", "")
	f("\u212a_x", "")                 // Kelvin sign lowers to k, which no prefix holds
	f("f\u0130rebase_x", "firebase_") // İ lowers to i
	f("\xffga_", "")
	f("", "")
}

func FuzzReservedPrefix(f *testing.F) {
	for _, s := range []string{"ga_x", "GOOGLE_", "\u212a", "f\u0130rebase_"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, name string) { sameReservedPrefix(t, name) })
}
