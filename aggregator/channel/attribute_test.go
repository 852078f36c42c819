package channel

import (
	"strings"
	"testing"
	"unicode/utf8"
)

func TestAttribute(t *testing.T) {
	f := func(landing, referrer string, want Traffic, wantGroup string) {
		t.Helper()
		got := Attribute(landing, referrer)
		if got != want {
			t.Errorf("Attribute(%q, %q) = %+v, want %+v", landing, referrer, got, want)
		}
		if g := got.Group(); g != wantGroup {
			t.Errorf("Attribute(%q, %q).Group() = %q, want %q", landing, referrer, g, wantGroup)
		}
	}
	f("/", "", Traffic{"(direct)", "(none)", "(direct)"}, Direct)
	f("https://shop.test/a", "", Traffic{"(direct)", "(none)", "(direct)"}, Direct)
	// Campaign tags win over the referrer.
	f("/sale?utm_source=Newsletter&utm_medium=email&utm_campaign=May%20Sale", "https://mail.example/",
		Traffic{"newsletter", "email", "May Sale"}, Email)
	f("/?utm_source=facebook&utm_medium=paid_social", "https://l.facebook.com/",
		Traffic{"facebook", "paid_social", "(not set)"}, PaidSocial)
	f("/?utm_campaign=launch", "", Traffic{"(not set)", "(not set)", "launch"}, Unassigned)
	// gclid: Google Ads.
	f("/landing?gclid=abc", "https://www.google.com/", Traffic{"google", "cpc", "(not set)"}, PaidSearch)
	f("/landing?utm_source=x&utm_campaign=brand&gclid=abc", "", Traffic{"google", "cpc", "brand"}, PaidSearch)
	// Referrers.
	f("/", "https://www.google.co.uk/", Traffic{"google", "organic", "(organic)"}, OrganicSearch)
	f("/", "https://search.brave.com/search", Traffic{"search.brave.com", "organic", "(organic)"}, OrganicSearch)
	f("/", "https://duckduckgo.com/", Traffic{"duckduckgo", "organic", "(organic)"}, OrganicSearch)
	f("/", "https://t.co/abc", Traffic{"t.co", "referral", "(referral)"}, OrganicSocial)
	f("/", "https://www.youtube.com/watch", Traffic{"youtube.com", "referral", "(referral)"}, OrganicVideo)
	f("/", "https://www.amazon.de/dp/1", Traffic{"amazon.de", "referral", "(referral)"}, OrganicShopping)
	f("/", "https://mail.google.com/mail/u/0/", Traffic{"mail.google.com", "referral", "(referral)"}, Referral)
	f("/", "https://blog.example:8443/post", Traffic{"blog.example", "referral", "(referral)"}, Referral)
	// No usable host: direct.
	f("/", "android-app://com.google.android.gm/", Traffic{"(direct)", "(none)", "(direct)"}, Direct)
	f("/", "::not a url", Traffic{"(direct)", "(none)", "(direct)"}, Direct)
	// A malformed query keeps what parses.
	f("/?utm_source=news&bad=%zz&utm_medium=email", "", Traffic{"news", "email", "(not set)"}, Email)
	f("/?a=b#utm_source=frag", "", Traffic{"(direct)", "(none)", "(direct)"}, Direct)
	f("/", "http://www.", Traffic{"(direct)", "(none)", "(direct)"}, Direct)
	// Decoded values are made storable: no NUL, valid UTF-8, bounded.
	f("/?utm_source=a%00b&utm_medium=%ff&utm_campaign="+strings.Repeat("x", 150), "",
		Traffic{"a\uFFFDb", "\uFFFD", strings.Repeat("x", 100)}, Unassigned)
}

func FuzzAttribute(f *testing.F) {
	f.Add("/?utm_source=a&utm_medium=cpc&utm_campaign=shop", "https://www.google.com/")
	f.Add("/?gclid=1", "")
	f.Fuzz(func(t *testing.T, landing, referrer string) {
		tr := Attribute(landing, referrer)
		for _, v := range []string{tr.Source, tr.Medium, tr.Campaign} {
			if v == "" || !utf8.ValidString(v) || strings.ContainsRune(v, 0) || utf8.RuneCountInString(v) > maxValueRunes {
				t.Fatalf("unstorable field %q in %+v", v, tr)
			}
		}
		g := tr.Group()
		for _, known := range Groups {
			if g == known {
				return
			}
		}
		t.Fatalf("unknown group %q", g)
	})
}
