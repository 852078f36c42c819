package protocol

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"sync"
	"time"

	"github.com/quic-go/quic-go"
)

// ALPN names this protocol and its version in the TLS handshake.
const ALPN = "avila/1"

// StreamTimeout bounds one request/response exchange on a stream.
const StreamTimeout = 60 * time.Second

// quicConfig is shared by both ends: keep-alives hold a connection through
// quiet periods; the idle timeout notices a dead peer.
func quicConfig() *quic.Config {
	return &quic.Config{
		HandshakeIdleTimeout: 5 * time.Second,
		MaxIdleTimeout:       20 * time.Second,
		KeepAlivePeriod:      5 * time.Second,
		MaxIncomingStreams:   256,
	}
}

// Peer is what a handler knows of the sender of a stream.
type Peer struct {
	Addr net.Addr
	// CommonName of the verified client certificate, when mTLS is on.
	CommonName string
}

// Handler processes the requests an aggregator receives.
type Handler interface {
	// HandleBatch stores one compressed batch and says how it went.
	HandleBatch(ctx context.Context, wire []byte, peer Peer) Ack
	// HandleConfig answers an agent's request for sites and salts.
	HandleConfig(ctx context.Context, req ConfigRequest, peer Peer) (*Config, error)
}

// Server accepts QUIC connections and serves one request per stream.
type Server struct {
	tr  *quic.Transport
	ln  *quic.Listener
	h   Handler
	log *slog.Logger

	streams sync.WaitGroup // stream handlers in flight
	conns   sync.WaitGroup // connection accept loops
	mu      sync.Mutex
	open    map[*quic.Conn]struct{}
}

// ServerOptions tune a Server. The zero value works.
type ServerOptions struct {
	// ResetKey (32 bytes) derives stateless reset tokens. Keep it across
	// restarts (e.g. in a file of the data directory): a restarted server
	// then tells agents at once that their old connection is gone, instead
	// of leaving them to time out. Without it, agents notice by timeout.
	ResetKey []byte
}

// Listen opens a QUIC listener on addr (host:port; port 0 picks one).
func Listen(addr string, tlsConf *tls.Config, h Handler, log *slog.Logger) (*Server, error) {
	return ListenOptions(addr, tlsConf, h, log, ServerOptions{})
}

// ListenOptions is Listen with options.
func ListenOptions(addr string, tlsConf *tls.Config, h Handler, log *slog.Logger, opts ServerOptions) (*Server, error) {
	udpAddr, err := net.ResolveUDPAddr("udp", addr)
	if err != nil {
		return nil, fmt.Errorf("protocol: listen quic %s: %w", addr, err)
	}
	udp, err := net.ListenUDP("udp", udpAddr)
	if err != nil {
		return nil, fmt.Errorf("protocol: listen quic %s: %w", addr, err)
	}
	tr := &quic.Transport{Conn: udp}
	if len(opts.ResetKey) > 0 {
		if len(opts.ResetKey) != len(quic.StatelessResetKey{}) {
			udp.Close()
			return nil, fmt.Errorf("protocol: reset key must be %d bytes, got %d", len(quic.StatelessResetKey{}), len(opts.ResetKey))
		}
		var k quic.StatelessResetKey
		copy(k[:], opts.ResetKey)
		tr.StatelessResetKey = &k
	}
	tlsConf = tlsConf.Clone()
	tlsConf.NextProtos = []string{ALPN}
	if tlsConf.VerifyConnection != nil {
		tlsConf = logRefusals(tlsConf, log)
	}
	ln, err := tr.Listen(tlsConf, quicConfig())
	if err != nil {
		tr.Close()
		udp.Close()
		return nil, fmt.Errorf("protocol: listen quic %s: %w", addr, err)
	}
	return &Server{tr: tr, ln: ln, h: h, log: log, open: map[*quic.Conn]struct{}{}}, nil
}

