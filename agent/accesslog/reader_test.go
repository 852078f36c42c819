package accesslog

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/avila-analytics/avila/agent/enrich"
	"github.com/avila-analytics/avila/protocol"
	"github.com/avila-analytics/avila/protocol/rules"
)

var testSite = &protocol.Site{ID: 7, MeasurementID: "G-TEST", Domains: []string{"shop.example"}, KeepParams: []string{"page"}}

// logLine is a combined line at minute m of 2026-11-03 UTC.
func logLine(ip, uri string, status int, ref, ua string, m int) string {
	t := time.Date(2026, 11, 3, 10, 0, 0, 0, time.UTC).Add(time.Duration(m) * time.Minute)
	return fmt.Sprintf(`%s - - [%s] "GET %s HTTP/1.1" %d 512 "%s" "%s"`, ip, t.Format(clfTime), uri, status, ref, ua)
}

func newTestReader(t *testing.T, log string, secret byte, mod func(*Options)) *Reader {
	t.Helper()
	en, err := enrich.New(enrich.Config{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { en.Close() })
	opts := Options{Format: Combined, Site: testSite, Enricher: en, BatchEvents: 3,
		Now: func() time.Time { return time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC) }}
	opts.Secret[0] = secret
	if mod != nil {
		mod(&opts)
	}
	rd, err := NewReader(strings.NewReader(log), opts)
	if err != nil {
		t.Fatal(err)
	}
	return rd
}

// readAll returns every batch of rd, decoded.
func readAll(t *testing.T, rd *Reader) (batches [][]protocol.Event, raw [][]byte) {
	t.Helper()
	for {
		b, err := rd.Next()
		if errors.Is(err, io.EOF) {
			return batches, raw
		}
		if err != nil {
			t.Fatal(err)
		}
		var events []protocol.Event
		for _, e := range b {
			var ev protocol.Event
			if err := protocol.DecodeEvent(e, &ev); err != nil {
				t.Fatal(err)
			}
			events = append(events, ev)
			raw = append(raw, e)
		}
		batches = append(batches, events)
	}
}

func sampleLog() string {
	lines := []string{
		logLine("203.0.113.9", "/?utm_source=news&session=abc", 200, "https://news.example/x", uaFirefox, 0),
		logLine("203.0.113.9", "/style.css", 200, "https://shop.example/", uaFirefox, 0),
		logLine("203.0.113.9", "/products?page=2&mail=jo@example.com", 200, "https://shop.example/", uaFirefox, 1),
		logLine("203.0.113.9", "/missing", 404, "-", uaFirefox, 2),
		logLine("198.51.100.4", "/", 200, "-", "Googlebot/2.1 (+http://www.google.com/bot.html)", 3),
		logLine("198.51.100.4", "/", 200, "-", "-", 3),
		"garbage line",
		logLine("198.51.100.5", "/about", 304, "-", uaFirefox, 4),
		logLine("198.51.100.5", "/contact", 200, "-", uaFirefox, 5),
		logLine("198.51.100.5", "/jobs", 200, "-", uaFirefox, 6),
	}
	return strings.Join(lines, "\n") + "\n"
}

