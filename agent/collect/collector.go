package collect

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/netip"
	"time"

	"github.com/avila-analytics/avila/protocol"
)

// DefaultMaxBodyBytes is GA4's limit on a collect request body.
const DefaultMaxBodyBytes = 16 << 10

// Appender stores encoded events durably: *queue.Queue. Append returns nil
// only once every event of the call is on disk.
type Appender interface {
	Append(ctx context.Context, events [][]byte) error
}

// Enricher adds geo, browser, OS and device to an event from the client IP
// and user agent, which it uses in memory only: *enrich.Enricher. bot is
// true for crawlers and headless browsers; their hits are answered like any
// other but not stored, so they never count as visitors.
type Enricher interface {
	Enrich(e *protocol.Event, ip netip.Addr, ua string) (bot bool)
}

// Options configures a Collector.
type Options struct {
	// Sites returns the current site config; nil until the agent has one.
	Sites func() *Sites
	// Queue receives each request's events in one Append.
	Queue Appender
	// OnUnknownSite is called (and must not block) when a hit names a
	// measurement id or a day the current config does not cover, so the
	// config is fetched again soon; nil when not wanted.
	OnUnknownSite func()
	// Enricher fills the event's geo and user agent fields; none when nil.
	Enricher Enricher
	// Now is the agent clock stamped on events; time.Now when nil.
	Now func() time.Time
	// MaxBodyBytes bounds a request body; DefaultMaxBodyBytes when 0.
	MaxBodyBytes int64
	Logger       *slog.Logger
}

// Collector serves the collection endpoints. Safe for concurrent use.
type Collector struct {
	opts    Options
	log     *slog.Logger
	failLog throttle // storage failures, logged at most once per interval
}

// New checks opts and returns a Collector.
func New(opts Options) (*Collector, error) {
	switch {
	case opts.Sites == nil:
		return nil, errors.New("collect: no site config source")
	case opts.Queue == nil:
		return nil, errors.New("collect: no queue")
	case opts.MaxBodyBytes < 0:
		return nil, errors.New("collect: max body bytes must not be negative")
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.MaxBodyBytes == 0 {
		opts.MaxBodyBytes = DefaultMaxBodyBytes
	}
	if opts.OnUnknownSite == nil {
		opts.OnUnknownSite = func() {}
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	return &Collector{opts: opts, log: opts.Logger, failLog: throttle{every: 10 * time.Second}}, nil
}

// Register adds the collection routes to mux: /g/collect (gtag.js).
func (c *Collector) Register(mux *http.ServeMux) {
	mux.HandleFunc("/g/collect", c.ServeGtag)
}