// logRefusals makes every handshake that conf's VerifyConnection refuses
// (an agent without a valid certificate) be logged with the peer's address
// and the reason, which the agent itself only sees as a TLS alert.
func logRefusals(conf *tls.Config, log *slog.Logger) *tls.Config {
	base := conf.Clone()
	verify := base.VerifyConnection
	conf.GetConfigForClient = func(hello *tls.ClientHelloInfo) (*tls.Config, error) {
		peer := "unknown"
		if hello.Conn != nil {
			peer = hello.Conn.RemoteAddr().String()
		}
		c := base.Clone()
		c.VerifyConnection = func(cs tls.ConnectionState) error {
			err := verify(cs)
			if err != nil {
				log.Warn("refused agent connection", "peer", peer, "reason", err)
			}
			return err
		}
		return c, nil
	}
	return conf
}

// Addr is the UDP address the server listens on.
func (s *Server) Addr() net.Addr { return s.ln.Addr() }

// Serve accepts connections until ctx is cancelled or Close is called. Then
// it lets in-flight streams finish, closes every connection (so agents
// learn at once to go elsewhere or redial) and releases the UDP port.
func (s *Server) Serve(ctx context.Context) error {
	accept, stop := context.WithCancel(ctx)
	defer func() {
		stop()
		s.conns.Wait()
		s.streams.Wait()
		s.mu.Lock()
		for c := range s.open {
			_ = c.CloseWithError(0, "server stopping")
		}
		s.mu.Unlock()
		_ = s.ln.Close()
		_ = s.tr.Close()
		_ = s.tr.Conn.Close()
	}()
	for {
		conn, err := s.ln.Accept(accept)
		if err != nil {
			if ctx.Err() != nil || errors.Is(err, quic.ErrServerClosed) {
				return nil
			}
			return fmt.Errorf("protocol: accept: %w", err)
		}
		s.mu.Lock()
		s.open[conn] = struct{}{}
		s.mu.Unlock()
		s.conns.Go(func() {
			s.serveConn(accept, conn)
			// A connection the peer closed is forgotten; one still open
			// because the server is stopping is closed once its streams
			// are done.
			if conn.Context().Err() != nil {
				s.mu.Lock()
				delete(s.open, conn)
				s.mu.Unlock()
			}
		})
	}
}

// Close stops accepting connections; Serve returns once in-flight streams
// end.
func (s *Server) Close() error { return s.ln.Close() }

func (s *Server) serveConn(ctx context.Context, conn *quic.Conn) {
	peer := Peer{Addr: conn.RemoteAddr()}
	if certs := conn.ConnectionState().TLS.PeerCertificates; len(certs) > 0 {
		peer.CommonName = certs[0].Subject.CommonName
	}
	for {
		str, err := conn.AcceptStream(ctx)
		if err != nil {
			return // connection closed or server stopping
		}
		s.streams.Go(func() { s.serveStream(ctx, str, peer) })
	}
}

func (s *Server) serveStream(ctx context.Context, str *quic.Stream, peer Peer) {
	_ = str.SetDeadline(time.Now().Add(StreamTimeout))
	t, payload, err := ReadFrame(str, MaxFrameSize)
	if err != nil {
		s.log.Warn("refused stream", "peer", peer.Addr.String(), "err", err)
		str.CancelRead(1)
		// The answer is best effort: the peer may already be gone.
		if b, e := EncodeMsg(&Ack{Status: AckReject, Reason: err.Error()}); e == nil {
			_ = WriteFrame(str, FrameAck, b)
		}
		_ = str.Close()
		return
	}
	// After the answer: the agent's end of the stream, so that the stream
	// is done and the agent may open another in its place.
	defer endStream(str)
	// Work on a stream is not abandoned when the server is asked to stop:
	// a drain finishes in-flight batches.
	work := context.WithoutCancel(ctx)
	switch t {
	case FrameBatch:
		ack := s.h.HandleBatch(work, payload, peer)
		s.reply(str, FrameAck, &ack, peer)
	case FrameConfigRequest:
		var req ConfigRequest
		if err := DecodeMsg(payload, &req); err != nil {
			s.reply(str, FrameAck, &Ack{Status: AckReject, Reason: err.Error()}, peer)
			return
		}
		cfg, err := s.h.HandleConfig(work, req, peer)
		if err != nil {
			s.reply(str, FrameAck, &Ack{Status: AckRetry, Reason: err.Error()}, peer)
			return
		}
		s.reply(str, FrameConfig, cfg, peer)
	default:
		s.reply(str, FrameAck, &Ack{Status: AckReject, Reason: fmt.Sprintf("unexpected %s frame from agent", t)}, peer)
	}
}

