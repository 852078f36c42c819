package listen

import (
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"strings"
	"syscall"
	"testing"
)

func newTestListener(t *testing.T, cfg Config) *Listener {
	t.Helper()
	tcp, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ln, err := New(tcp, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = ln.Close() })
	return ln
}

// failing is a listener whose Accept fails with errs, one per call, then
// returns conn.
type failing struct {
	net.Listener
	errs []error
	conn net.Conn
}

func (f *failing) Accept() (net.Conn, error) {
	if len(f.errs) > 0 {
		err := f.errs[0]
		f.errs = f.errs[1:]
		return nil, err
	}
	return f.conn, nil
}

func (f *failing) Addr() net.Addr { return &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1)} }
func (f *failing) Close() error   { return nil }

// fakeConn is a connection from addr.
type fakeConn struct {
	net.Conn
	addr net.Addr
}

func (c fakeConn) RemoteAddr() net.Addr { return c.addr }
func (c fakeConn) Close() error         { return nil }

// TestAcceptRetriesPassingErrors: out of file descriptors (and the other
// errors that pass) Accept pauses and tries again instead of failing, which
// fasthttp would take as the end of serving; any other error ends it.
func TestAcceptRetriesPassingErrors(t *testing.T) {
	accepted := fakeConn{addr: &net.TCPAddr{IP: net.IPv4(192, 0, 2, 1), Port: 1}}
	opErr := func(errno syscall.Errno) error {
		return &net.OpError{Op: "accept", Net: "tcp", Err: &osSyscallError{errno}}
	}
	f := &failing{errs: []error{opErr(syscall.EMFILE), opErr(syscall.ENFILE), opErr(syscall.ECONNABORTED), opErr(syscall.ENOBUFS)}, conn: accepted}
	ln, err := New(f, Config{MaxConns: 10, MaxConnsPerIP: 10})
	if err != nil {
		t.Fatal(err)
	}
	c, err := ln.Accept()
	if err != nil {
		t.Fatalf("Accept: %v, want the connection after the passing errors", err)
	}
	if c.RemoteAddr() != accepted.addr {
		t.Fatalf("accepted %v", c.RemoteAddr())
	}
	if st := ln.Stats(); st.AcceptErrors != 4 || st.Open != 1 {
		t.Fatalf("stats %+v, want 4 accept errors and 1 open", st)
	}
	_ = c.Close()
	if st := ln.Stats(); st.Open != 0 {
		t.Fatalf("open %d after close", st.Open)
	}

	fatal := opErr(syscall.EINVAL)
	f.errs = []error{fatal}
	if _, err := ln.Accept(); !errors.Is(err, syscall.EINVAL) {
		t.Fatalf("Accept with EINVAL: %v, want it returned", err)
	}

	// Closed while pausing: the error fasthttp reads as the end of serving.
	f.errs = []error{opErr(syscall.EMFILE)}
	_ = ln.Close()
	if _, err := ln.Accept(); err == nil || !strings.Contains(err.Error(), "use of closed network connection") {
		t.Fatalf("Accept after Close: %v", err)
	}
}

// osSyscallError wraps an errno as os.SyscallError does for accept.
type osSyscallError struct{ errno syscall.Errno }

func (e *osSyscallError) Error() string { return "accept4: " + e.errno.Error() }
func (e *osSyscallError) Unwrap() error { return e.errno }

// dialFrom connects to ln from the loopback address local.
func dialFrom(t *testing.T, ln *Listener, local string) net.Conn {
	t.Helper()
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(local)}}
	c, err := d.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// refused reads c's whole answer and fails unless it is a 503 with
// Retry-After saying want.
func refused(t *testing.T, c net.Conn, want string) {
	t.Helper()
	b, err := io.ReadAll(c)
	s := string(b)
	if err != nil || !strings.HasPrefix(s, "HTTP/1.1 503 ") || !strings.Contains(s, "\r\nRetry-After: 5\r\n") || !strings.Contains(s, want) {
		t.Fatalf("answer %q, err %v; want 503 with Retry-After saying %q", s, err, want)
	}
}

