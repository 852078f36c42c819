package agent_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/avila-analytics/avila/agent"
	"github.com/avila-analytics/avila/agent/queue"
	"github.com/avila-analytics/avila/aggregator/node"
	"github.com/avila-analytics/avila/internal/testenv"
	"github.com/avila-analytics/avila/protocol"
	"github.com/avila-analytics/avila/storage/postgres"
)

func TestMain(m *testing.M) { os.Exit(testenv.Run(m)) }

const testUA = "Mozilla/5.0 (X11; Linux x86_64) AgentTestBrowser/7.0"

var quiet = slog.New(slog.DiscardHandler)

// pipeline is a real aggregator on a throwaway database, and a store to
// look at that database directly.
type pipeline struct {
	t       *testing.T
	dbURL   string
	aggDir  string
	agg     *node.Node
	quic    string // the aggregator's QUIC address, kept across restarts
	store   *postgres.Store
	db      *pgxpool.Pool // the test's own, for checks in SQL
	agentTo string        // data dir of the agent(s) under test
}

func newPipeline(t *testing.T) *pipeline {
	t.Helper()
	p := &pipeline{t: t, dbURL: testenv.PostgresURL(t), aggDir: t.TempDir(), agentTo: t.TempDir(), quic: "127.0.0.1:0"}
	p.startAggregator()
	var err error
	if p.store, err = postgres.Open(context.Background(), p.dbURL, quiet); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.store.Close)
	p.db = testenv.Pool(t, p.dbURL)
	return p
}

