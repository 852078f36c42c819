package agent_test

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/klauspost/compress/zstd"
	"github.com/maxmind/mmdbwriter"
	"github.com/maxmind/mmdbwriter/mmdbtype"

	"github.com/avila-analytics/avila/agent"
	"github.com/avila-analytics/avila/agent/queue"
	"github.com/avila-analytics/avila/protocol"
)

// The visitor of the privacy test: a client address of its own on the
// loopback network and a user agent with a token found nowhere else.
const (
	probeIP    = "127.45.67.89"
	probeNet   = "127.45.67.0/24"
	probeToken = "ProbeToken-9f8e7d"
	probeUA    = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36 " + probeToken
	probeCity  = "Probeville"
)

// personal lists what must never be at rest or on the wire: the raw
// address, its /24, the user agent and its unusual token.
var personal = []string{probeIP, "127.45.67.", probeUA, probeToken}

// TestNoRawIPOrUserAgentAtRest sends hits from probeIP with probeUA and
// searches the queue file, the batches as shipped over QUIC and a dump of
// the PostgreSQL database for them: none may hold either. The city comes
// from the full address (a test database maps probeNet), so the address
// was used, in memory only.
func TestNoRawIPOrUserAgentAtRest(t *testing.T) {
	p := newPipeline(t)
	site := p.createSite()
	geoDB := writeProbeGeoDB(t)
	start := func() *agent.Agent {
		t.Helper()
		a, err := agent.Start(context.Background(), agent.Config{Listen: "127.0.0.1:0", DataDir: p.agentTo,
			Aggregators: []string{p.quic}, CAFile: p.agg.CAFile, GeoIPDB: geoDB}, quiet)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = a.Shutdown(context.Background()) })
		return a
	}
	a := start()
	waitReady(t, a)
	// With the aggregator away the events stay in the queue, sealed into
	// the very batches that will be sent.
	p.stopAggregator()
	client := probeClient(t)
	want := map[string]int{}
	for i := range 5 {
		path := fmt.Sprintf("/probe/%d", i)
		q := url.Values{"v": {"2"}, "tid": {site.MeasurementID}, "cid": {"555.777"}, "en": {"page_view"},
			"dl": {"https://shop.test" + path}, "dt": {"Probe"}}
		if code, body := probeDo(t, client, http.MethodGet, a.URL+"/g/collect?"+q.Encode(), ""); code != http.StatusNoContent {
			t.Fatalf("hit %d: %d %q", i, code, body)
		}
		want[path] = 1
	}
	post := "en=page_view&dl=https%3A%2F%2Fshop.test%2Fprobe%2Fpost\nen=click\n"
	if code, body := probeDo(t, client, http.MethodPost, a.URL+"/g/collect?v=2&tid="+site.MeasurementID+"&cid=1.2&dl=https%3A%2F%2Fshop.test%2Fprobe%2Fbase", post); code != http.StatusNoContent {
		t.Fatalf("POST: %d %q", code, body)
	}
	want["/probe/post"], want["/probe/base"] = 1, 1
	if err := a.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}

	qpath := filepath.Join(p.agentTo, agent.QueueFile)
	raw, err := os.ReadFile(qpath)
	if err != nil {
		t.Fatal(err)
	}
	assertNone(t, "queue file", raw)

	// The batches exactly as shipped: compressed, and decompressed.
	events := 0
	for _, wire := range queuedBatches(t, qpath) {
		assertNone(t, "batch as sent", wire)
		plain, err := zstdPlain(wire)
		if err != nil {
			t.Fatal(err)
		}
		assertNone(t, "decompressed batch", plain)
		if bytes.Contains(plain, []byte{127, 45, 67, 89}) {
			t.Fatal("decompressed batch holds the client address in binary form")
		}
		b, err := protocol.DecodeBatch(wire)
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range b.Events {
			events++
			if e.City != probeCity || e.Country != "NZ" || e.Browser != "Chrome" || e.BrowserVer != "131" || e.OS != "Windows" || e.Device != "desktop" {
				t.Fatalf("event %s %s not enriched: city %q country %q browser %q %q os %q device %q",
					e.Name, e.Path, e.City, e.Country, e.Browser, e.BrowserVer, e.OS, e.Device)
			}
		}
	}
	if events != 7 {
		t.Fatalf("%d events queued, want 7", events)
	}

	p.startAggregator()
	start()
	p.waitStored(site.ID, want)

	dump, err := exec.Command("pg_dump", "--no-owner", "--dbname", p.dbURL).Output()
	if err != nil {
		t.Fatalf("pg_dump: %v", err)
	}
	// The dump does hold what the events carry, so the search below looks
	// in the right place.
	for _, s := range []string{"/probe/post", probeCity, "Chrome"} {
		if !bytes.Contains(dump, []byte(s)) {
			t.Fatalf("pg_dump lacks %q: the events are not in it", s)
		}
	}
	assertNone(t, "pg_dump", dump)
}