// TestConnectionCaps: past the per-address cap a client is refused while
// another address is served; past the total cap everyone is, exempt peers
// included; a closed connection frees its place. A refused client that
// sent a request body first still reads the 503.
func TestConnectionCaps(t *testing.T) {
	exempt := netip.MustParseAddr("127.0.0.3")
	ln := newTestListener(t, Config{MaxConns: 4, MaxConnsPerIP: 2, Exempt: func(ip netip.Addr) bool { return ip == exempt }})
	conns := make(chan net.Conn, 8)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				close(conns)
				return
			}
			conns <- c
		}
	}()
	admitted := func(local string) (client, server net.Conn) {
		t.Helper()
		client = dialFrom(t, ln, local)
		server = <-conns
		if got := server.RemoteAddr().(*net.TCPAddr).IP.String(); got != local {
			t.Fatalf("admitted %s, want %s", got, local)
		}
		return client, server
	}
	_, s1 := admitted("127.0.0.1")
	admitted("127.0.0.1")

	// The third from 127.0.0.1 is refused; it sends a request with a
	// body first and still reads the answer.
	c := dialFrom(t, ln, "127.0.0.1")
	_, _ = fmt.Fprintf(c, "POST /g/collect HTTP/1.1\r\nHost: a\r\nContent-Length: 100000\r\n\r\n%s", strings.Repeat("x", 100000))
	refused(t, c, "from your address (cap 2)")

	admitted("127.0.0.2")
	admitted("127.0.0.3") // exempt from the per-address cap; 4 open now
	refused(t, dialFrom(t, ln, "127.0.0.3"), "open connections to this agent (cap 4)")
	refused(t, dialFrom(t, ln, "127.0.0.4"), "open connections to this agent (cap 4)")

	st := ln.Stats()
	if st.Open != 4 || st.RefusedMaxConnsPerIP != 1 || st.RefusedMaxConns != 2 || st.MaxConns != 4 || st.MaxConnsPerIP != 2 {
		t.Fatalf("stats %+v", st)
	}
	_ = s1.Close()
	_ = s1.Close() // a second close releases nothing more
	if got := ln.Stats().Open; got != 3 {
		t.Fatalf("open %d after a close, want 3", got)
	}
	admitted("127.0.0.1")
}

// TestPerIPKey: an IPv6 client counts by its /64; IPv4 by its address;
// exempt peers not at all.
func TestPerIPKey(t *testing.T) {
	ln, err := New(&failing{}, Config{MaxConns: 1, MaxConnsPerIP: 1, Exempt: func(ip netip.Addr) bool { return ip.IsLoopback() }})
	if err != nil {
		t.Fatal(err)
	}
	f := func(addr, want string, limited bool) {
		t.Helper()
		key, lim := ln.key(fakeConn{addr: net.TCPAddrFromAddrPort(netip.MustParseAddrPort(addr))})
		if lim != limited || (limited && key.String() != want) {
			t.Errorf("%s: key %v limited %v, want %s %v", addr, key, lim, want, limited)
		}
	}
	f("[2001:db8:1:2:aaaa::1]:443", "2001:db8:1:2::", true)
	f("[2001:db8:1:2:bbbb::9]:443", "2001:db8:1:2::", true)
	f("[::ffff:192.0.2.7]:80", "192.0.2.7", true)
	f("192.0.2.7:80", "192.0.2.7", true)
	f("127.0.0.1:80", "", false)
	if _, err := New(&failing{}, Config{MaxConns: 0, MaxConnsPerIP: 1}); err == nil {
		t.Error("New with MaxConns 0: no error")
	}
}

func TestDefaultCaps(t *testing.T) {
	f := func(files uint64, total, perIP int) {
		t.Helper()
		if gotTotal, gotPerIP := DefaultCaps(files); gotTotal != total || gotPerIP != perIP {
			t.Errorf("DefaultCaps(%d) = %d, %d; want %d, %d", files, gotTotal, gotPerIP, total, perIP)
		}
	}
	f(64, 32, 8)
	f(256, 128, 32)
	f(1024, 896, 224)
	f(16384, 14336, 1024)
	f(65536, 16384, 1024) // bounded by memory
	f(1<<20, 16384, 1024)
	f(0, 3584, 896) // unknown: as 4096
	f(^uint64(0), 16384, 1024)
	f(1, 1, 1)
}
