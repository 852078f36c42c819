package e2e

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/avila-analytics/avila/agent/listen"
	"github.com/avila-analytics/avila/internal/testenv"
)

// fileLimit is the open-file limit the agent runs under here: prlimit
// (util-linux) sets soft and hard limit alike before it execs the agent, so
// the agent cannot raise it.
const fileLimit = 256

// TestAgentUnderFileLimit opens twice as many idle connections to an agent
// as it may hold open files, and sends hits meanwhile:
//
//   - with the default caps (derived from the limit), the idle connections
//     of one address fill its cap and the rest are answered 503, while hits
//     from another address are served;
//   - with caps above the limit, accepts fail with EMFILE: the agent keeps
//     running and serves hits on a connection it already has, and accepts
//     again once the idle connections close.
//
// Every hit answered 204 is stored exactly once.
func TestAgentUnderFileLimit(t *testing.T) {
	prlimit, err := exec.LookPath("prlimit")
	if err != nil {
		t.Fatalf("prlimit (Debian package util-linux) runs the agent under a low open-file limit: %v", err)
	}
	s := newStack(t, testenv.PostgresURL(t))
	args := s.agent.args
	limited := func(extra ...string) {
		t.Helper()
		s.agent.kill()
		s.agent = startUnder(t, []string{prlimit, fmt.Sprintf("--nofile=%d:%d", fileLimit, fileLimit), "--"},
			"avila-agent", nil, append(append([]string(nil), args...), extra...)...)
		s.waitAgentReady()
		http.DefaultClient.CloseIdleConnections()
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/limits", s.agent.cmd.Process.Pid))
		if err != nil || !strings.Contains(string(b), fmt.Sprintf("Max open files            %d                  %d", fileLimit, fileLimit)) {
			t.Fatalf("agent's limits (%v):\n%s", err, b)
		}
		// The agent logs the limits it found and the caps it took from them.
		eventually(t, 10*time.Second, "the open-file limit logged", func() error {
			log, _ := os.ReadFile(s.agent.logf)
			want := fmt.Sprintf("soft=%d hard=%d", fileLimit, fileLimit)
			if !strings.Contains(string(log), "open-file limit") || !strings.Contains(string(log), want) {
				return fmt.Errorf("no %q in the log", want)
			}
			return nil
		})
	}
	base := s.agent.ready["agent"]
	addr := strings.TrimPrefix(base, "http://")
	from := func(local string) *http.Client {
		return &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{
			DialContext: (&net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(local)}}).DialContext}}
	}
	res := &loadResult{acked: map[int]bool{}, failed: map[int]bool{}, status: map[int]int{}}
	next := 0
	// hits sends n hits through client, each expected to be answered 204.
	hits := func(client *http.Client, n int) {
		t.Helper()
		for range n {
			id := next
			next++
			resp, err := browserGet(client, s.hitURL(id))
			if err != nil {
				res.failed[id] = true
				t.Fatalf("hit %d: %v", id, err)
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode != http.StatusNoContent {
				res.failed[id] = true
				t.Fatalf("hit %d: %d, want 204", id, resp.StatusCode)
			}
			res.acked[id] = true
		}
	}

	// servedAgain polls until a new connection from 127.0.0.1 is served.
	servedAgain := func() {
		t.Helper()
		eventually(t, time.Minute, "new connections from 127.0.0.1 served again", func() error {
			resp, err := browserGet(from("127.0.0.1"), base+"/healthz")
			if err != nil {
				return err
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				return fmt.Errorf("healthz %d", resp.StatusCode)
			}
			return nil
		})
	}

	// Default caps.
	limited()
	_, perIP := listen.DefaultCaps(fileLimit)
	idle := openIdle(t, addr, "127.0.0.1", 2*fileLimit)
	other := from("127.0.0.2")
	eventually(t, time.Minute, "idle connections past the per-address cap refused", func() error {
		refused, err := metricValueVia(other, base, "analytics_http_connections_refused_total", "reason", "max_conns_per_ip")
		if err != nil {
			return err
		}
		if want := float64(2*fileLimit - perIP); refused != want {
			return fmt.Errorf("%v refused, want %v", refused, want)
		}
		return nil
	})
	hits(other, 50)
	s.agent.alive()
	closeAll(idle)
	servedAgain()
	hits(from("127.0.0.1"), 10)

	// Caps above the limit: accepts fail with EMFILE.
	limited("--max-conns", "100000", "--max-conns-per-ip", "100000")
	keep := rawKeepAlive(t, addr)
	keep.hit(t, s.hitURL(next)) // the connection is open before the flood
	res.acked[next] = true
	next++
	idle = openIdle(t, addr, "127.0.0.1", 2*fileLimit)
	fds := fmt.Sprintf("/proc/%d/fd", s.agent.cmd.Process.Pid)
	eventually(t, time.Minute, "the agent out of file descriptors", func() error {
		open, err := os.ReadDir(fds)
		if err != nil {
			return err
		}
		if len(open) < fileLimit {
			return fmt.Errorf("%d files open", len(open))
		}
		return nil
	})
	eventually(t, time.Minute, "the failed accepts logged", func() error {
		b, _ := os.ReadFile(s.agent.logf)
		if !strings.Contains(string(b), "accepting connections failed") || !strings.Contains(string(b), "too many open files") {
			return fmt.Errorf("not in the log yet")
		}
		return nil
	})
	for range 50 {
		keep.hit(t, s.hitURL(next))
		res.acked[next] = true
		next++
	}
	s.agent.alive()
	closeAll(idle)
	servedAgain()
	hits(from("127.0.0.1"), 10)
	failedAccepts, err := metricValue(base, "analytics_http_accept_errors_total")
	if err != nil || failedAccepts == 0 {
		t.Fatalf("analytics_http_accept_errors_total %v (%v), want > 0", failedAccepts, err)
	}
	s.agent.alive()
	t.Logf("%d failed accepts retried; %d hits answered 204", int(failedAccepts), len(res.acked))
	s.expectExactlyOnce(res)
}

