package accesslog

import (
	"errors"
	"net/netip"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

const uaFirefox = "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0"

func TestParseLines(t *testing.T) {
	at := time.Date(2026, 11, 3, 13, 55, 36, 0, time.FixedZone("", -7*3600))
	f := func(format Format, line string, want Record) {
		t.Helper()
		var got Record
		if err := format.Parse([]byte(line), &got); err != nil {
			t.Fatalf("%s: Parse(%q): %v", format, line, err)
		}
		if !got.Time.Equal(want.Time) {
			t.Fatalf("%s: Parse(%q): time %s, want %s", format, line, got.Time, want.Time)
		}
		got.Time, want.Time = time.Time{}, time.Time{}
		if diff := cmp.Diff(want, got, cmp.Comparer(func(a, b netip.Addr) bool { return a == b })); diff != "" {
			t.Fatalf("%s: Parse(%q) (-want +got):\n%s", format, line, diff)
		}
	}
	f(Combined, `203.0.113.9 - frank [03/Nov/2026:13:55:36 -0700] "GET /blog/?utm_source=x HTTP/1.1" 200 2326 "https://news.example/a" "`+uaFirefox+`"`,
		Record{Time: at, IP: netip.MustParseAddr("203.0.113.9"), Method: "GET", URI: "/blog/?utm_source=x", Status: 200,
			Referrer: "https://news.example/a", UserAgent: uaFirefox})
	// No referrer, no size, IPv6, nginx's \x22 escape inside the user agent.
	f(Combined, `2001:db8::1 - - [03/Nov/2026:13:55:36 -0700] "GET / HTTP/2.0" 304 - "-" "say \x22hi\x22"`,
		Record{Time: at, IP: netip.MustParseAddr("2001:db8::1"), Method: "GET", URI: "/", Status: 304, UserAgent: `say "hi"`})
	// Apache's \" escape.
	f(Combined, `198.51.100.7 - - [03/Nov/2026:13:55:36 -0700] "GET /a HTTP/1.1" 200 5 "-" "x \"y\" \\z"`,
		Record{Time: at, IP: netip.MustParseAddr("198.51.100.7"), Method: "GET", URI: "/a", Status: 200, UserAgent: `x "y" \z`})
	f(Nginx, `127.0.0.1 - - [03/Nov/2026:13:55:36 -0700] "GET /p HTTP/1.1" 200 12 "-" "`+uaFirefox+`" "203.0.113.5, 10.0.0.2"`,
		Record{Time: at, IP: netip.MustParseAddr("127.0.0.1"), Forwarded: "203.0.113.5, 10.0.0.2", Method: "GET", URI: "/p",
			Status: 200, UserAgent: uaFirefox})
	// nginx format without the column reads as combined.
	f(Nginx, `127.0.0.1 - - [03/Nov/2026:13:55:36 -0700] "GET /p HTTP/1.1" 200 12 "-" "ua"`,
		Record{Time: at, IP: netip.MustParseAddr("127.0.0.1"), Method: "GET", URI: "/p", Status: 200, UserAgent: "ua"})
	f(Caddy, `{"level":"info","ts":1793800536.25,"logger":"http.log.access.log0","msg":"handled request","request":{"remote_ip":"10.0.0.2","remote_port":"5555","client_ip":"203.0.113.8","proto":"HTTP/2.0","method":"GET","host":"shop.example:443","uri":"/cart?id=1","headers":{"User-Agent":["`+uaFirefox+`"],"Referer":["https://search.example/"]}},"bytes_read":0,"duration":0.001,"size":900,"status":200,"resp_headers":{"Content-Type":["text/html; charset=utf-8"]}}`,
		Record{Time: time.Unix(1793800536, 250_000_000), IP: netip.MustParseAddr("203.0.113.8"), Method: "GET", Host: "shop.example:443",
			URI: "/cart?id=1", Status: 200, Referrer: "https://search.example/", UserAgent: uaFirefox, ContentType: "text/html; charset=utf-8"})
}

func TestParseRefusesMalformedLines(t *testing.T) {
	f := func(format Format, line string) {
		t.Helper()
		var r Record
		if err := format.Parse([]byte(line), &r); !errors.Is(err, errMalformed) {
			t.Fatalf("%s: Parse(%q) = %v, want a malformed-line error", format, line, err)
		}
	}
	f(Combined, "")
	f(Combined, "\x00")
	f(Combined, `not-an-ip - - [03/Nov/2026:13:55:36 -0700] "GET / HTTP/1.1" 200 1 "-" "ua"`)
	f(Combined, `1.2.3.4 - - [yesterday] "GET / HTTP/1.1" 200 1 "-" "ua"`)
	f(Combined, `1.2.3.4 - - [03/Nov/2026:13:55:36 -0700] "GET / HTTP/1.1" OK 1 "-" "ua"`)
	f(Combined, `1.2.3.4 - - [03/Nov/2026:13:55:36 -0700] "GET / HTTP/1.1" 200 1 "-" "unterminated`)
	f(Combined, `1.2.3.4 - - [03/Nov/2026:13:55:36 -0700] "GARBAGE" 400 1 "-" "ua"`)
	f(Caddy, `{"ts":"soon","request":{"remote_ip":"1.2.3.4","method":"GET","uri":"/"},"status":200}`)
	f(Caddy, `{"ts":1,"request":{"remote_ip":"x","method":"GET","uri":"/"},"status":200}`)
	f(Caddy, `{"ts":1793800536,"request":{"remote_ip":"1.2.3.4"},"status":200}`)
	f(Caddy, `[1,2`)
}

func TestPageSkip(t *testing.T) {
	f := func(method string, status int, uri, contentType, want string) {
		t.Helper()
		r := Record{Method: method, Status: status, URI: uri, ContentType: contentType}
		if got := pageSkip(&r); got != want {
			t.Fatalf("pageSkip(%s %d %s %q) = %q, want %q", method, status, uri, contentType, got, want)
		}
	}
	f("GET", 200, "/", "", "")
	f("GET", 304, "/blog/post?x=1", "", "")
	f("GET", 200, "/about", "text/html; charset=utf-8", "")
	f("POST", 200, "/", "", SkipMethod)
	f("HEAD", 200, "/", "", SkipMethod)
	f("GET", 404, "/missing", "", SkipStatus)
	f("GET", 301, "/old", "", SkipStatus)
	f("GET", 206, "/video", "", SkipStatus)
	f("GET", 200, "/static/app.JS", "", SkipAsset)
	f("GET", 200, "/img/logo.png?v=3", "", SkipAsset)
	f("GET", 200, "/.well-known/security.txt", "", SkipAsset)
	f("GET", 200, "/feed", "application/rss+xml", SkipAsset)
	f("GET", 200, "/g/collect?v=2&tid=G-1", "", SkipTracker)
	f("GET", 200, "/t.js", "", SkipTracker)
	f("GET", 200, "http://proxy.example/", "", SkipMalformed)
}
