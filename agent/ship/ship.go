package ship

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"time"

	"github.com/avila-analytics/avila/agent/queue"
	"github.com/avila-analytics/avila/internal/logthrottle"
	"github.com/avila-analytics/avila/protocol"
)

// Defaults for zero Options fields.
const (
	DefaultSegmentEvents = 5000
	DefaultSealInterval  = 200 * time.Millisecond
	DefaultInFlight      = 4
	DefaultConfigRefresh = 30 * time.Second
	// DefaultSendTimeout outlasts the aggregator's own bound on storing a
	// batch (half of protocol.StreamTimeout), after which it answers Retry.
	DefaultSendTimeout = protocol.StreamTimeout * 3 / 4
	// DefaultPeerTimeout is how long an aggregator may stay silent (no
	// packet, not even an answer to the keep-alives sent every third of
	// it) before the agent counts it dead and fails over; a dial that gets
	// no answer for as long fails too. A live aggregator answers within
	// milliseconds on a LAN however busy it is, so this bounds how long
	// deliveries stall when a node is killed or frozen. Raise it for
	// aggregators across a lossy WAN.
	DefaultPeerTimeout = time.Second
)

// configMetaKey names the cached config in the queue's meta store.
const configMetaKey = "config"

// Options configures a Shipper.
type Options struct {
	// Aggregators are seed QUIC addresses (host:port). The agent picks
	// among them by rendezvous hash of its id until an aggregator tells it
	// the live cluster members, then among those.
	Aggregators   []string
	TLS           *tls.Config   // from protocol.ClientTLS
	SegmentEvents int           // max events per segment, DefaultSegmentEvents when 0
	SealInterval  time.Duration // seal pending events at least this often, DefaultSealInterval when 0
	InFlight      int           // segments in flight at once, DefaultInFlight when 0
	ConfigRefresh time.Duration // how often to fetch site config, DefaultConfigRefresh when 0
	SendTimeout   time.Duration // wait for one batch's ack, DefaultSendTimeout when 0
	PeerTimeout   time.Duration // silence after which an aggregator counts as dead, DefaultPeerTimeout when 0
	Logger        *slog.Logger
}

// Stats is a snapshot of shipping for metrics and logs.
type Stats struct {
	Sent          uint64 // send attempts, resends included
	AckedOK       uint64
	AckedRetry    uint64
	AckedReject   uint64
	Errors        uint64 // attempts that got no answer (network, timeout)
	Retries       uint64 // attempts followed by a resend of the same segment
	LastError     string
	LastErrorTime time.Time
	LastAck       time.Time // last AckOK
	Aggregator    string    // address in use (last picked)
	ConfigFetched time.Time // last successful config fetch
}

// Shipper ships one queue's segments. Run it once.
type Shipper struct {
	opts     Options
	q        *queue.Queue
	onConfig func(*protocol.Config)
	log      *slog.Logger
	route    *router
	sealed   chan struct{}        // sealer → sender: new segments exist
	refresh  chan struct{}        // RefreshConfig → config loop: fetch now
	retryLog logthrottle.Throttle // send and seal failures: logged at most once per interval
	cfgLog   logthrottle.Throttle // config fetch failures, throttled on their own

	mu    sync.Mutex
	stats Stats
}

// New prepares a Shipper for q. onConfig, if not nil, is called with every
// config fetched from an aggregator (not with the cached one).
func New(opts Options, q *queue.Queue, onConfig func(*protocol.Config)) (*Shipper, error) {
	switch {
	case len(opts.Aggregators) == 0:
		return nil, errors.New("ship: no aggregator address (set --aggregator)")
	case opts.TLS == nil:
		return nil, errors.New("ship: no TLS config")
	case q == nil:
		return nil, errors.New("ship: no queue")
	case opts.SegmentEvents < 0 || opts.SegmentEvents > protocol.MaxBatchEvents:
		return nil, fmt.Errorf("ship: segment events %d must be in 1..%d", opts.SegmentEvents, protocol.MaxBatchEvents)
	case opts.InFlight < 0 || opts.SealInterval < 0 || opts.ConfigRefresh < 0 || opts.SendTimeout < 0 || opts.PeerTimeout < 0:
		return nil, errors.New("ship: in-flight, seal interval, config refresh, send and peer timeouts must not be negative")
	}
	if opts.SegmentEvents == 0 {
		opts.SegmentEvents = DefaultSegmentEvents
	}
	if opts.SealInterval == 0 {
		opts.SealInterval = DefaultSealInterval
	}
	if opts.InFlight == 0 {
		opts.InFlight = DefaultInFlight
	}
	if opts.ConfigRefresh == 0 {
		opts.ConfigRefresh = DefaultConfigRefresh
	}
	if opts.SendTimeout == 0 {
		opts.SendTimeout = DefaultSendTimeout
	}
	if opts.PeerTimeout == 0 {
		opts.PeerTimeout = DefaultPeerTimeout
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	s := &Shipper{
		opts: opts, q: q, onConfig: onConfig, log: opts.Logger,
		sealed:   make(chan struct{}, 1),
		refresh:  make(chan struct{}, 1),
		retryLog: logthrottle.Throttle{Every: 10 * time.Second},
		cfgLog:   logthrottle.Throttle{Every: time.Minute},
	}
	s.route = newRouter(q.AgentID(), opts.Aggregators, opts.TLS, opts.PeerTimeout, opts.Logger)
	// The members known at the last config fetch are a better start than
	// the seeds alone, which may be the nodes that are down.
	if cached, err := LoadCachedConfig(q); err == nil && cached != nil {
		s.route.learn(cached.Members)
	}
	return s, nil
}

// Run seals, ships and refreshes config until ctx is done, then waits for
// its goroutines and closes its connections. Segments in flight at that
// moment stay in the queue and are sent again by the next Run.
func (s *Shipper) Run(ctx context.Context) error {
	var wg sync.WaitGroup
	wg.Go(func() { s.sealLoop(ctx) })
	wg.Go(func() { s.sendLoop(ctx) })
	wg.Go(func() { s.configLoop(ctx) })
	wg.Wait()
	s.route.close()
	return nil
}

// Stats returns current figures.
func (s *Shipper) Stats() Stats {
	s.mu.Lock()
	st := s.stats
	s.mu.Unlock()
	st.Aggregator = s.route.currentAddr()
	return st
}

// LoadCachedConfig returns the config last fetched by a Shipper on q, or nil
// when there is none yet.
func LoadCachedConfig(q *queue.Queue) (*protocol.Config, error) {
	b, err := q.GetMeta(configMetaKey)
	if err != nil || b == nil {
		return nil, err
	}
	var cfg protocol.Config
	if err := protocol.DecodeMsg(b, &cfg); err != nil {
		return nil, fmt.Errorf("ship: cached config: %w", err)
	}
	return &cfg, nil
}

// failover passes c's aggregator over after a failure, and closes c's
// connection so the next attempt there dials afresh: a peer that stopped
// serving streams without closing the connection (or a restarted one that no
// longer knows it) would otherwise hold every later attempt until the
// connection's idle timeout. Other streams on it fail and are resent;
// resending is safe.
func (s *Shipper) failover(c *protocol.Client) {
	_ = c.Close()
	s.route.failed(c.Addr())
}

func (s *Shipper) noteError(err error) {
	s.mu.Lock()
	s.stats.LastError = err.Error()
	s.stats.LastErrorTime = time.Now()
	s.mu.Unlock()
}
