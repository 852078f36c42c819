package listen

import (
	"bytes"
	"errors"
	"io"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"
)

// scripted is a net.Conn whose reads return the given chunks one by one.
type scripted struct {
	net.Conn // nil: only Read, Write, Close are used
	chunks   []string
	written  bytes.Buffer
}

func (s *scripted) Read(p []byte) (int, error) {
	if len(s.chunks) == 0 {
		return 0, io.EOF
	}
	n := copy(p, s.chunks[0])
	s.chunks[0] = s.chunks[0][n:]
	if s.chunks[0] == "" {
		s.chunks = s.chunks[1:]
	}
	return n, nil
}

func (s *scripted) Write(p []byte) (int, error) { return s.written.Write(p) }

// TestHeadWatch: a bare LF in a request head fails the read at the LF, the
// bytes before it read first; bodies, interim answers and bytes that do
// not start a request are not judged.
func TestHeadWatch(t *testing.T) {
	// steps: "r:<chunk>" is read by the peer, "w:<bytes>" written by the
	// server. want: everything read before the error, and whether
	// ErrBareLF came.
	f := func(name string, steps []string, wantRead string, wantBare bool) {
		t.Helper()
		s := &scripted{}
		c := newConn(s, nil, netip.Addr{}, false)
		var got strings.Builder
		var err error
		buf := make([]byte, 64)
		for _, step := range steps {
			kind, data, _ := strings.Cut(step, ":")
			if kind == "w" {
				_, _ = c.Write([]byte(data))
				continue
			}
			s.chunks = append(s.chunks, data)
			for err == nil {
				var n int
				n, err = c.Read(buf)
				got.Write(buf[:n])
			}
			if err != io.EOF {
				break
			}
			err = nil
		}
		if got.String() != wantRead || errors.Is(err, ErrBareLF) != wantBare {
			t.Errorf("%s: read %q, err %v; want %q, bare LF %v", name, got.String(), err, wantRead, wantBare)
		}
		if wantBare {
			// The error stays.
			if _, err := c.Read(buf); !errors.Is(err, ErrBareLF) {
				t.Errorf("%s: read after the error: %v", name, err)
			}
		}
	}
	crlf := "GET /g/collect HTTP/1.1\r\nHost: a\r\n\r\n"
	f("CRLF head", []string{"r:" + crlf}, crlf, false)
	f("bare LF head", []string{"r:GET / HTTP/1.1\nHost: a\n\n"}, "GET / HTTP/1.1", true)
	f("bare LF in a header", []string{"r:GET / HTTP/1.1\r\nHost: a\n\r\n"}, "GET / HTTP/1.1\r\nHost: a", true)
	f("CR and LF in two reads", []string{"r:GET / HTTP/1.1\r", "r:\nHost: a\r\n\r\n"}, "GET / HTTP/1.1\r\nHost: a\r\n\r\n", false)
	f("bare LF first in a read", []string{"r:GET / HTTP/1.1\r\nHost: a", "r:\n\r\n"}, "GET / HTTP/1.1\r\nHost: a", true)
	f("head end across reads", []string{"r:GET / HTTP/1.1\r\nHost: a\r\n\r", "r:\nline1\nline2\n"},
		"GET / HTTP/1.1\r\nHost: a\r\n\r\nline1\nline2\n", false)
	body := "POST /g/collect HTTP/1.1\r\nHost: a\r\nContent-Length: 12\r\n\r\nen=a\nen=b\n\n"
	f("body with LFs", []string{"r:" + body}, body, false)
	f("body read later", []string{"r:POST / HTTP/1.1\r\nContent-Length: 6\r\n\r\n", "r:a\nb\nc\n"},
		"POST / HTTP/1.1\r\nContent-Length: 6\r\n\r\na\nb\nc\n", false)
	f("next request after the answer", []string{"r:" + crlf, "w:HTTP/1.1 204 No Content\r\n\r\n", "r:GET / HTTP/1.1\nHost: a\n\n"},
		crlf+"GET / HTTP/1.1", true)
	f("two good requests", []string{"r:" + body, "w:HTTP/1.1 204 No Content\r\n\r\n", "r:" + body}, body+body, false)
	f("body after 100 Continue", []string{"r:POST / HTTP/1.1\r\nExpect: 100-continue\r\nContent-Length: 4\r\n\r\n",
		"w:HTTP/1.1 100 Continue\r\n\r\n", "r:a\nb\n"}, "POST / HTTP/1.1\r\nExpect: 100-continue\r\nContent-Length: 4\r\n\r\na\nb\n", false)
	f("pipelined body after an answer", []string{"r:" + crlf, "w:HTTP/1.1 204 No Content\r\n\r\n", "r:en=a\nen=b\n"},
		crlf+"en=a\nen=b\n", false)
	f("not HTTP", []string{"r:\x16\x03\x01\n\n"}, "\x16\x03\x01\n\n", false)
}

// TestLingerDeliversEarlyAnswer: a server that answers after reading only
// the head and closes lingering lets the client finish sending its body
// and read the answer, where a plain close with unread bytes would reset
// the connection under it.
func TestLingerDeliversEarlyAnswer(t *testing.T) {
	ln := newTestListener(t, Config{MaxConns: 4, MaxConnsPerIP: 4})
	const bodyLen = 512 << 10
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		buf := make([]byte, 256)
		_, _ = c.Read(buf) // the head, perhaps a little of the body
		_, _ = io.WriteString(c, "HTTP/1.1 413 Request Entity Too Large\r\nConnection: close\r\nContent-Length: 9\r\n\r\ntoo large")
		Linger(c)
		_ = c.Close()
	}()
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	wrote := make(chan error, 1)
	go func() {
		_, err := io.WriteString(c, "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 524288\r\n\r\n"+strings.Repeat("x", bodyLen))
		wrote <- err
	}()
	if err := <-wrote; err != nil {
		t.Fatalf("writing the body: %v (the server reset the connection)", err)
	}
	got, err := io.ReadAll(c)
	if err != nil || !strings.HasPrefix(string(got), "HTTP/1.1 413") || !strings.HasSuffix(string(got), "too large") {
		t.Fatalf("answer %q, err %v; want the whole 413", got, err)
	}
	_ = c.Close() // ends the server's drain
	waitOpen(t, ln, 0)
}

// waitOpen polls until ln counts want open connections.
func waitOpen(t *testing.T, ln *Listener, want int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for ln.Stats().Open != want {
		if time.Now().After(deadline) {
			t.Fatalf("open connections %d, want %d", ln.Stats().Open, want)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