func TestReaderKeepsPagesUnderTheAgentsRules(t *testing.T) {
	rd := newTestReader(t, sampleLog(), 1, nil)
	batches, raw := readAll(t, rd)
	if len(batches) != 2 || len(batches[0]) != 3 || len(batches[1]) != 2 {
		t.Fatalf("batches of %v events, want [3 2]", lens(batches))
	}
	var paths []string
	for _, b := range batches {
		for _, e := range b {
			paths = append(paths, e.Path)
			if e.Site != 7 || e.Name != "page_view" || e.Host != "shop.example" || e.Browser != "Firefox" {
				t.Errorf("event %+v: want site 7, page_view on shop.example from Firefox", e)
			}
			if e.User != 0 {
				t.Errorf("event %+v carries a user id; imported visitors are cookieless", e)
			}
		}
	}
	// Query parameters beyond utm_* and the site's allowlist are dropped;
	// e-mail-like values never reach an event.
	want := "/?utm_source=news /products?page=2 /about /contact /jobs"
	if got := strings.Join(paths, " "); got != want {
		t.Fatalf("paths %q, want %q", got, want)
	}
	if batches[0][0].Referrer != "https://news.example/x" {
		t.Errorf("referrer %q, want https://news.example/x", batches[0][0].Referrer)
	}
	if batches[0][1].Referrer != "" {
		t.Errorf("a self-referral is kept as %q", batches[0][1].Referrer)
	}
	// One visitor across its lines of a day; another address, another one.
	if batches[0][0].Visitor != batches[0][1].Visitor || batches[0][0].Visitor == batches[0][2].Visitor {
		t.Errorf("visitor ids %x %x %x: want the first two equal and the third different",
			batches[0][0].Visitor, batches[0][1].Visitor, batches[0][2].Visitor)
	}
	st := rd.Stats()
	wantSkipped := map[string]int64{SkipAsset: 1, SkipStatus: 1, SkipBot: 2, SkipMalformed: 1}
	if st.Lines != 10 || st.PageViews != 5 || fmt.Sprint(st.Skipped) != fmt.Sprint(wantSkipped) {
		t.Fatalf("stats %+v, want 10 lines, 5 page views, skipped %v", st, wantSkipped)
	}
	for _, secret := range []string{"203.0.113.9", "198.51.100.5", "Firefox/128.0", "jo@example.com", "session=abc"} {
		for _, e := range raw {
			if bytes.Contains(e, []byte(secret)) {
				t.Fatalf("an encoded event holds %q", secret)
			}
		}
	}
}

func lens(b [][]protocol.Event) []int {
	var n []int
	for _, x := range b {
		n = append(n, len(x))
	}
	return n
}

func TestReaderIsDeterministic(t *testing.T) {
	_, a := readAll(t, newTestReader(t, sampleLog(), 1, nil))
	_, b := readAll(t, newTestReader(t, sampleLog(), 1, nil))
	if len(a) != len(b) {
		t.Fatalf("%d and %d events from the same log", len(a), len(b))
	}
	for i := range a {
		if !bytes.Equal(a[i], b[i]) {
			t.Fatalf("event %d differs between two reads of the same log with the same secret", i)
		}
	}
	// Another file (another secret): the same visitors get other ids.
	_, c := readAll(t, newTestReader(t, sampleLog(), 2, nil))
	var x, y protocol.Event
	_ = protocol.DecodeEvent(a[0], &x)
	_ = protocol.DecodeEvent(c[0], &y)
	if x.Visitor == y.Visitor {
		t.Fatal("the same visitor id under two secrets: ids of different files could be linked")
	}
}

