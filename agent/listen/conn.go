package listen

import (
	"bytes"
	"errors"
	"io"
	"net"
	"net/netip"
	"sync/atomic"
	"time"
)

// ErrBareLF fails a connection's read when a request line or header line
// ends in a bare LF: HTTP/1.1 lines end in CRLF, and the HTTP server would
// otherwise wait for a CRLF CRLF the client never sends.
var ErrBareLF = errors.New("a request line or header line ends in a bare LF, not CRLF")

// Lingering close bounds: after an error answer, what the client still
// sends is read and discarded for up to lingerTimeout and lingerBytes.
const (
	lingerTimeout = 2 * time.Second
	lingerBytes   = 1 << 20
)

// conn is an admitted connection. It counts against the caps until closed,
// closes lingering when Linger was called, and watches each request head
// for bare LF line endings.
//
// The head watch: the HTTP server reads and writes a connection from one
// goroutine, and a client sends its next request after it read the answer
// to the last (browsers and proxies do not pipeline). So the bytes read
// after an answer was written start a request: from there to the CRLF CRLF
// ending its head every LF must follow a CR. The body is not looked at: a
// form body holds bare LFs on purpose. A head that does not start with an
// upper-case letter (a method) is not watched either: then the bytes are
// not where a request starts (a pipelined body), and the server judges them.
type conn struct {
	net.Conn
	l       *Listener
	key     netip.Addr
	limited bool
	closed  atomic.Bool
	linger  atomic.Bool

	// Head watch state; Read and Write only.
	head    bool  // the bytes read belong to a request head
	start   bool  // the next byte read starts a request
	last    byte  // the byte read before the next one
	lineLen int   // bytes of the current head line read so far, CR included
	err     error // ErrBareLF for the next Read once the bytes before it are read
}

func newConn(c net.Conn, l *Listener, key netip.Addr, limited bool) *conn {
	return &conn{Conn: c, l: l, key: key, limited: limited, head: true, start: true}
}

func (c *conn) Read(p []byte) (int, error) {
	if c.err != nil {
		return 0, c.err
	}
	n, err := c.Conn.Read(p)
	if n > 0 && c.head {
		if bad := c.watch(p[:n]); bad >= 0 {
			c.err = ErrBareLF
			if bad == 0 {
				return 0, ErrBareLF
			}
			return bad, nil
		}
	}
	return n, err
}

// watch follows the head through b. It returns the index of a bare LF in
// b, or -1.
func (c *conn) watch(b []byte) int {
	if c.start {
		c.start = false
		if b[0] < 'A' || b[0] > 'Z' {
			c.head = false
			return -1
		}
	}
	for i := 0; i < len(b); {
		j := bytes.IndexByte(b[i:], '\n')
		if j < 0 {
			c.lineLen += len(b) - i
			c.last = b[len(b)-1]
			return -1
		}
		j += i
		before := c.last
		if j > 0 {
			before = b[j-1]
		}
		if before != '\r' {
			return j
		}
		if c.lineLen+j-i == 1 {
			// An empty line, just CR LF: the head ends here.
			c.head = false
			return -1
		}
		c.lineLen, c.last, i = 0, '\n', j+1
	}
	return -1
}

// interim is the start of a 1xx answer (100 Continue), after which the
// request's body follows, not a new request.
var interim = []byte("HTTP/1.1 1")

func (c *conn) Write(p []byte) (int, error) {
	if len(p) > 0 && !bytes.HasPrefix(p, interim) {
		c.head, c.start, c.lineLen, c.last = true, true, 0, 0
	}
	return c.Conn.Write(p)
}

// Close closes the connection, lingering when Linger was called, and
// releases its place under the caps. Calls after the first return nil.
func (c *conn) Close() error {
	if !c.closed.CompareAndSwap(false, true) {
		return nil
	}
	if c.linger.Load() {
		drain(c.Conn)
	}
	err := c.Conn.Close()
	c.l.release(c.key, c.limited)
	return err
}

// Linger makes c, when it is a connection of a Listener, close lingering:
// call it when answering a request whose body or head was not read whole,
// so the answer is read by the client rather than lost to a reset.
func Linger(c net.Conn) {
	if lc, ok := c.(*conn); ok {
		lc.linger.Store(true)
	}
}

// drain closes c's write side, so the client sees the answer end, then
// reads and discards what it still sends, within lingerTimeout and
// lingerBytes.
func drain(c net.Conn) {
	if cw, ok := c.(interface{ CloseWrite() error }); ok {
		_ = cw.CloseWrite()
	}
	_ = c.SetReadDeadline(time.Now().Add(lingerTimeout))
	_, _ = io.CopyN(io.Discard, c, lingerBytes)
}