// openIdle opens n TCP connections to addr from the loopback address local
// and sends nothing on them. The kernel completes each handshake whether
// or not the agent accepts.
func openIdle(t *testing.T, addr, local string, n int) []net.Conn {
	t.Helper()
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(local)}, Timeout: 10 * time.Second}
	conns := make([]net.Conn, 0, n)
	t.Cleanup(func() { closeAll(conns) })
	for range n {
		c, err := d.Dial("tcp", addr)
		if err != nil {
			t.Fatalf("idle connection %d: %v", len(conns)+1, err)
		}
		conns = append(conns, c)
	}
	return conns
}

func closeAll(conns []net.Conn) {
	for _, c := range conns {
		_ = c.Close()
	}
}

// keepAlive is one HTTP/1.1 connection carrying request after request.
type keepAlive struct {
	c net.Conn
	r *bufio.Reader
}

func rawKeepAlive(t *testing.T, addr string) *keepAlive {
	t.Helper()
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP("127.0.0.2")}}
	c, err := d.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return &keepAlive{c: c, r: bufio.NewReader(c)}
}

// hit sends a GET of rawURL on the connection and fails unless it is
// answered 204.
func (k *keepAlive) hit(t *testing.T, rawURL string) {
	t.Helper()
	u, err := url.Parse(rawURL)
	if err != nil {
		t.Fatal(err)
	}
	_ = k.c.SetDeadline(time.Now().Add(30 * time.Second))
	if _, err := fmt.Fprintf(k.c, "GET %s HTTP/1.1\r\nHost: %s\r\nUser-Agent: %s\r\n\r\n", u.RequestURI(), u.Host, browserUA); err != nil {
		t.Fatalf("hit on the kept connection: %v", err)
	}
	resp, err := http.ReadResponse(k.r, nil)
	if err != nil {
		t.Fatalf("hit on the kept connection: %v", err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusNoContent {
		t.Fatalf("hit on the kept connection: %d, want 204", resp.StatusCode)
	}
}
