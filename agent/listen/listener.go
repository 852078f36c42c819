package listen

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"
)

// Refusal reasons, the label values of the agent's refused-connections
// metric.
const (
	ReasonMaxConns      = "max_conns"
	ReasonMaxConnsPerIP = "max_conns_per_ip"
)

// Accept back-off bounds: the pause after a failed accept starts at
// minAcceptDelay and doubles up to maxAcceptDelay while accepts keep failing.
const (
	minAcceptDelay = 5 * time.Millisecond
	maxAcceptDelay = time.Second
)

// refusing bounds the refused connections being answered at once: each holds
// a file descriptor while its 503 is written and its request read away. Past
// it a refused connection is closed without an answer.
const refusing = 16

// warnEvery spaces the warnings about accept errors and refusals.
const warnEvery = time.Minute

// Config sets a Listener's caps.
type Config struct {
	// MaxConns caps the connections open at once; MaxConnsPerIP those from
	// one client address (IPv4 address, IPv6 /64). Both must be > 0.
	MaxConns, MaxConnsPerIP int
	// Exempt reports peers not subject to MaxConnsPerIP (trusted reverse
	// proxies, which carry many clients' requests); nil: none.
	Exempt func(netip.Addr) bool
	// RetryAfter is the Retry-After of the 503 answering a refused
	// connection; 0: 5 s.
	RetryAfter time.Duration
	Logger     *slog.Logger
}

// Stats are a Listener's figures since New.
type Stats struct {
	Open                    int    // connections open now
	MaxConns, MaxConnsPerIP int    // the caps
	RefusedMaxConns         uint64 // connections refused by MaxConns
	RefusedMaxConnsPerIP    uint64 // connections refused by MaxConnsPerIP
	AcceptErrors            uint64 // accepts that failed and were retried after a pause
}

// Listener wraps a TCP listener with the caps and behaviours of the package
// comment. Its connections are *conn values.
type Listener struct {
	ln         net.Listener
	cfg        Config
	log        *slog.Logger
	retryAfter string // seconds

	done      chan struct{}
	closeOnce sync.Once
	refusals  chan struct{} // slots of refused connections being answered

	mu    sync.Mutex
	open  int
	perIP map[netip.Addr]int

	refusedTotal, refusedPerIP, acceptErrors atomic.Uint64
	// The last warnings, in Unix nanoseconds, and what was counted then.
	lastAcceptWarn, lastRefusalWarn   atomic.Int64
	warnedAcceptErrors, warnedRefused atomic.Uint64
}

// New wraps ln.
func New(ln net.Listener, cfg Config) (*Listener, error) {
	if cfg.MaxConns <= 0 || cfg.MaxConnsPerIP <= 0 {
		return nil, fmt.Errorf("listen: connection caps %d total, %d per address must be > 0", cfg.MaxConns, cfg.MaxConnsPerIP)
	}
	if cfg.RetryAfter <= 0 {
		cfg.RetryAfter = 5 * time.Second
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	return &Listener{
		ln: ln, cfg: cfg, log: log,
		retryAfter: fmt.Sprint(max(int(cfg.RetryAfter/time.Second), 1)),
		done:       make(chan struct{}),
		refusals:   make(chan struct{}, refusing),
		perIP:      map[netip.Addr]int{},
	}, nil
}

// Addr is the address listened on.
func (l *Listener) Addr() net.Addr { return l.ln.Addr() }

// Close stops accepting; open connections stay open.
func (l *Listener) Close() error {
	err := net.ErrClosed
	l.closeOnce.Do(func() {
		close(l.done)
		err = l.ln.Close()
	})
	return err
}

// Stats returns the listener's figures.
func (l *Listener) Stats() Stats {
	l.mu.Lock()
	open := l.open
	l.mu.Unlock()
	return Stats{
		Open: open, MaxConns: l.cfg.MaxConns, MaxConnsPerIP: l.cfg.MaxConnsPerIP,
		RefusedMaxConns: l.refusedTotal.Load(), RefusedMaxConnsPerIP: l.refusedPerIP.Load(),
		AcceptErrors: l.acceptErrors.Load(),
	}
}

// Accept returns the next connection within the caps. Accept errors that
// pass are retried after a pause; it returns an error only when the
// listener is closed or failed for good.
func (l *Listener) Accept() (net.Conn, error) {
	var delay time.Duration
	for {
		c, err := l.ln.Accept()
		if err != nil {
			select {
			case <-l.done:
				return nil, &net.OpError{Op: "accept", Net: "tcp", Addr: l.Addr(), Err: net.ErrClosed}
			default:
			}
			if !passing(err) {
				return nil, err
			}
			delay = min(max(2*delay, minAcceptDelay), maxAcceptDelay)
			l.acceptFailed(err, delay)
			if !l.pause(delay) {
				return nil, &net.OpError{Op: "accept", Net: "tcp", Addr: l.Addr(), Err: net.ErrClosed}
			}
			continue
		}
		delay = 0
		if admitted := l.admit(c); admitted != nil {
			return admitted, nil
		}
	}
}

// pause waits d; false when the listener was closed meanwhile.
func (l *Listener) pause(d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-l.done:
		return false
	}
}