func (s *Server) reply(str *quic.Stream, t FrameType, msg any, peer Peer) {
	b, err := EncodeMsg(msg)
	if err == nil {
		err = WriteFrame(str, t, b)
	}
	if err != nil {
		s.log.Warn("reply failed", "peer", peer.Addr.String(), "err", err)
	}
}

// Client is an agent's connection to one aggregator. It redials on demand
// after the connection breaks. Safe for concurrent use: each request has its
// own stream, and requests that need a connection while none is up share one
// dial, which runs outside the client's lock: a dial to a dead node costs
// them one handshake timeout together, not one each in turn.
type Client struct {
	addr string
	tls  *tls.Config
	opts ClientOptions

	mu      sync.Mutex
	conn    *quic.Conn
	dialing *dialCall   // the dial in progress, nil when none
	active  int         // requests in progress
	idle    *time.Timer // closes the connection CloseIdle after its last request; nil until first armed
}

// dialCall is one dial that every request waiting for a connection shares.
type dialCall struct {
	done chan struct{} // closed when conn or err is set
	conn *quic.Conn
	err  error
}

// ClientOptions tune a Client. The zero value takes the defaults both ends
// share.
type ClientOptions struct {
	// IdleTimeout is how long the connection may go without a packet from
	// the aggregator before it counts as dead and every request on it
	// fails; keep-alives go out at a third of it, and a handshake that
	// gets no answer for this long fails. A live aggregator answers
	// keep-alives however busy its handlers are, so a short timeout (about
	// a second on a LAN) lets an agent leave a killed or frozen node
	// quickly instead of after the default 20 s.
	IdleTimeout time.Duration
	// CloseIdle closes the connection once it has carried no request for
	// this long, and its keep-alives stop with it: an idle agent and its
	// aggregator then exchange no packets, instead of a keep-alive and its
	// acknowledgement every third of IdleTimeout. The next request dials
	// again (one handshake). A request in progress, however long, keeps
	// the connection. 0: the connection stays up until it breaks.
	CloseIdle time.Duration
}

// dialTimeout bounds one dial when IdleTimeout does not bound it sooner.
const dialTimeout = 10 * time.Second

// NewClient prepares a client for addr; it connects on first use.
func NewClient(addr string, tlsConf *tls.Config) *Client {
	return NewClientOptions(addr, tlsConf, ClientOptions{})
}

// NewClientOptions is NewClient with options.
func NewClientOptions(addr string, tlsConf *tls.Config, opts ClientOptions) *Client {
	tlsConf = tlsConf.Clone()
	tlsConf.NextProtos = []string{ALPN}
	return &Client{addr: addr, tls: tlsConf, opts: opts}
}

// Addr is the aggregator address this client talks to.
func (c *Client) Addr() string { return c.addr }

// Connected reports whether the client holds a connection that is up.
func (c *Client) Connected() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.conn != nil && c.conn.Context().Err() == nil
}

// Connect makes sure a connection is up, dialing (or joining the dial in
// progress) when none is.
func (c *Client) Connect(ctx context.Context) error {
	_, err := c.connection(ctx)
	return err
}

