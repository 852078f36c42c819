package rules

import (
	"math/rand/v2"
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

// ReservedPrefix's shortcut on the first byte gives what lowering the
// whole name gives, over names of every first byte, of prefixes whole,
// cut short and in mixed case, and of characters that lower to ASCII.
func TestReservedPrefixGenerated(t *testing.T) {
	parts := []string{"_", "f", "F", "g", "G", "ga", "GA_", "firebase", "FIREBASE_", "google", "Google_", "gtag", "gTaG.",
		"a", "Z", "k", "1", ".", "\u212a", "\u0130", "é", "É", "\xff", "\x00", "%", " ", "ırebase_"}
	r := rand.New(rand.NewPCG(3, 4))
	for first := range 256 {
		sameReservedPrefix(t, string([]byte{byte(first)})+"a_x")
		sameReservedPrefix(t, string([]byte{byte(first)}))
	}
	for range 50_000 {
		var b strings.Builder
		for range r.IntN(5) {
			b.WriteString(parts[r.IntN(len(parts))])
		}
		sameReservedPrefix(t, b.String())
	}
}

// validNameBytewise is ValidName as the pattern reads, one byte at a time.
func validNameBytewise(name string) bool {
	for i := 0; i < len(name); i++ {
		c := name[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z':
		case i > 0 && (c == '_' || c >= '0' && c <= '9'):
		default:
			return false
		}
	}
	return name != ""
}

// ValidName's table gives the pattern's answer for every byte at every
// position of names of one to four bytes.
func TestValidNameEveryByte(t *testing.T) {
	f := func(name string) {
		t.Helper()
		if got, want := ValidName(name), validNameBytewise(name); got != want {
			t.Fatalf("ValidName(%q) = %v, want %v", name, got, want)
		}
	}
	f("")
	for _, base := range []string{"a", "ab", "a_1", "Zz9_"} {
		for at := range len(base) {
			for c := range 256 {
				f(base[:at] + string([]byte{byte(c)}) + base[at+1:])
			}
		}
	}
}
