package privacy

import (
	"math/rand/v2"
	"strings"
	"testing"
)

func TestScrubPage(t *testing.T) {
	f := func(in, wantHost, wantPath string) {
		t.Helper()
		host, path, err := ScrubPage(in, nil)
		if err != nil {
			t.Fatalf("ScrubPage(%q): %v", in, err)
		}
		if host != wantHost || path != wantPath {
			t.Fatalf("ScrubPage(%q) = %q, %q; want %q, %q", in, host, path, wantHost, wantPath)
		}
	}
	f("https://Shop.Example.com:8443/cart?id=7#top", "shop.example.com", "/cart")
	f("https://example.com", "example.com", "/")
	f("https://example.com/?utm_source=news&email=a%40b.c&UTM_Medium=mail&gclid=abc&q=secret",
		"example.com", "/?utm_source=news&UTM_Medium=mail&gclid=abc")
	f("https://example.com/a%20b/?utm_campaign=spring%20sale", "example.com", "/a%20b/?utm_campaign=spring+sale")
	f("https://user:pw@example.com/x", "example.com", "/x")
	f("/relative/path?token=1", "", "/relative/path")
	f("", "", "")

	if _, _, err := ScrubPage("https://example.com/%zz", nil); err == nil {
		t.Fatal("ScrubPage accepted a bad escape")
	}
}

func TestScrubReferrer(t *testing.T) {
	domains := []string{"example.com", "Example.org"}
	f := func(in, pageHost, want string) {
		t.Helper()
		got, err := ScrubReferrer(in, pageHost, domains, nil)
		if err != nil {
			t.Fatalf("ScrubReferrer(%q): %v", in, err)
		}
		if got != want {
			t.Fatalf("ScrubReferrer(%q, %q) = %q, want %q", in, pageHost, got, want)
		}
	}
	// Self-referrals: the page's host, a site domain, a subdomain of one.
	f("https://shop.test/cart", "shop.test", "")
	f("https://example.com/a", "shop.test", "")
	f("https://blog.example.org/post", "shop.test", "")
	// A look-alike is not a subdomain.
	f("https://notexample.com/x?q=1&utm_source=n", "shop.test", "https://notexample.com/x?utm_source=n")
	f("https://www.google.com/search?q=private+words", "shop.test", "https://www.google.com/search")
	f("HTTPS://News.Site/a#frag", "shop.test", "https://news.site/a")
	f("android-app://com.google.android.gm/", "shop.test", "android-app://com.google.android.gm/")
	f("about:blank", "shop.test", "")
	f("", "shop.test", "")

	if _, err := ScrubReferrer("http://[::1", "shop.test", nil, nil); err == nil {
		t.Fatal("ScrubReferrer accepted a broken URL")
	}
}

func TestScrubEmails(t *testing.T) {
	f := func(in, want string) {
		t.Helper()
		if got := ScrubEmails(in); got != want {
			t.Fatalf("ScrubEmails(%q) = %q, want %q", in, got, want)
		}
	}
	f("Order for bob.smith+shop@mail.example.co.uk done", "Order for [email] done")
	f("/users/alice%40example.com/edit", "/users/[email]/edit")
	f("a@b.cd and C@D.EF", "[email] and [email]")
	f("price @ 5 eur", "price @ 5 eur")
	f("@handle", "@handle")
	f("no address here", "no address here")
	f("", "")

	host, path, err := ScrubPage("https://shop.test/u/carol%40mail.test/?utm_source=dave@mail.test&utm_medium=x", nil)
	if err != nil || host != "shop.test" || path != "/u/[email]/?utm_source=%5Bemail%5D&utm_medium=x" {
		t.Fatalf("ScrubPage with e-mails: %q %q %v", host, path, err)
	}
	ref, err := ScrubReferrer("https://mail.test/inbox/erin@mail.test", "shop.test", nil, nil)
	if err != nil || ref != "https://mail.test/inbox/[email]" {
		t.Fatalf("ScrubReferrer with an e-mail: %q %v", ref, err)
	}
}

