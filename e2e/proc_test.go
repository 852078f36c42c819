package e2e

import (
	"context"
	"errors"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/avila-analytics/avila/internal/apptest"
	"github.com/avila-analytics/avila/internal/freeport"
	"github.com/avila-analytics/avila/internal/testenv"
)

// proc is a running binary started by a test (internal/apptest), failing
// the test where apptest returns an error.
type proc struct {
	t     *testing.T
	p     *apptest.Process
	name  string
	logf  string
	args  []string  // the binary's arguments, for a test that starts it again otherwise
	cmd   *exec.Cmd // of the current run, for signals
	ready map[string]string
}

// redisPrefixes holds one Redis key prefix per test (*testing.T), which
// every aggregator the test starts shares.
var redisPrefixes sync.Map

// start runs a binary and waits for its one JSON ready line on stdout.
// Aggregators get their test's Redis key prefix (AVILA_REDIS_PREFIX, unless
// env sets it): tests share REDIS_URL and their fresh databases reuse site
// ids, so without it they would read each other's realtime counters and
// cached reports.
func start(t *testing.T, name string, env []string, args ...string) *proc {
	t.Helper()
	return startUnder(t, nil, name, env, args...)
}

// startUnder is start with the binary run under a wrapper command, e.g.
// prlimit --nofile=256:256 (nil: none).
func startUnder(t *testing.T, wrap []string, name string, env []string, args ...string) *proc {
	t.Helper()
	if name == "avila-aggregator" {
		prefix, _ := redisPrefixes.LoadOrStore(t, testenv.Prefix(t))
		env = append([]string{"AVILA_REDIS_PREFIX=" + prefix.(string)}, env...)
	}
	logf := filepath.Join(t.TempDir(), name+".log")
	ap, err := apptest.Start(apptest.Options{Name: name, Bin: bin(name), Wrap: wrap, Args: args, Env: env, LogPath: logf, ReadyTimeout: 60 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	p := &proc{t: t, p: ap, name: name, logf: logf, args: args, cmd: ap.Cmd(), ready: ap.Ready}
	t.Cleanup(func() {
		ap.Kill()
		if t.Failed() {
			t.Logf("--- %s log tail:\n%s", name, apptest.Tail(logf))
		}
	})
	return p
}

func (p *proc) running() bool { return p.p.Running() }

// kill sends SIGKILL and waits for the process to be gone.
func (p *proc) kill() { p.p.Kill() }

// stop sends SIGTERM and expects a clean exit within 30 s.
func (p *proc) stop() {
	p.t.Helper()
	if err := p.p.Stop(30 * time.Second); err != nil {
		p.t.Fatal(err)
	}
}

// restart starts the same binary with the same arguments again.
func (p *proc) restart() {
	p.t.Helper()
	if err := p.p.Restart(); err != nil {
		p.t.Fatal(err)
	}
	p.cmd, p.ready = p.p.Cmd(), p.p.Ready
}

// alive fails the test when the process has exited.
func (p *proc) alive() {
	p.t.Helper()
	if !p.p.Running() {
		p.t.Fatalf("%s exited: %v", p.name, p.p.Err())
	}
}

// freePort returns a loopback TCP (or UDP) address free right now, so a
// restarted process can come back on the same address.
func freePort(t *testing.T, network string) string {
	t.Helper()
	addr, err := freeport.Addr("127.0.0.1", network)
	if err != nil {
		t.Fatal(err)
	}
	return addr
}

// waitReady waits until the /readyz under base answers 200.
func waitReady(t *testing.T, base string) {
	t.Helper()
	if err := apptest.WaitReady(context.Background(), base+"/readyz", 60*time.Second); err != nil {
		t.Fatal(err)
	}
}

// eventually polls cond until it returns nil or the deadline passes.
func eventually(t *testing.T, timeout time.Duration, what string, cond func() error) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	var err error
	for time.Now().Before(deadline) {
		if err = cond(); err == nil {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	if err == nil {
		err = errors.New("timed out")
	}
	t.Fatalf("%s: not true after %s: %v", what, timeout, err)
}
