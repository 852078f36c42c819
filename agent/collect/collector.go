package collect

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/netip"
	"sync"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/avila-analytics/avila/agent/privacy"
	"github.com/avila-analytics/avila/agent/tracker"
	"github.com/avila-analytics/avila/internal/logthrottle"
	"github.com/avila-analytics/avila/protocol"
)

// DefaultMaxBodyBytes is GA4's limit on a collect request body.
const DefaultMaxBodyBytes = 16 << 10

// Appender stores encoded events durably: *queue.Queue. Append returns nil
// only once every event of the call is on disk. It must not keep events or
// their bytes after it returns: the collector reuses them for later
// requests.
type Appender interface {
	Append(ctx context.Context, events [][]byte) error
}

// Enricher adds geo, browser, OS and device to an event from the client IP
// and user agent, which it uses in memory only: *enrich.Enricher. bot is
// true for crawlers and headless browsers; their hits are answered like any
// other but not stored, so they never count as visitors. What it sets
// depends on the address and user agent alone: it is asked once per
// request, and the request's other events get the same.
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
	// Count, if set, is told how many events of a request ended with which
	// outcome (one of the Outcome constants); site is the site id, 0 when
	// unknown. It must be quick: it runs on every request.
	Count func(site uint32, outcome string, events int)
	// Enricher fills the event's geo and user agent fields; none when nil.
	Enricher Enricher
	// Now is the agent clock stamped on events; time.Now when nil.
	Now func() time.Time
	// MaxBodyBytes bounds a request body; DefaultMaxBodyBytes when 0.
	MaxBodyBytes int64
	// MaxMPBodyBytes bounds a Measurement Protocol body;
	// DefaultMaxMPBodyBytes when 0.
	MaxMPBodyBytes int64
	// MPStrict refuses a Measurement Protocol request that breaks any rule
	// with a 4xx naming every rule, storing none of it. Off (the default),
	// /mp/collect answers like GA4's: 204, the valid events stored, the
	// others dropped and counted with CountMPRejected.
	MPStrict bool
	// CountMPRejected, if set, is told how many events /mp/collect dropped
	// for a reason (one of MPRejectReasons). It must be quick.
	CountMPRejected func(reason string, events int)
	// CountRepaired, if set, is told the code of a protocol/rules rule
	// whose repair a stored event needed, once per event and rule. It must
	// be quick.
	CountRepaired func(rule string)
	// TrustedProxies are the peers whose Forwarded / X-Forwarded-For
	// headers name the client; nobody's when empty.
	TrustedProxies []netip.Prefix
	// RatePerIP and RatePerSite limit requests per client address and
	// per site (a request naming several sites takes a token of each);
	// the zero Rate is no limit.
	RatePerIP, RatePerSite Rate
	// DoNotTrack says what a browser hit with DNT: 1 or Sec-GPC: 1 becomes
	// on a site whose config sets no policy of its own (protocol.Site.DNT).
	DoNotTrack DNTPolicy
	Logger     *slog.Logger
}

// DNTPolicy is what happens to a browser hit that carries DNT: 1 or
// Sec-GPC: 1.
type DNTPolicy int

const (
	// DNTDrop records nothing and answers 204, as GA4 does; counted.
	DNTDrop DNTPolicy = iota
	// DNTCookieless records the hit as if analytics storage were denied:
	// cid and uid are ignored.
	DNTCookieless
	// DNTIgnore records the hit as if the header were absent.
	DNTIgnore
)

// ParseDNTPolicy reads "drop", "cookieless" or "ignore".
func ParseDNTPolicy(s string) (DNTPolicy, error) {
	switch s {
	case "drop", "":
		return DNTDrop, nil
	case "cookieless":
		return DNTCookieless, nil
	case "ignore":
		return DNTIgnore, nil
	}
	return 0, fmt.Errorf("collect: do-not-track policy %q: want drop, cookieless or ignore", s)
}

// Outcomes of the edge's policies, beside the ones in outcome.go.
const (
	OutcomeDoNotTrack  = "do_not_track" // DNT: 1 or Sec-GPC: 1 under DNTDrop: answered 204, not stored
	OutcomeRateLimited = "rate_limited" // refused with 429 by the per-client or per-site limit
)