func assertNone(t *testing.T, where string, b []byte) {
	t.Helper()
	for _, s := range personal {
		if i := bytes.Index(b, []byte(s)); i >= 0 {
			t.Fatalf("%s holds %q at byte %d", where, s, i)
		}
	}
}

// probeClient connects from probeIP, so the agent sees that address.
func probeClient(t *testing.T) *http.Client {
	t.Helper()
	d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(probeIP)}, Timeout: 5 * time.Second}
	tr := &http.Transport{DialContext: d.DialContext}
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr, Timeout: 30 * time.Second}
}

func probeDo(t *testing.T, c *http.Client, method, u, body string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(method, u, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("User-Agent", probeUA)
	if body != "" {
		req.Header.Set("Content-Type", "text/plain;charset=UTF-8")
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var buf bytes.Buffer
	_, _ = buf.ReadFrom(resp.Body)
	return resp.StatusCode, buf.String()
}

// queuedBatches opens a queue file (no agent running), seals what is
// pending and returns every unacknowledged segment's wire bytes, the
// payload the shipper sends on a QUIC stream. Nothing is acknowledged.
func queuedBatches(t *testing.T, path string) [][]byte {
	t.Helper()
	q, err := queue.Open(queue.Options{Path: path})
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()
	for {
		_, ok, err := q.Seal(1000)
		if err != nil {
			t.Fatal(err)
		}
		if !ok {
			break
		}
	}
	segs, err := q.Segments()
	if err != nil {
		t.Fatal(err)
	}
	var out [][]byte
	for _, s := range segs {
		wire, err := q.Segment(s.Seq)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, wire)
	}
	return out
}

func zstdPlain(wire []byte) ([]byte, error) {
	d, err := zstd.NewReader(nil)
	if err != nil {
		return nil, err
	}
	defer d.Close()
	return d.DecodeAll(wire, nil)
}

// writeProbeGeoDB writes a MaxMind-format City database placing probeNet
// in Probeville, NZ.
func writeProbeGeoDB(t *testing.T) string {
	t.Helper()
	w, err := mmdbwriter.New(mmdbwriter.Options{DatabaseType: "Avila-Test-City", RecordSize: 24, IncludeReservedNetworks: true})
	if err != nil {
		t.Fatal(err)
	}
	_, n, err := net.ParseCIDR(probeNet)
	if err != nil {
		t.Fatal(err)
	}
	err = w.Insert(n, mmdbtype.Map{
		"country": mmdbtype.Map{"iso_code": mmdbtype.String("NZ")},
		"city":    mmdbtype.Map{"names": mmdbtype.Map{"en": mmdbtype.String(probeCity)}},
	})
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "city.mmdb")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.WriteTo(f); err != nil {
		_ = f.Close()
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	return path
}

// TestWrongQueueKeyStopsStart: an agent whose key file was replaced refuses
// to start and says why; with its own key back it starts with its queue.
func TestWrongQueueKeyStopsStart(t *testing.T) {
	p := newPipeline(t)
	a := p.startAgent()
	id := a.ID
	if err := a.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	keyFile := filepath.Join(p.agentTo, "queue.key")
	fi, err := os.Stat(keyFile)
	if err != nil {
		t.Fatalf("no key file in the data dir: %v", err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Fatalf("key file mode %v, want 0600", fi.Mode().Perm())
	}
	own, err := os.ReadFile(keyFile)
	if err != nil {
		t.Fatal(err)
	}
	other := filepath.Join(t.TempDir(), "other.db")
	q, err := queue.Open(queue.Options{Path: other})
	if err != nil {
		t.Fatal(err)
	}
	_ = q.Close()
	otherKey, err := os.ReadFile(queue.DefaultKeyFile(other))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, otherKey, 0o600); err != nil {
		t.Fatal(err)
	}
	_, err = agent.Start(context.Background(), agent.Config{Listen: "127.0.0.1:0", DataDir: p.agentTo,
		Aggregators: []string{p.quic}, CAFile: p.agg.CAFile}, quiet)
	if err == nil || !strings.Contains(err.Error(), "does not match") || !strings.Contains(err.Error(), keyFile) {
		t.Fatalf("Start with another key: %v, want an error naming the key file", err)
	}
	if err := os.WriteFile(keyFile, own, 0o600); err != nil {
		t.Fatal(err)
	}
	if a := p.startAgent(); a.ID != id {
		t.Fatalf("agent id %s after restoring the key, was %s", a.ID, id)
	}
}
