package channel

import (
	"strings"
	"testing"
)

// categoryBySplit and engineBySplit are categoryOf and engineName as they
// were written first, splitting the host into a slice of its labels.
func categoryBySplit(source string) category {
	source = trimHost(source)
	if c, ok := siteHosts[source]; ok {
		return c
	}
	if c := siteNames[source]; c != none {
		return c
	}
	labels := strings.Split(source, ".")
	for _, l := range labels[:len(labels)-1] {
		if c := siteNames[l]; c != none {
			return c
		}
	}
	return none
}

func engineBySplit(host string) string {
	host = trimHost(host)
	if categoryBySplit(host) != search {
		return ""
	}
	if _, ok := siteHosts[host]; ok {
		return host
	}
	labels := strings.Split(host, ".")
	for _, l := range labels[:len(labels)-1] {
		if siteNames[l] == search {
			return l
		}
	}
	return host
}

// TestLabelsWithoutSplit: categoryOf and engineName, which walk a host's
// labels in place, give what splitting it gives, over hosts made of the
// lists' names and hosts with labels before and after, empty labels and
// ports.
func TestLabelsWithoutSplit(t *testing.T) {
	var parts []string
	for h := range siteHosts {
		parts = append(parts, h)
	}
	for n := range siteNames {
		parts = append(parts, n)
	}
	var hosts []string
	for _, p := range parts {
		for _, pre := range []string{"", "www.", "a.", ".", "x.y."} {
			for _, post := range []string{"", ".com", ".co.uk", ".", "..", ":443", ".com:8080"} {
				hosts = append(hosts, pre+p+post)
			}
		}
	}
	hosts = append(hosts, "", ".", "..", "a..b", "com", "www.", ":80", "[::1]:80")
	for _, h := range hosts {
		if got, want := categoryOf(h), categoryBySplit(h); got != want {
			t.Fatalf("categoryOf(%q) = %v, want %v", h, got, want)
		}
		if got, want := engineName(h), engineBySplit(h); got != want {
			t.Fatalf("engineName(%q) = %q, want %q", h, got, want)
		}
	}
}

// TestAttributeAllocations: a landing page without a query makes no
// map, and a search engine's host is not split into a slice: what is
// left is url.Parse's of the referrer.
func TestAttributeAllocations(t *testing.T) {
	if got := Attribute("/docs/a", "https://www.google.com/search"); got != (Traffic{Source: "google", Medium: "organic", Campaign: "(organic)"}) {
		t.Fatalf("Attribute = %+v", got)
	}
	allocs := testing.AllocsPerRun(100, func() { Attribute("/docs/a", "https://www.google.com/search") })
	if allocs > 1 {
		t.Fatalf("%.0f allocations for a search referrer, want at most url.Parse's one", allocs)
	}
	if q := query("/docs/a"); q.Get("utm_source") != "" || q.Has("gclid") {
		t.Fatal("a path without a query has parameters")
	}
}

// BenchmarkAttribute attributes the end-to-end bench's kind of pairs
// (internal/benchtraffic): pages without a query from referral sites or
// none, beside search engines and tagged pages.
func BenchmarkAttribute(b *testing.B) {
	pairs := [][2]string{
		{"/page/1", "https://ref1.example/"}, {"/page/2", ""}, {"/page/3", "https://ref2.example/"},
		{"/page/4", "https://www.google.com/"}, {"/page/5?utm_source=news&utm_medium=email", ""},
		{"/page/6", "https://www.bing.com/search"}, {"/page/7", "https://ref3.example/"}, {"/page/8", ""},
	}
	b.ReportAllocs()
	for b.Loop() {
		for _, p := range pairs {
			Attribute(p[0], p[1])
		}
	}
}

// TestAttributeWithoutQuery: of a landing page without a query, the
// source is the referrer's alone (the derivation's memo of sources by
// referrer, aggregator/write, counts on it).
func TestAttributeWithoutQuery(t *testing.T) {
	landings := []string{"", "/", "/page/1", "/a#utm_source=x", "https://example.com/x", "/%zz", "gclid=1", "/utm_source=a&gclid=2", "/\x00\xff"}
	referrers := []string{"", "https://www.google.com/", "https://ref1.example/", "android-app://com.google.android.gm",
		"http://Bing.com:80/x", "%zz", "https://t.co/abc", "ftp://x.example/", "https://search.yahoo.co.jp/"}
	for _, r := range referrers {
		want := Attribute("/", r)
		for _, l := range landings {
			if got := Attribute(l, r); got != want {
				t.Fatalf("Attribute(%q, %q) = %+v, Attribute(\"/\", %q) = %+v", l, r, got, r, want)
			}
		}
	}
}