// Collector serves the collection endpoints. Safe for concurrent use.
type Collector struct {
	opts    Options
	log     *slog.Logger
	failLog logthrottle.Throttle // storage failures, logged at most once per interval
	// noSalt keys visitor ids of hits for a site with no salt for today
	// yet (see the privacy package); noSaltLog says so at most once a minute.
	noSalt    *privacy.ProcessKeys
	noSaltLog logthrottle.Throttle

	perIP   *limiter[netip.Addr]
	perSite *limiter[uint32]

	fast map[string]fasthttp.RequestHandler // FastHandler's, by path
	bufs sync.Pool                          // *requestBufs
}

// New checks opts and returns a Collector.
func New(opts Options) (*Collector, error) {
	switch {
	case opts.Sites == nil:
		return nil, errors.New("collect: no site config source")
	case opts.Queue == nil:
		return nil, errors.New("collect: no queue")
	case opts.MaxBodyBytes < 0, opts.MaxMPBodyBytes < 0:
		return nil, errors.New("collect: max body bytes must not be negative")
	case opts.RatePerIP.PerSecond < 0, opts.RatePerSite.PerSecond < 0, opts.RatePerIP.Burst < 0, opts.RatePerSite.Burst < 0:
		return nil, errors.New("collect: rate limits must not be negative")
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.MaxBodyBytes == 0 {
		opts.MaxBodyBytes = DefaultMaxBodyBytes
	}
	if opts.MaxMPBodyBytes == 0 {
		opts.MaxMPBodyBytes = DefaultMaxMPBodyBytes
	}
	if opts.OnUnknownSite == nil {
		opts.OnUnknownSite = func() {}
	}
	if opts.CountMPRejected == nil {
		opts.CountMPRejected = func(string, int) {}
	}
	if opts.CountRepaired == nil {
		opts.CountRepaired = func(string) {}
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	c := &Collector{
		opts: opts, log: opts.Logger, failLog: logthrottle.Throttle{Every: 10 * time.Second},
		noSalt: privacy.NewProcessKeys(), noSaltLog: logthrottle.Throttle{Every: time.Minute},
		perIP:   newLimiter[netip.Addr](opts.RatePerIP, opts.Now),
		perSite: newLimiter[uint32](opts.RatePerSite, opts.Now),
		fast:    map[string]fasthttp.RequestHandler{},
	}
	for path, serve := range c.endpoints() {
		c.fast[path] = func(ctx *fasthttp.RequestCtx) {
			// An answer names its type itself when it has a body, as with net/http.
			ctx.Response.Header.SetNoDefaultContentType(true)
			serve(fastExchange{ctx})
		}
	}
	return c, nil
}

// endpoints are the collection paths that carry hits, each with its
// handler: Register serves them through net/http, FastHandler natively.
func (c *Collector) endpoints() map[string]func(exchange) {
	return map[string]func(exchange){
		"/g/collect":        c.gtag,
		"/api/event":        c.event,
		"/mp/collect":       c.mp,
		"/debug/mp/collect": c.mpDebug,
	}
}

// Register adds the collection routes to mux: /g/collect (gtag.js),
// /mp/collect and /debug/mp/collect (Measurement Protocol), /api/event
// (t.js), and the script /t.js itself.
func (c *Collector) Register(mux *http.ServeMux) {
	mux.Handle(tracker.Path, tracker.Handler())
	for path, serve := range c.endpoints() {
		mux.HandleFunc(path, func(w http.ResponseWriter, r *http.Request) { serve(httpExchange{w, r}) })
	}
}

// FastHandler is the native fasthttp handler of the collection endpoint at
// path (/g/collect, /api/event, /mp/collect, /debug/mp/collect), answering
// as ServeGtag, ServeEvent, ServeMP and ServeMPDebug do; nil for any other
// path, which the agent's listener hands to its net/http routes (the
// script /t.js among them).
func (c *Collector) FastHandler(path []byte) fasthttp.RequestHandler {
	return c.fast[string(path)]
}

// MaxBodyBytes is the largest body any collection endpoint takes: a
// server in front of FastHandler may refuse longer ones before they reach it.
func (c *Collector) MaxBodyBytes() int64 {
	return max(c.opts.MaxBodyBytes, c.opts.MaxMPBodyBytes)
}