// acceptFailed counts a failed accept and warns, at most once per
// warnEvery, with how many failed since the last warning.
func (l *Listener) acceptFailed(err error, delay time.Duration) {
	n := l.acceptErrors.Add(1)
	if !due(&l.lastAcceptWarn) {
		return
	}
	since := n - l.warnedAcceptErrors.Swap(n)
	l.log.Warn("accepting connections failed; retrying after a pause (raise the open-file limit or lower --max-conns)",
		"err", err, "pause", delay, "failed_since_last_warning", since)
}

// due reports whether a warning spaced by warnEvery may be logged now, and
// if so records it.
func due(last *atomic.Int64) bool {
	now := time.Now().UnixNano()
	prev := last.Load()
	return now-prev >= int64(warnEvery) && last.CompareAndSwap(prev, now)
}

// admit wraps c when the caps allow it; otherwise it refuses c and returns
// nil.
func (l *Listener) admit(c net.Conn) net.Conn {
	key, limited := l.key(c)
	l.mu.Lock()
	switch {
	case l.open >= l.cfg.MaxConns:
		l.mu.Unlock()
		l.refuse(c, ReasonMaxConns)
		return nil
	case limited && l.perIP[key] >= l.cfg.MaxConnsPerIP:
		l.mu.Unlock()
		l.refuse(c, ReasonMaxConnsPerIP)
		return nil
	}
	l.open++
	if limited {
		l.perIP[key]++
	}
	l.mu.Unlock()
	return newConn(c, l, key, limited)
}

// release undoes admit's count for a closed connection.
func (l *Listener) release(key netip.Addr, limited bool) {
	l.mu.Lock()
	l.open--
	if limited {
		if n := l.perIP[key] - 1; n > 0 {
			l.perIP[key] = n
		} else {
			delete(l.perIP, key)
		}
	}
	l.mu.Unlock()
}

// key is the per-address count's key for c's peer, and whether that count
// applies: not for exempt peers nor for peers that are not IP.
func (l *Listener) key(c net.Conn) (netip.Addr, bool) {
	tcp, ok := c.RemoteAddr().(*net.TCPAddr)
	if !ok {
		return netip.Addr{}, false
	}
	ip := tcp.AddrPort().Addr().Unmap()
	if l.cfg.Exempt != nil && l.cfg.Exempt(ip) {
		return netip.Addr{}, false
	}
	if ip.Is6() {
		// One IPv6 client commonly holds a whole /64.
		p, _ := ip.Prefix(64)
		return p.Addr(), true
	}
	return ip, true
}

// refuse answers c with 503 and closes it, in the background when a slot
// is free, else at once without an answer.
func (l *Listener) refuse(c net.Conn, reason string) {
	var n uint64
	limit := l.cfg.MaxConns
	if reason == ReasonMaxConns {
		n = l.refusedTotal.Add(1)
	} else {
		n = l.refusedPerIP.Add(1)
		limit = l.cfg.MaxConnsPerIP
	}
	if due(&l.lastRefusalWarn) {
		all := l.refusedTotal.Load() + l.refusedPerIP.Load()
		l.log.Warn("refusing connections past a cap (see --max-conns, --max-conns-per-ip)",
			"reason", reason, "cap", limit, "refused", n, "refused_since_last_warning", all-l.warnedRefused.Swap(all))
	}
	select {
	case l.refusals <- struct{}{}:
		go func() {
			defer func() { <-l.refusals }()
			answerRefused(c, reason, limit, l.retryAfter)
		}()
	default:
		_ = c.Close()
	}
}

// answerRefused writes the 503 for a refused connection and closes it
// lingering, so the answer is read rather than reset.
func answerRefused(c net.Conn, reason string, limit int, retryAfter string) {
	msg := fmt.Sprintf("too many open connections to this agent (cap %d); retry later\n", limit)
	if reason == ReasonMaxConnsPerIP {
		msg = fmt.Sprintf("too many open connections from your address (cap %d); close idle ones or retry later\n", limit)
	}
	resp := fmt.Sprintf("HTTP/1.1 503 Service Unavailable\r\nContent-Type: text/plain; charset=utf-8\r\n"+
		"X-Content-Type-Options: nosniff\r\nCache-Control: no-store\r\nRetry-After: %s\r\nConnection: close\r\n"+
		"Content-Length: %d\r\n\r\n%s", retryAfter, len(msg), msg)
	_ = c.SetWriteDeadline(time.Now().Add(lingerTimeout))
	if _, err := io.WriteString(c, resp); err == nil {
		drain(c)
	}
	_ = c.Close()
}

// passing reports accept errors that go away by themselves: out of file
// descriptors or kernel memory, or a connection reset before it was
// accepted.
func passing(err error) bool {
	if errors.Is(err, context.DeadlineExceeded) {
		return true
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return true
	}
	return passingErrno(err)
}