func (c *Client) connection(ctx context.Context) (*quic.Conn, error) {
	c.mu.Lock()
	if c.conn != nil && c.conn.Context().Err() == nil {
		conn := c.conn
		c.mu.Unlock()
		return conn, nil
	}
	call := c.dialing
	if call == nil {
		call = &dialCall{done: make(chan struct{})}
		c.dialing = call
		// The dial is not tied to the context of the request that started
		// it: others wait for it too.
		go c.dial(call)
	}
	c.mu.Unlock()
	select {
	case <-call.done:
		return call.conn, call.err
	case <-ctx.Done():
		return nil, fmt.Errorf("protocol: dial %s: %w", c.addr, ctx.Err())
	}
}

// dial connects for call and publishes the outcome. A Close during the
// dial wins: the new connection is closed and the waiters get an error.
func (c *Client) dial(call *dialCall) {
	conf := quicConfig()
	timeout := dialTimeout
	if t := c.opts.IdleTimeout; t > 0 {
		conf.MaxIdleTimeout, conf.KeepAlivePeriod = t, t/3
		conf.HandshakeIdleTimeout = min(conf.HandshakeIdleTimeout, t)
		timeout = min(timeout, 2*t)
	}
	dctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	conn, err := quic.DialAddr(dctx, c.addr, c.tls, conf)
	if err != nil {
		err = fmt.Errorf("protocol: dial %s: %w", c.addr, err)
	}
	c.mu.Lock()
	if c.dialing == call {
		c.dialing = nil
		if err == nil {
			c.conn = conn
			c.armIdleLocked() // a connection dialed ahead of its first request (Connect)
		}
	} else if err == nil {
		_ = conn.CloseWithError(0, "closing")
		conn, err = nil, fmt.Errorf("protocol: dial %s: client closed while dialing", c.addr)
	}
	c.mu.Unlock()
	call.conn, call.err = conn, err
	close(call.done)
}

// roundTrip sends one request frame on a new stream and reads the answer.
func (c *Client) roundTrip(ctx context.Context, t FrameType, payload []byte) (FrameType, []byte, error) {
	c.begin()
	defer c.end()
	conn, err := c.connection(ctx)
	if err != nil {
		return 0, nil, err
	}
	str, err := conn.OpenStreamSync(ctx)
	if err != nil {
		c.reset(conn)
		return 0, nil, fmt.Errorf("protocol: open stream to %s: %w", c.addr, err)
	}
	deadline := time.Now().Add(StreamTimeout)
	if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
		deadline = d
	}
	_ = str.SetDeadline(deadline)
	if err := WriteFrame(str, t, payload); err != nil {
		str.CancelRead(0)
		return 0, nil, fmt.Errorf("protocol: send to %s: %w", c.addr, err)
	}
	if err := str.Close(); err != nil {
		return 0, nil, fmt.Errorf("protocol: close send side to %s: %w", c.addr, err)
	}
	rt, resp, err := ReadFrame(str, MaxFrameSize)
	if err != nil {
		return 0, nil, fmt.Errorf("protocol: answer from %s: %w", c.addr, err)
	}
	// The answer is whole; reading the aggregator's end of the stream
	// only lets the connection forget the stream.
	if readEnd(str) != nil {
		str.CancelRead(0)
	}
	return rt, resp, nil
}

// endStream closes the server's side of a stream whose answer is written
// and reads the agent's side to its end (bounded by the stream's
// deadline), or stops reading it when more than the request came.
func endStream(str *quic.Stream) {
	_ = str.Close()
	if readEnd(str) != nil {
		str.CancelRead(1)
	}
}

