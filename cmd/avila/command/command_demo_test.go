package command

import (
	"bufio"
	"bytes"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/avila-analytics/avila/internal/testenv"
)

// readyKeys are the keys of the demo's ready line (DESIGN.md contract).
var readyKeys = []string{"agent", "api", "dashboard", "property", "measurement_id", "api_secret", "api_key", "operator"}

// demoProc is `avila demo` running as a subprocess: this test binary, told
// by runMainEnv to behave as the avila command.
type demoProc struct {
	cmd    *exec.Cmd
	ready  map[string]string
	more   chan string // stdout lines after the ready line
	exited chan error
	stderr *syncBuffer
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// startDemo runs the demo with env (on top of this process's environment
// minus any database URL) and waits for its ready line.
func startDemo(t *testing.T, env []string, args ...string) *demoProc {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(exe, append([]string{"demo", "--agent-listen", "127.0.0.1:0", "--api-listen", "127.0.0.1:0",
		"--quic-listen", "127.0.0.1:0"}, args...)...)
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		if k != "DATABASE_URL" && !strings.HasPrefix(k, "AVILA_") {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	cmd.Env = append(append(cmd.Env, runMainEnv+"=1"), env...)
	p := &demoProc{cmd: cmd, more: make(chan string, 16), exited: make(chan error, 1), stderr: &syncBuffer{}}
	cmd.Stderr = p.stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if p.cmd.ProcessState == nil {
			_ = p.cmd.Process.Kill()
			<-p.exited
		}
		if t.Failed() {
			t.Logf("demo stderr:\n%s", p.stderr.String())
		}
	})
	first := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		for i := 0; sc.Scan(); i++ {
			if i == 0 {
				first <- sc.Text()
			} else {
				p.more <- sc.Text()
			}
		}
		close(first)
		close(p.more)
		p.exited <- cmd.Wait()
	}()
	select {
	case line, ok := <-first:
		if !ok {
			t.Fatalf("demo exited before its ready line: %v\n%s", <-p.exited, p.stderr.String())
		}
		if strings.Contains(line, `\u0026`) {
			t.Errorf("ready line %s escapes & in URLs", line)
		}
		if err := json.Unmarshal([]byte(line), &p.ready); err != nil {
			t.Fatalf("ready line %q is not a JSON object of strings: %v", line, err)
		}
	case <-time.After(2 * time.Minute):
		t.Fatalf("no ready line from the demo\n%s", p.stderr.String())
	}
	for _, k := range readyKeys {
		if p.ready[k] == "" {
			t.Errorf("ready line lacks %q: %v", k, p.ready)
		}
	}
	wantDashboard := p.ready["api"] + "/#property=" + p.ready["property"] + "&key=" + url.QueryEscape(p.ready["api_key"])
	if !strings.HasPrefix(p.ready["measurement_id"], "G-") || p.ready["dashboard"] != wantDashboard {
		t.Errorf("ready line %v: want a G- measurement id and the dashboard at the API's root, opened on the demo property", p.ready)
	}
	return p
}

// stop sends SIGTERM and requires a clean exit with nothing more on stdout.
func (p *demoProc) stop(t *testing.T) {
	t.Helper()
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	var extra []string
	for line := range p.more {
		extra = append(extra, line)
	}
	select {
	case err := <-p.exited:
		if err != nil {
			t.Fatalf("demo exit after SIGTERM: %v; want 0", err)
		}
	case <-time.After(time.Minute):
		t.Fatal("demo still running a minute after SIGTERM")
	}
	if len(extra) > 0 {
		t.Errorf("demo printed more than its ready line on stdout: %q", extra)
	}
}

// sendHit sends one gtag page_view to the demo's agent and requires 204.
func (p *demoProc) sendHit(t *testing.T, path string) {
	t.Helper()
	q := url.Values{"v": {"2"}, "tid": {p.ready["measurement_id"]}, "cid": {"1234567890.1700000000"},
		"sid": {strconv.FormatInt(time.Now().Unix(), 10)}, "sct": {"1"}, "_s": {"1"}, "en": {"page_view"},
		"dl": {"https://demo.avila.test" + path}, "dr": {"https://www.google.com/"}, "dt": {"Demo test page"}, "_et": {"1"}}
	req, _ := http.NewRequest(http.MethodGet, p.ready["agent"]+"/g/collect?"+q.Encode(), nil)
	req.Header.Set("User-Agent", "Mozilla/5.0 (X11; Linux x86_64; rv:127.0) Gecko/20100101 Firefox/127.0")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusNoContent {
		t.Fatalf("hit: %s %s; want 204", resp.Status, body)
	}
}

// eventCounts runs today's report of eventCount by pagePath through the
// Data API with the demo's key.
func (p *demoProc) eventCounts(t *testing.T) map[string]int {
	t.Helper()
	return p.eventCountsBy(t, "pagePath")
}