// startAggregator starts the aggregator, on the same QUIC port as before
// when restarting (a just-closed UDP socket may linger, so it retries).
func (p *pipeline) startAggregator() {
	p.t.Helper()
	var err error
	deadline := time.Now().Add(10 * time.Second)
	for {
		p.agg, err = node.Start(context.Background(), node.Config{DatabaseURL: p.dbURL, ListenQUIC: p.quic,
			ListenAPI: "127.0.0.1:0", ListenOperator: "127.0.0.1:0", DataDir: p.aggDir}, quiet)
		if err == nil || time.Now().After(deadline) {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if err != nil {
		p.t.Fatal(err)
	}
	p.quic = p.agg.QUICAddr
	agg := p.agg
	p.t.Cleanup(func() { _ = agg.Shutdown(context.Background()) })
}

func (p *pipeline) stopAggregator() {
	p.t.Helper()
	if err := p.agg.Shutdown(context.Background()); err != nil {
		p.t.Fatal(err)
	}
}

// startAgent starts an agent on the pipeline; opts change its config.
func (p *pipeline) startAgent(opts ...func(*agent.Config)) *agent.Agent {
	p.t.Helper()
	cfg := agent.Config{Listen: "127.0.0.1:0", DataDir: p.agentTo, Aggregators: []string{p.quic}, CAFile: p.agg.CAFile}
	for _, o := range opts {
		o(&cfg)
	}
	a, err := agent.Start(context.Background(), cfg, quiet)
	if err != nil {
		p.t.Fatal(err)
	}
	p.t.Cleanup(func() { _ = a.Shutdown(context.Background()) })
	return a
}

func (p *pipeline) createSite() postgres.Site {
	p.t.Helper()
	ctx := context.Background()
	site, err := p.store.CreateSite(ctx, postgres.SiteSpec{Name: "agent test", Domains: []string{"shop.test"}})
	if err != nil {
		p.t.Fatal(err)
	}
	if err := p.store.EnsureSalts(ctx, time.Now()); err != nil {
		p.t.Fatal(err)
	}
	return site
}

// storedPaths counts the site's stored events by page path.
func (p *pipeline) storedPaths(site uint32) map[string]int {
	p.t.Helper()
	rows, err := p.db.Query(context.Background(), `
		SELECT d.value, count(*) FROM events e JOIN content_profiles c ON c.id = e.content_id JOIN dims d ON d.id = c.page_id
		WHERE e.site_id = $1 AND e.flags & 256 = 0 GROUP BY d.value`, int32(site)) // the hits sent, not the derived session_start and first_visit
	if err != nil {
		p.t.Fatal(err)
	}
	defer rows.Close()
	out := map[string]int{}
	for rows.Next() {
		var path string
		var n int
		if err := rows.Scan(&path, &n); err != nil {
			p.t.Fatal(err)
		}
		out[path] = n
	}
	if err := rows.Err(); err != nil {
		p.t.Fatal(err)
	}
	return out
}

// waitStored polls until every path in want is stored, then checks each is
// stored exactly the wanted number of times.
func (p *pipeline) waitStored(site uint32, want map[string]int) {
	p.t.Helper()
	var got map[string]int
	waitFor(p.t, 60*time.Second, "events stored", func() error {
		got = p.storedPaths(site)
		for path := range want {
			if got[path] == 0 {
				return fmt.Errorf("%s not stored yet (stored: %v)", path, got)
			}
		}
		return nil
	})
	for path, n := range want {
		if got[path] != n {
			p.t.Fatalf("%s stored %d times, want %d (all: %v)", path, got[path], n, got)
		}
	}
	if len(got) != len(want) {
		p.t.Fatalf("stored paths %v, want exactly %v", got, want)
	}
}

func hit(a *agent.Agent, tid, path string) (int, string) {
	q := url.Values{"v": {"2"}, "tid": {tid}, "cid": {"555.777"}, "sid": {"1764000000"}, "en": {"page_view"},
		"dl": {"https://shop.test" + path + "?session=abc&utm_source=test"}, "dt": {"Test page"}}
	return do(http.MethodGet, a.URL+"/g/collect?"+q.Encode(), "")
}

func do(method, u, body string) (int, string) {
	req, err := http.NewRequest(method, u, strings.NewReader(body))
	if err != nil {
		return 0, err.Error()
	}
	req.Header.Set("User-Agent", testUA)
	if body != "" {
		req.Header.Set("Content-Type", "text/plain;charset=UTF-8")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func waitFor(t *testing.T, within time.Duration, what string, cond func() error) {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		err := cond()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s: %v", within, what, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func readyz(a *agent.Agent) (int, string) { return do(http.MethodGet, a.URL+"/readyz", "") }

// waitReady waits until a answers /readyz with 200: it has a site config
// and today's salts.
func waitReady(t *testing.T, a *agent.Agent) {
	t.Helper()
	waitFor(t, 30*time.Second, "agent ready", func() error {
		if code, body := readyz(a); code != http.StatusOK {
			return fmt.Errorf("/readyz %d: %s", code, body)
		}
		return nil
	})
}

// TestHitsReachPostgresExactlyOnce: hits sent to the agent land in the
// events table once each; a site created after the agent started is picked
// up because an unknown tid makes the agent fetch its config again.
func TestHitsReachPostgresExactlyOnce(t *testing.T) {
	p := newPipeline(t)
	a := p.startAgent()
	if a.ID == "" || !strings.HasPrefix(a.URL, "http://127.0.0.1:") {
		t.Fatalf("agent ID %q URL %q", a.ID, a.URL)
	}
	if code, body := do(http.MethodGet, a.URL+"/healthz", ""); code != 200 || body != "ok\n" {
		t.Fatalf("/healthz %d %q", code, body)
	}
	// The first config arrives with no sites: not ready, and says why.
	waitFor(t, 30*time.Second, "config without sites", func() error {
		if code, body := readyz(a); code != 503 || !strings.Contains(body, "has no sites") {
			return fmt.Errorf("/readyz %d %q", code, body)
		}
		return nil
	})

	site := p.createSite()
	code, body := hit(a, site.MeasurementID, "/probe")
	if code != http.StatusBadRequest || !strings.Contains(body, "unknown measurement id") || !strings.Contains(body, site.MeasurementID) {
		t.Fatalf("hit for a site the agent does not know yet: %d %q, want 400 naming the tid", code, body)
	}
	// That 400 nudged a config fetch: the site becomes known without
	// waiting for the periodic refresh.
	waitFor(t, 30*time.Second, "new site known", func() error {
		code, body := hit(a, site.MeasurementID, "/probe")
		if code != http.StatusNoContent {
			return fmt.Errorf("%d %q", code, body)
		}
		return nil
	})
	if code, body := readyz(a); code != 200 {
		t.Fatalf("/readyz after the site is known: %d %q", code, body)
	}

	// Stored paths keep only allowlisted query parameters (see hit).
	want := map[string]int{"/probe?utm_source=test": 1}
	var wg sync.WaitGroup
	errs := make(chan string, 40)
	for w := range 4 {
		wg.Go(func() {
			for i := w; i < 40; i += 4 {
				if code, body := hit(a, site.MeasurementID, fmt.Sprintf("/p/%d", i)); code != http.StatusNoContent {
					errs <- fmt.Sprintf("hit %d: %d %q", i, code, body)
				}
			}
		})
		for i := w; i < 40; i += 4 {
			want[fmt.Sprintf("/p/%d?utm_source=test", i)] = 1
		}
	}
	wg.Wait()
	close(errs)
	for e := range errs {
		t.Fatal(e)
	}
	// One POST with three events, merged over the query string.
	post := "en=page_view&dl=https%3A%2F%2Fshop.test%2Fpost%2Fa\nen=page_view&dl=https%3A%2F%2Fshop.test%2Fpost%2Fb\nen=click\n"
	if code, body := do(http.MethodPost, a.URL+"/g/collect?v=2&tid="+site.MeasurementID+"&cid=1.2&dl=https%3A%2F%2Fshop.test%2Fpost%2Fc", post); code != http.StatusNoContent {
		t.Fatalf("POST: %d %q", code, body)
	}
	want["/post/a"], want["/post/b"], want["/post/c"] = 1, 1, 1
	p.waitStored(site.ID, want)

	// Query parameters outside the allowlist, the user agent and the
	// client's address are nowhere in the database.
	var leaks int
	err := p.db.QueryRow(context.Background(), `SELECT count(*) FROM dims
		WHERE value LIKE '%session=abc%' OR value LIKE '%AgentTestBrowser%' OR value LIKE '%127.0.0.1%' OR value LIKE '%555.777%'`).Scan(&leaks)
	if err != nil || leaks != 0 {
		t.Fatalf("personal data in dims: %d rows, %v", leaks, err)
	}

	if err := a.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	if code, _ := do(http.MethodGet, a.URL+"/healthz", ""); code != 0 {
		t.Fatalf("agent still answers after Shutdown: %d", code)
	}
}

// TestRestartWithoutAggregator: a restarted agent serves at once from its
// cached config while no aggregator is reachable; an event answered 204
// is in the queue file right after Shutdown, and reaches PostgreSQL once
// the aggregator is back.
func TestRestartWithoutAggregator(t *testing.T) {
	p := newPipeline(t)
	site := p.createSite()
	a1 := p.startAgent()
	waitReady(t, a1)
	if err := a1.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	p.stopAggregator()

	a2 := p.startAgent()
	if a2.ID != a1.ID {
		t.Fatalf("agent id changed across restart: %s → %s", a1.ID, a2.ID)
	}
	if code, body := readyz(a2); code != 200 {
		t.Fatalf("restarted agent not ready from its cached config: %d %q", code, body)
	}
	if code, body := hit(a2, site.MeasurementID, "/offline"); code != http.StatusNoContent {
		t.Fatalf("hit while the aggregator is down: %d %q", code, body)
	}
	if err := a2.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}

	// The 204 promised the event is on disk: it is in the queue file.
	if paths := queuedPaths(t, filepath.Join(p.agentTo, agent.QueueFile)); strings.Join(paths, ",") != "/offline?utm_source=test" {
		t.Fatalf("queued after shutdown: %v, want the one acknowledged hit", paths)
	}

	p.startAggregator()
	a3 := p.startAgent()
	p.waitStored(site.ID, map[string]int{"/offline?utm_source=test": 1})
	if err := a3.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
}

// queuedPaths opens a queue file (no agent running), seals what is pending
// and returns the page paths of every unacknowledged event. Nothing is
// acknowledged, so a later agent still ships them.
func queuedPaths(t *testing.T, path string) []string {
	t.Helper()
	q, err := queue.Open(queue.Options{Path: path})
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()
	if _, _, err := q.Seal(1000); err != nil {
		t.Fatal(err)
	}
	segs, err := q.Segments()
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, s := range segs {
		wire, err := q.Segment(s.Seq)
		if err != nil {
			t.Fatal(err)
		}
		b, err := protocol.DecodeBatch(wire)
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range b.Events {
			out = append(out, e.Path)
		}
	}
	return out
}