// readEnd reads the end of a stream whose one frame was read: nothing
// more may come. quic-go counts a stream done, and gives the peer the
// credit to open a stream in its place, only once the reader has read
// its end (or cancelled reading), and the end often comes in a packet of
// its own after the frame: a side that stops reading at the frame's last
// byte keeps such streams open until the connection closes, and the peer
// that opens them waits for credit once MaxIncomingStreams are held so.
func readEnd(str *quic.Stream) error {
	var b [1]byte
	for {
		n, err := str.Read(b[:])
		switch {
		case n > 0:
			return errors.New("protocol: more than one frame on a stream")
		case errors.Is(err, io.EOF):
			return nil
		case err != nil:
			return err
		}
	}
}

// SendBatch ships one compressed batch and returns the aggregator's Ack.
// An error means the outcome is unknown: the batch must be sent again.
func (c *Client) SendBatch(ctx context.Context, wire []byte) (Ack, error) {
	rt, resp, err := c.roundTrip(ctx, FrameBatch, wire)
	if err != nil {
		return Ack{}, err
	}
	if rt != FrameAck {
		return Ack{}, fmt.Errorf("protocol: %s answered a batch with a %s frame", c.addr, rt)
	}
	var ack Ack
	if err := DecodeMsg(resp, &ack); err != nil {
		return Ack{}, err
	}
	return ack, nil
}

// FetchConfig asks the aggregator for the agent's sites and salts.
func (c *Client) FetchConfig(ctx context.Context, req ConfigRequest) (*Config, error) {
	req.Version = Version
	b, err := EncodeMsg(&req)
	if err != nil {
		return nil, err
	}
	rt, resp, err := c.roundTrip(ctx, FrameConfigRequest, b)
	if err != nil {
		return nil, err
	}
	if rt == FrameAck {
		var ack Ack
		if err := DecodeMsg(resp, &ack); err != nil {
			return nil, err
		}
		return nil, fmt.Errorf("protocol: %s refused config request: %s: %s", c.addr, ack.Status, ack.Reason)
	}
	var cfg Config
	if err := DecodeMsg(resp, &cfg); err != nil {
		return nil, err
	}
	return &cfg, nil
}

// begin counts a request in progress: the connection is not closed as idle
// until it ends.
func (c *Client) begin() {
	c.mu.Lock()
	c.active++
	if c.idle != nil {
		c.idle.Stop()
	}
	c.mu.Unlock()
}

// end counts a request done; the last one arms the idle close.
func (c *Client) end() {
	c.mu.Lock()
	c.active--
	c.armIdleLocked()
	c.mu.Unlock()
}

// armIdleLocked starts the wait after which an unused connection is
// closed (see ClientOptions.CloseIdle). c.mu is held.
func (c *Client) armIdleLocked() {
	if c.opts.CloseIdle <= 0 || c.active > 0 || c.conn == nil {
		return
	}
	if c.idle == nil {
		c.idle = time.AfterFunc(c.opts.CloseIdle, c.closeIdle)
		return
	}
	c.idle.Reset(c.opts.CloseIdle)
}

// Touch counts as a use of the connection without a request: its idle
// close (ClientOptions.CloseIdle) waits from now. An agent keeps its
// standby connection this way while it ships through another node.
func (c *Client) Touch() {
	c.mu.Lock()
	c.armIdleLocked()
	c.mu.Unlock()
}

// closeIdle closes the connection when no request has begun since the
// wait was armed.
func (c *Client) closeIdle() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.active > 0 || c.conn == nil {
		return
	}
	_ = c.conn.CloseWithError(0, "idle")
	c.conn = nil
}

func (c *Client) reset(conn *quic.Conn) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.conn == conn {
		_ = conn.CloseWithError(0, "reset")
		c.conn = nil
	}
}

// Close closes the connection, if any, and abandons a dial in progress;
// the next request dials afresh.
func (c *Client) Close() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.dialing = nil
	if c.idle != nil {
		c.idle.Stop()
	}
	if c.conn != nil {
		err := c.conn.CloseWithError(0, "closing")
		c.conn = nil
		return err
	}
	return nil
}