func TestScrubKeepsSiteParams(t *testing.T) {
	keep := []string{"ref", "page"}
	host, path, err := ScrubPage("https://example.com/list?page=2&Ref=a%40mail.test&q=secret&utm_source=x&pagex=1", keep)
	if err != nil {
		t.Fatal(err)
	}
	if want := "/list?page=2&Ref=%5Bemail%5D&utm_source=x"; host != "example.com" || path != want {
		t.Errorf("page: %q %q, want example.com %q", host, path, want)
	}
	ref, err := ScrubReferrer("https://other.test/a?ref=news&q=secret", "example.com", nil, keep)
	if err != nil {
		t.Fatal(err)
	}
	if want := "https://other.test/a?ref=news"; ref != want {
		t.Errorf("referrer %q, want %q", ref, want)
	}
	// Without the site's list the same names are dropped.
	if _, path, _ := ScrubPage("https://example.com/list?page=2&ref=x", nil); path != "/list" {
		t.Errorf("no extra params: path %q, want /list", path)
	}
}

// samePlainURL fails unless ScrubPage's and ScrubReferrer's direct
// reading of a plain URL gives what url.Parse gives; it reports whether
// the URL was read so.
func samePlainURL(t *testing.T, raw string) (plain bool) {
	t.Helper()
	keep := []string{"page"}
	if _, _, _, ok := plainURL(raw, keep); !ok {
		return false
	}
	host, path, err := ScrubPage(raw, keep)
	wantHost, wantPath, wantErr := scrubParsedPage(raw, keep)
	if err != nil || wantErr != nil || host != wantHost || path != wantPath {
		t.Fatalf("ScrubPage(%q) = %q, %q, %v; url.Parse gives %q, %q, %v", raw, host, path, err, wantHost, wantPath, wantErr)
	}
	for _, pageHost := range []string{"www.bench.example", "page.test"} {
		ref, err := ScrubReferrer(raw, pageHost, []string{"own.test"}, keep)
		wantRef, wantErr := scrubParsedReferrer(raw, pageHost, []string{"own.test"}, keep)
		if err != nil || wantErr != nil || ref != wantRef {
			t.Fatalf("ScrubReferrer(%q, %q) = %q, %v; url.Parse gives %q, %v", raw, pageHost, ref, err, wantRef, wantErr)
		}
	}
	return true
}

func TestPlainURL(t *testing.T) {
	for _, raw := range []string{
		"https://www.Bench.example/section-3/article-7", "http://example.com", "https://example.com:8443/a/b.html",
		"HTTPS://EXAMPLE.COM/A_b~c", "https://example.com//double/", "https://a-b.example/",
		"https://www.bench.example/blog/ga4-wire-format?utm_source=newsletter", "https://www.google.com/",
		"https://example.com/list?page=2&q=secret&UTM_Medium=x&&gclid&utm_x=#top", "https://example.com?utm_source=a",
		"https://example.com/?", "https://sub.own.test/x", "https://example.com/p#frag/x",
	} {
		if !samePlainURL(t, raw) {
			t.Fatalf("plainURL(%q) left a plain URL to url.Parse", raw)
		}
	}
	for _, raw := range []string{
		"https://example.com/?q=a%40b.c", "https://example.com/?q=a+b", "https://example.com/?q=a@b.c", "https://u@example.com/",
		"https://example.com/a%20b", "https://example.com:/x", "https://example.com:8x/", "https://:80/", "https:///x",
		"h2://example.com/", "//example.com/x", "/relative", "https://example.com/a@b.c", "https://[::1]/",
		"https://ex ample.com/", "https://example.com/a b", "mailto:a@b.c", "https://exämple.com/", "https://e.com/?a=b?c",
		"https://e.com/#a#b", "https://e.com/#a%zz", "A://0?utm_==", "https://e.com/?page=a=b",
	} {
		if samePlainURL(t, raw) {
			t.Fatalf("plainURL(%q) read a URL it must leave to url.Parse", raw)
		}
	}
}

func FuzzPlainURL(f *testing.F) {
	for _, raw := range []string{"https://example.com/a", "http://a.b:1/", "https://x/%41", "https://ex.com/?utm_a=1&page=2#x"} {
		f.Add(raw)
	}
	f.Fuzz(func(t *testing.T, raw string) { samePlainURL(t, raw) })
}