func TestReaderTrustsForwardedOnlyFromProxies(t *testing.T) {
	at := time.Date(2026, 11, 3, 10, 0, 0, 0, time.UTC).Format(clfTime)
	line := func(peer string) string {
		return fmt.Sprintf(`%s - - [%s] "GET / HTTP/1.1" 200 1 "-" "%s" "203.0.113.77"`, peer, at, uaFirefox) + "\n"
	}
	visitor := func(peer string, trusted []netip.Prefix) uint64 {
		rd := newTestReader(t, line(peer), 1, func(o *Options) { o.Format, o.TrustedProxies = Nginx, trusted })
		b, _ := readAll(t, rd)
		return b[0][0].Visitor
	}
	direct := visitor("203.0.113.77", nil)
	proxied := visitor("10.0.0.2", []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")})
	untrusted := visitor("10.0.0.2", nil)
	if direct != proxied {
		t.Error("a trusted proxy's X-Forwarded-For did not name the client")
	}
	if untrusted == direct {
		t.Error("X-Forwarded-For from an untrusted peer was believed")
	}
}

func TestReaderSkipsOverlongLinesAndOtherHosts(t *testing.T) {
	long := logLine("203.0.113.9", "/"+strings.Repeat("a", maxLine), 200, "-", uaFirefox, 0)
	ok := logLine("203.0.113.9", "/ok", 200, "-", uaFirefox, 1)
	rd := newTestReader(t, long+"\n"+ok+"\n", 1, nil)
	b, _ := readAll(t, rd)
	if len(b) != 1 || b[0][0].Path != "/ok" || rd.Stats().Skipped[SkipMalformed] != 1 {
		t.Fatalf("got %v, stats %+v: want /ok after one malformed (over-long) line", b, rd.Stats())
	}
	caddy := func(host string) string {
		return fmt.Sprintf(`{"ts":1793800536,"request":{"remote_ip":"203.0.113.8","method":"GET","host":%q,"uri":"/","headers":{"User-Agent":[%q]}},"status":200}`, host, uaFirefox) + "\n"
	}
	rd = newTestReader(t, caddy("SHOP.example:8443")+caddy("other.example"), 1, func(o *Options) { o.Format = Caddy })
	b, _ = readAll(t, rd)
	if len(b) != 1 || len(b[0]) != 1 || b[0][0].Host != "shop.example" || rd.Stats().Skipped[SkipOtherHost] != 1 {
		t.Fatalf("got %v, stats %+v: want one page of shop.example and one line of another host skipped", b, rd.Stats())
	}
}

func TestAgentIDDependsOnFileAndSite(t *testing.T) {
	a, err := FileSecret(strings.NewReader("line 1\n"))
	if err != nil {
		t.Fatal(err)
	}
	b, _ := FileSecret(strings.NewReader("line 2\n"))
	again, _ := FileSecret(strings.NewReader("line 1\n"))
	if AgentID(&a, 1) == AgentID(&b, 1) || AgentID(&a, 1) == AgentID(&a, 2) || AgentID(&a, 1) != AgentID(&again, 1) {
		t.Fatalf("agent ids %s %s %s: want one per file and site, stable", AgentID(&a, 1), AgentID(&b, 1), AgentID(&a, 2))
	}
	if !strings.HasPrefix(AgentID(&a, 1), "import-1-") {
		t.Fatalf("agent id %s: want it to start with import-1-", AgentID(&a, 1))
	}
}

func BenchmarkReader(b *testing.B) {
	var log strings.Builder
	uas := []string{uaFirefox, "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 Mobile/15E148 Safari/604.1"}
	const lines = 10000
	for i := range lines {
		fmt.Fprintln(&log, logLine(fmt.Sprintf("203.0.%d.%d", i%200, i%250), fmt.Sprintf("/p/%d?utm_source=x", i%300), 200, "https://ref.example/", uas[i%2], i/100))
	}
	en, _ := enrich.New(enrich.Config{})
	defer en.Close()
	data := log.String()
	b.SetBytes(int64(len(data)))
	b.ResetTimer()
	for range b.N {
		rd, err := NewReader(strings.NewReader(data), Options{Format: Combined, Site: testSite, Enricher: en,
			Now: func() time.Time { return time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC) }})
		if err != nil {
			b.Fatal(err)
		}
		for {
			if _, err := rd.Next(); err != nil {
				break
			}
		}
	}
	b.ReportMetric(float64(lines*b.N)/b.Elapsed().Seconds(), "lines/s")
}

func TestReaderKeepsLineOrderAcrossWorkers(t *testing.T) {
	var log strings.Builder
	const lines = 5*chunkLines + 17
	for i := range lines {
		fmt.Fprintln(&log, logLine(fmt.Sprintf("203.0.%d.1", i%200), fmt.Sprintf("/p/%d", i), 200, "-", uaFirefox, i/60))
	}
	rd := newTestReader(t, log.String(), 1, func(o *Options) { o.BatchEvents = 1000 })
	batches, _ := readAll(t, rd)
	i := 0
	for _, b := range batches {
		for _, e := range b {
			if want := fmt.Sprintf("/p/%d", i); e.Path != want {
				t.Fatalf("event %d has path %s, want %s: lines out of order", i, e.Path, want)
			}
			i++
		}
	}
	if i != lines || len(batches) != 6 || rd.Stats().Lines != lines {
		t.Fatalf("%d events in %d batches from %d lines, want %d in 6", i, len(batches), rd.Stats().Lines, lines)
	}
}

func TestReaderRepairsAsTheAgentDoes(t *testing.T) {
	long := "/" + strings.Repeat("é", 1200)
	bad := "/caf\xe9"
	rd := newTestReader(t, logLine("203.0.113.9", long, 200, "-", uaFirefox, 0)+"\n"+
		logLine("203.0.113.9", bad, 200, "-", uaFirefox, 1)+"\n", 1, nil)
	b, _ := readAll(t, rd)
	if len(b) != 1 || len(b[0]) != 2 {
		t.Fatalf("batches %v, want both lines as events", lens(b))
	}
	for _, e := range b[0] {
		if err := rules.Check(&e); err != nil {
			t.Fatalf("event with path %q breaks the aggregator's guard: %v", e.Path, err)
		}
	}
	if n := utf8.RuneCountInString(b[0][0].Path); n != 1000 {
		t.Fatalf("an over-long path kept %d characters, want it cut to 1000", n)
	}
}
