package e2e

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/avila-analytics/avila/internal/testenv"
)

// proc is a running binary started by a test.
type proc struct {
	t      *testing.T
	name   string
	wrap   []string // a command the binary runs under (e.g. prlimit …), or none
	args   []string
	env    []string
	logf   string
	cmd    *exec.Cmd
	ready  map[string]string
	exited chan error
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

// startUnder is start with the binary run by the command wrap, whose
// arguments come first: prlimit --nofile=256:256 -- avila-agent ….
func startUnder(t *testing.T, wrap []string, name string, env []string, args ...string) *proc {
	t.Helper()
	if name == "avila-aggregator" {
		prefix, _ := redisPrefixes.LoadOrStore(t, testenv.Prefix(t))
		env = append([]string{"AVILA_REDIS_PREFIX=" + prefix.(string)}, env...)
	}
	p := &proc{t: t, name: name, wrap: wrap, args: args, env: env, logf: filepath.Join(t.TempDir(), name+".log")}
	p.launch()
	t.Cleanup(func() {
		if p.running() {
			_ = p.cmd.Process.Signal(syscall.SIGKILL)
			<-p.exited
		}
		if t.Failed() {
			b, _ := os.ReadFile(p.logf)
			if len(b) > 6000 {
				b = b[len(b)-6000:]
			}
			t.Logf("--- %s log tail:\n%s", name, b)
		}
	})
	return p
}

func (p *proc) launch() {
	t := p.t
	t.Helper()
	logFile, err := os.OpenFile(p.logf, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin(p.name), p.args...)
	if len(p.wrap) > 0 {
		cmd = exec.Command(p.wrap[0], append(append(p.wrap[1:len(p.wrap):len(p.wrap)], bin(p.name)), p.args...)...)
	}
	cmd.Env = append(os.Environ(), p.env...)
	cmd.Stderr = logFile
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", p.name, err)
	}
	p.cmd = cmd
	p.exited = make(chan error, 1)
	lines := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			select {
			case lines <- sc.Text():
			default:
			}
		}
		p.exited <- cmd.Wait()
		logFile.Close()
	}()
	select {
	case line := <-lines:
		var ready map[string]any
		if err := json.Unmarshal([]byte(line), &ready); err != nil {
			t.Fatalf("%s: ready line %q is not JSON: %v", p.name, line, err)
		}
		p.ready = map[string]string{}
		for k, v := range ready {
			p.ready[k] = fmt.Sprint(v)
		}
	case err := <-p.exited:
		p.exited <- err
		b, _ := os.ReadFile(p.logf)
		t.Fatalf("%s exited before ready: %v\n%s", p.name, err, b)
	case <-time.After(60 * time.Second):
		t.Fatalf("%s: no ready line within 60s", p.name)
	}
}

func (p *proc) running() bool {
	select {
	case err := <-p.exited:
		p.exited <- err
		return false
	default:
		return p.cmd != nil
	}
}

// kill sends SIGKILL and waits for the process to be gone.
func (p *proc) kill() {
	p.t.Helper()
	_ = p.cmd.Process.Signal(syscall.SIGKILL)
	err := <-p.exited
	p.exited <- err
}

// stop sends SIGTERM and expects a clean exit within 30 s.
func (p *proc) stop() {
	p.t.Helper()
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-p.exited:
		p.exited <- err
		if err != nil {
			p.t.Fatalf("%s did not exit cleanly on SIGTERM: %v", p.name, err)
		}
	case <-time.After(30 * time.Second):
		p.t.Fatalf("%s still running 30s after SIGTERM", p.name)
	}
}

// restart starts the same binary with the same arguments again.
func (p *proc) restart() {
	p.t.Helper()
	if p.running() {
		p.t.Fatalf("BUG: restart of running %s", p.name)
	}
	p.launch()
}

// alive fails the test when the process has exited.
func (p *proc) alive() {
	p.t.Helper()
	if !p.running() {
		err := <-p.exited
		p.exited <- err
		p.t.Fatalf("%s exited: %v", p.name, err)
	}
}

// freePort returns a loopback TCP (or UDP) port that is free right now, so
// a restarted process can come back on the same address.
func freePort(t *testing.T, network string) string {
	t.Helper()
	switch network {
	case "udp":
		c, err := net.ListenPacket("udp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		return c.LocalAddr().String()
	default:
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer l.Close()
		return l.Addr().String()
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