// The table of byte classes says what the tests of each byte say.
func TestURLBytes(t *testing.T) {
	for i := range 256 {
		c := byte(i)
		for _, tc := range []struct {
			class uint8
			want  bool
		}{
			{hostByte, isAlnum(c) || c == '.' || c == '-'},
			{pathByte, isPathByte(c)},
			{queryByte, isUnreserved(c) || c == '=' || c == '&'},
			{upperByte, 'A' <= c && c <= 'Z'},
		} {
			if got := urlBytes[c]&tc.class != 0; got != tc.want {
				t.Fatalf("byte %#x class %b: %v, want %v", c, tc.class, got, tc.want)
			}
		}
	}
}

// Over URLs with every byte in each of their parts (scheme, host, port,
// path, query, fragment), in upper and lower case, the direct reading
// gives what url.Parse gives whenever it reads the URL, and reads the
// plain ones.
func TestPlainURLEveryByte(t *testing.T) {
	bases := []string{"https://www.bench.example/blog/post-1?utm_source=x&page=2#top", "HTTP://WWW.Bench.EXAMPLE:8080/A/b_c~d",
		"hTTps://a-b.example", "https://e.com/?page=1&utm_medium=Mail"}
	for _, base := range bases {
		if !samePlainURL(t, base) {
			t.Fatalf("plainURL(%q) left a plain URL to url.Parse", base)
		}
		for at := range len(base) {
			for c := range 256 {
				samePlainURL(t, base[:at]+string([]byte{byte(c)})+base[at+1:])
			}
		}
	}
}

// PageMemo.ScrubPage gives what ScrubPage gives over runs of page URLs
// on a few hosts (upper case, with ports good and bad, user info, hosts
// that extend another) followed by every kind of path, query and
// fragment, plain or not: a URL that extends the last one's scheme and
// authority takes its host only when the authority ends there.
func TestPageMemo(t *testing.T) {
	r := rand.New(rand.NewPCG(71, 72))
	schemes := []string{"https", "HTTP", "h2", "ftp", "ht tp", ""}
	hosts := []string{"www.bench.example", "WWW.Bench.Example", "shop.test:8080", "shop.test:", "shop.test:80x", "shop.test",
		"shop.test.evil", "user@shop.test", "shop_test", "xn--caf-dma.test", ""}
	tails := []string{"", "/", "/a/b", "/a?q=1&utm_source=x", "?utm_medium=m", "#frag", "/p#f?x", "/a b", "/%41", "?a=b=c&utm_x=1=2",
		"/é", ".evil/x", ":8080/x", "x/y", "/Blog/Post-1?gclid=G&x=1#top", "?", "#", "//x"}
	hits := 0
	for range 3000 {
		var m PageMemo
		site := schemes[r.IntN(len(schemes))] + "://" + hosts[r.IntN(len(hosts))] // the run's, mostly
		for range 1 + r.IntN(10) {
			raw := site + tails[r.IntN(len(tails))]
			if r.IntN(4) == 0 {
				raw = schemes[r.IntN(len(schemes))] + "://" + hosts[r.IntN(len(hosts))] + tails[r.IntN(len(tails))]
			}
			if r.IntN(8) == 0 {
				raw = tails[r.IntN(len(tails))] // a path alone, or nothing
			}
			keep := []string{"q"}[:r.IntN(2)]
			hit := m.prefix != "" && strings.HasPrefix(raw, m.prefix)
			host, path, err := m.ScrubPage(raw, keep)
			wantHost, wantPath, wantErr := ScrubPage(raw, keep)
			if host != wantHost || path != wantPath || (err == nil) != (wantErr == nil) {
				t.Fatalf("PageMemo.ScrubPage(%q) = %q, %q, %v; ScrubPage gives %q, %q, %v", raw, host, path, err, wantHost, wantPath, wantErr)
			}
			if hit {
				hits++
			}
		}
	}
	if hits < 1000 {
		t.Fatalf("%d URLs met the memo's prefix: the generator misses it", hits)
	}
}