// eventCountsBy runs today's report of page views by one dimension (the
// hits are page views; eventCount would add the session_start and
// first_visit events the write stage derives).
func (p *demoProc) eventCountsBy(t *testing.T, dimension string) map[string]int {
	t.Helper()
	body := `{"dimensions":[{"name":"` + dimension + `"}],"metrics":[{"name":"screenPageViews"}],"dateRanges":[{"startDate":"today","endDate":"today"}]}`
	req, _ := http.NewRequest(http.MethodPost, p.ready["api"]+"/v1beta/properties/"+p.ready["property"]+":runReport", strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+p.ready["api_key"])
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("runReport: %s %s", resp.Status, raw)
	}
	var rep struct {
		Rows []struct {
			DimensionValues []struct{ Value string } `json:"dimensionValues"`
			MetricValues    []struct{ Value string } `json:"metricValues"`
		} `json:"rows"`
	}
	if err := json.Unmarshal(raw, &rep); err != nil {
		t.Fatalf("runReport answer %s: %v", raw, err)
	}
	counts := map[string]int{}
	for _, r := range rep.Rows {
		n, err := strconv.Atoi(r.MetricValues[0].Value)
		if err != nil {
			t.Fatalf("runReport row %v: %v", r, err)
		}
		counts[r.DimensionValues[0].Value] = n
	}
	return counts
}

// waitReport polls the report until cond holds for it.
func (p *demoProc) waitReport(t *testing.T, what string, cond func(map[string]int) bool) map[string]int {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		counts := p.eventCounts(t)
		if cond(counts) {
			return counts
		}
		if time.Now().After(deadline) {
			t.Fatalf("report never showed %s; last: %v", what, counts)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// worldSearchableTempDir returns a temporary directory that a PostgreSQL
// running as another user (the demo, run as root, runs it as postgres) can
// reach.
func worldSearchableTempDir(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "avila-demo-test-")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(dir, 0o711); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	return dir
}

func TestDemoManagedPostgres(t *testing.T) {
	dir := worldSearchableTempDir(t)
	pidFile := filepath.Join(dir, "data", "postgres", "postmaster.pid")

	// DATABASE_URL unset: the demo runs its own PostgreSQL in the data dir.
	p := startDemo(t, nil, "--data-dir", filepath.Join(dir, "data"))
	if _, err := os.Stat(pidFile); err != nil {
		t.Fatalf("no managed PostgreSQL running in the data dir: %v", err)
	}
	// A second demo on the same data dir refuses to start and says why,
	// leaving the first one and its PostgreSQL running. (Its QUIC port is
	// taken too, so that it would fail rather than run if it got further.)
	busy, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	code, _, stderr := runCLI(t, nil, "demo", "--data-dir", filepath.Join(dir, "data"), "--quic-listen", busy.LocalAddr().String())
	if code != 1 || !strings.Contains(stderr, "is in use by another avila demo (process "+strconv.Itoa(p.cmd.Process.Pid)+")") {
		t.Fatalf("second demo on the same data dir: exit %d, stderr:\n%s", code, stderr)
	}
	if _, err := os.Stat(pidFile); err != nil {
		t.Fatalf("the second demo stopped the first one's PostgreSQL: %v", err)
	}
	p.sendHit(t, "/hello")
	p.waitReport(t, "the hit", func(c map[string]int) bool { return c["/hello"] > 0 })
	if c := p.eventCounts(t); len(c) != 1 || c["/hello"] != 1 {
		t.Fatalf("report %v; want exactly the one hit", c)
	}
	p.checkDashboard(t)
	p.stop(t)
	if _, err := os.Stat(pidFile); !os.IsNotExist(err) {
		t.Fatalf("PostgreSQL still running after the demo exited (postmaster.pid: %v)", err)
	}

	// A second run on the same data dir reuses the database and the site,
	// with a new API key.
	again := startDemo(t, nil, "--data-dir", filepath.Join(dir, "data"))
	for _, k := range []string{"property", "measurement_id", "api_secret"} {
		if again.ready[k] != p.ready[k] {
			t.Errorf("second run: %s %q, first run %q; want the demo site reused", k, again.ready[k], p.ready[k])
		}
	}
	if again.ready["api_key"] == p.ready["api_key"] {
		t.Error("second run printed the first run's API key")
	}
	if c := again.eventCounts(t); c["/hello"] != 1 {
		t.Errorf("second run's report %v; want the first run's hit kept", c)
	}
	again.stop(t)
}

func TestDemoTrafficWithDatabaseURL(t *testing.T) {
	db := testenv.PostgresURL(t)
	p := startDemo(t, []string{"DATABASE_URL=" + db, "AVILA_TRAFFIC=50"}, "--data-dir", worldSearchableTempDir(t))
	counts := p.waitReport(t, "synthetic traffic on several pages", func(c map[string]int) bool {
		total := 0
		for _, n := range c {
			total += n
		}
		return len(c) >= 3 && total >= 20
	})
	for path := range counts {
		if !strings.HasPrefix(path, "/") {
			t.Errorf("traffic page path %q", path)
		}
	}
	// The synthetic visitors come from several countries, through the
	// agent's trusted-proxy handling and geo lookup.
	countries := p.eventCountsBy(t, "country")
	delete(countries, "")
	delete(countries, "(not set)")
	if len(countries) < 2 {
		t.Errorf("events by country %v: want visitors from several countries", countries)
	}
	p.stop(t)
}

// checkDashboard fetches the printed dashboard URL: the aggregator serves the
// dashboard's page there (the fragment stays in the browser).
func (p *demoProc) checkDashboard(t *testing.T) {
	t.Helper()
	resp, err := http.Get(p.ready["dashboard"])
	if err != nil {
		t.Fatalf("dashboard: %v", err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK || !strings.Contains(string(b), "<title>Avila Analytics</title>") {
		t.Fatalf("GET %s: %d, want the dashboard page; got:\n%.300s", p.ready["dashboard"], resp.StatusCode, b)
	}
}
