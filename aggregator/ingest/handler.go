package ingest

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"

	"github.com/avila-analytics/avila/internal/logthrottle"
	"github.com/avila-analytics/avila/protocol"
	"github.com/avila-analytics/avila/storage/postgres"
)

// Options configures a Handler. Zero values take the defaults.
type Options struct {
	Logger *slog.Logger
	Now    func() time.Time // clock; time.Now by default
	// MaxFuture is how far ahead of the aggregator's clock an event's time
	// may be (agent clocks drift); default 1h.
	MaxFuture time.Duration
	// WriteTimeout bounds validating and storing one batch, so a stalled
	// database yields a Retry before the agent's stream times out
	// (protocol.StreamTimeout); default 30s.
	WriteTimeout time.Duration
	// Stored, if set, is called after each batch answered OK (duplicates
	// included) with the agent's identity (AgentKey) and the events
	// stored; the node counts load and agents with it. It must be quick.
	Stored func(agent string, events int)
	// Committed, if set, is called after a batch's first commit (never for
	// a duplicate) with the events stored, so derived state (realtime
	// counters, cache versions) follows what the database holds. It runs
	// before the agent's ack, on the batch's context; it must be quick,
	// must not fail the batch (the events are already stored) and must
	// not keep events once it returns (their array decodes the next
	// batch).
	Committed func(ctx context.Context, events []protocol.Event)
	// Metrics counts batches and events (NewMetrics); nil: counted on
	// metrics registered nowhere.
	Metrics *Metrics
	// Tracer makes one span per batch, parent of its database spans; nil:
	// no spans.
	Tracer trace.Tracer
}

const (
	defaultMaxFuture    = time.Hour
	defaultWriteTimeout = protocol.StreamTimeout / 2
	// configTTL is how long an answered Config is reused.
	configTTL = 5 * time.Second
	// siteRefreshEvery bounds how often an unknown site id makes the site
	// list be read again, so a stream of bad ids cannot flood the database.
	siteRefreshEvery = 3 * time.Second
	// logEvery rate-limits repeated write-failure logs.
	logEvery = 10 * time.Second
)

// Handler implements protocol.Handler. Safe for concurrent use.
type Handler struct {
	opts  Options
	log   *slog.Logger
	store *postgres.Store
	write BatchWriter

	sitesMu     sync.Mutex
	sites       map[uint32]bool
	sitesLoaded time.Time
	sitesGen    uint64 // incremented at each load

	cfgMu sync.Mutex
	cfg   *protocol.Config
	cfgAt time.Time

	failLog logthrottle.Throttle

	// batches holds decoded batches for the next ones to decode into
	// (protocol.DecodeBatchInto): a batch's events are about 400 bytes
	// each, a fresh array of them per batch is memory the runtime must
	// clear, collect and fault in again, batch after batch. A batch
	// returns here once HandleBatch is done with it, so BatchWriter and
	// Options.Committed must not keep its events.
	batches sync.Pool
}

var _ protocol.Handler = (*Handler)(nil)

// BatchWriter stores a validated batch exactly once (aggregator/write). It
// must not keep events once it returns (their array decodes the next
// batch).
type BatchWriter interface {
	WriteBatch(ctx context.Context, agentID string, seq uint64, events []protocol.Event, dead []postgres.DeadLetter) (postgres.StageResult, error)
	// WriteWireBatch stores a batch whose every event is good, given
	// with wire, its form as received, which the writer may keep instead
	// of encoding events again.
	WriteWireBatch(ctx context.Context, agentID string, seq uint64, events []protocol.Event, wire []byte) (postgres.StageResult, error)
}

// New returns a handler that reads sites and salts from store and hands
// batches to w.
func New(opts Options, store *postgres.Store, w BatchWriter) *Handler {
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.MaxFuture <= 0 {
		opts.MaxFuture = defaultMaxFuture
	}
	if opts.WriteTimeout <= 0 {
		opts.WriteTimeout = defaultWriteTimeout
	}
	if opts.Metrics == nil {
		opts.Metrics, _ = NewMetrics(nil) // registers nothing, so cannot fail
	}
	if opts.Tracer == nil {
		opts.Tracer = noop.NewTracerProvider().Tracer("")
	}
	return &Handler{opts: opts, log: opts.Logger, store: store, write: w, failLog: logthrottle.Throttle{Every: logEvery},
		batches: sync.Pool{New: func() any { return new(protocol.Batch) }}}
}

// HandleBatch decodes, validates and stores one batch.
func (h *Handler) HandleBatch(ctx context.Context, wire []byte, peer protocol.Peer) protocol.Ack {
	start := time.Now()
	ctx, span := h.opts.Tracer.Start(ctx, "ingest.batch", trace.WithSpanKind(trace.SpanKindServer))
	defer span.End()
	b := h.batches.Get().(*protocol.Batch)
	defer h.batches.Put(b)
	ack, decoded := h.handleBatch(ctx, wire, peer, b)
	events := 0
	if decoded {
		events = len(b.Events)
		span.SetAttributes(attribute.String("avila.agent", AgentKey(b.AgentID, peer)),
			attribute.Int64("avila.seq", int64(b.Seq)), attribute.Int("avila.events", events))
	}
	span.SetAttributes(attribute.String("avila.ack", statusLabel(ack.Status)), attribute.Int("avila.stored", ack.Stored),
		attribute.Int("avila.dead_letters", ack.DeadLetters), attribute.Bool("avila.duplicate", ack.Duplicate))
	if ack.Status != protocol.AckOK {
		span.SetStatus(codes.Error, ack.Reason)
	}
	h.opts.Metrics.ack(ack, events)
	if decoded && h.log.Enabled(ctx, slog.LevelDebug) {
		// (agent, seq) identifies the batch across resends and nodes.
		h.log.LogAttrs(ctx, slog.LevelDebug, "batch",
			slog.String("agent", AgentKey(b.AgentID, peer)), slog.Uint64("seq", b.Seq),
			slog.Int("events", events), slog.String("status", statusLabel(ack.Status)),
			slog.Int("stored", ack.Stored), slog.Int("dead_letters", ack.DeadLetters),
			slog.Bool("duplicate", ack.Duplicate), slog.Duration("took", time.Since(start)))
	}
	return ack
}

// handleBatch is HandleBatch, decoding into b; decoded reports whether
// b holds the batch.
func (h *Handler) handleBatch(ctx context.Context, wire []byte, peer protocol.Peer, b *protocol.Batch) (ack protocol.Ack, decoded bool) {
	if err := protocol.DecodeBatchInto(b, wire); err != nil {
		h.log.Warn("batch rejected", "peer", peerAddr(peer), "err", err)
		return protocol.Ack{Status: protocol.AckReject, Reason: err.Error()}, false
	}
	ctx, cancel := context.WithTimeout(ctx, h.opts.WriteTimeout)
	defer cancel()
	good, dead, broken, err := h.validate(ctx, b.Events)
	if err != nil {
		return h.retry(b, err), true
	}
	agent := AgentKey(b.AgentID, peer)
	var res postgres.StageResult
	if len(dead) == 0 {
		res, err = h.write.WriteWireBatch(ctx, agent, b.Seq, good, wire)
	} else {
		res, err = h.write.WriteBatch(ctx, agent, b.Seq, good, dead)
	}
	if err != nil {
		return h.retry(b, err), true
	}
	if !res.Duplicate {
		for _, rule := range broken {
			h.opts.Metrics.deadLetter(rule)
		}
	}
	if h.opts.Stored != nil {
		h.opts.Stored(agent, res.Staged)
	}
	if h.opts.Committed != nil && !res.Duplicate && len(good) > 0 {
		h.opts.Committed(ctx, good)
	}
	return protocol.Ack{Status: protocol.AckOK, Stored: res.Staged, DeadLetters: res.DeadLetters, Duplicate: res.Duplicate}, true
}

// AgentKey is the identity a batch is stored under. With mTLS it is the
// agent certificate's CommonName followed by the agent's own queue id
// ("edge-1/k3x…"): the name comes from the certificate, so one agent cannot
// write under another's keys, and the queue id keeps (agent, seq) unique when
// a queue is recreated under the same certificate. Without a client
// certificate it is the agent's claimed id.
//
// Turning mTLS on or off changes the keys of batches resent afterwards, so
// let agents' queues drain before switching.
func AgentKey(claimed string, peer protocol.Peer) string {
	if peer.CommonName == "" {
		return claimed
	}
	return peer.CommonName + "/" + claimed
}

// retry answers a batch that could not be stored now. Errors that are not
// transient are logged as errors, yet still answered with Retry: the agent
// keeps the batch until the fault is fixed, so nothing is lost to a bug.
func (h *Handler) retry(b *protocol.Batch, err error) protocol.Ack {
	transient := postgres.IsTransient(err) || errors.Is(err, errSitesFresh)
	if n, ok := h.failLog.Allow(h.opts.Now()); ok {
		level := slog.LevelWarn
		if !transient {
			level = slog.LevelError
		}
		h.log.Log(context.Background(), level, "batch not stored, agent will retry",
			"agent", b.AgentID, "seq", b.Seq, "events", len(b.Events), "suppressed", n, "err", err)
	}
	reason := "storage unavailable: " + err.Error()
	if errors.Is(err, errSitesFresh) {
		reason = err.Error()
	} else if !transient {
		reason = "storage error: " + err.Error()
	}
	return protocol.Ack{Status: protocol.AckRetry, Reason: reason}
}

// HandleConfig returns the sites and salts agents need.
func (h *Handler) HandleConfig(ctx context.Context, req protocol.ConfigRequest, peer protocol.Peer) (*protocol.Config, error) {
	if req.Version != protocol.Version {
		return nil, fmt.Errorf("ingest: config request version %d, this build speaks %d", req.Version, protocol.Version)
	}
	now := h.opts.Now()
	h.cfgMu.Lock()
	defer h.cfgMu.Unlock()
	if h.cfg != nil && now.Sub(h.cfgAt) < configTTL && now.Sub(h.cfgAt) >= 0 {
		return h.cfg, nil
	}
	cfg, err := h.loadConfig(ctx, now)
	if err != nil {
		return nil, err
	}
	h.cfg, h.cfgAt = cfg, now
	return cfg, nil
}

func (h *Handler) loadConfig(ctx context.Context, now time.Time) (*protocol.Config, error) {
	sites, err := h.store.Sites(ctx)
	if err != nil {
		return nil, fmt.Errorf("ingest: config: %w", err)
	}
	salts, err := h.store.Salts(ctx, now)
	if err != nil {
		return nil, fmt.Errorf("ingest: config: %w", err)
	}
	cfg := &protocol.Config{Version: protocol.Version, Generated: now.UnixMicro(), Salts: salts,
		Sites: make([]protocol.Site, len(sites))}
	known := make(map[uint32]bool, len(sites))
	for i, s := range sites {
		cfg.Sites[i] = protocol.Site{ID: s.ID, MeasurementID: s.MeasurementID, APISecret: s.APISecret, TimeZone: s.TimeZone, Domains: s.Domains,
			DNT: s.Policy.DNT, KeepParams: s.Policy.KeepParams, Identity: s.Policy.Identity, IdentitySecret: s.IdentitySecret}
		known[s.ID] = true
	}
	h.setSites(known, now)
	return cfg, nil
}

// errSitesFresh: an event names a site missing from a site list read less
// than siteRefreshEvery ago. The site may have been created since, so the
// batch is retried rather than its events dead-lettered; once the list may be
// read again, a site still missing is a dead letter.
var errSitesFresh = errors.New("unknown site, site list is being refreshed")

// siteKnown reports whether a site exists, reading the site list again on a
// miss at most every siteRefreshEvery. A list loaded after generation since
// (while judging the current batch) is authoritative.
func (h *Handler) siteKnown(ctx context.Context, id uint32, since uint64) (bool, error) {
	h.sitesMu.Lock()
	ok, loaded, gen, have := h.sites[id], h.sitesLoaded, h.sitesGen, h.sites != nil
	h.sitesMu.Unlock()
	if ok || (have && gen > since) {
		return ok, nil
	}
	now := h.opts.Now()
	if have && now.Sub(loaded) < siteRefreshEvery && now.Sub(loaded) >= 0 {
		return false, fmt.Errorf("ingest: site %d: %w", id, errSitesFresh)
	}
	sites, err := h.store.Sites(ctx)
	if err != nil {
		return false, fmt.Errorf("ingest: load sites: %w", err)
	}
	known := make(map[uint32]bool, len(sites))
	for _, s := range sites {
		known[s.ID] = true
	}
	h.setSites(known, now)
	return known[id], nil
}

// sitesGeneration is the generation of the current site list.
func (h *Handler) sitesGeneration() uint64 {
	h.sitesMu.Lock()
	defer h.sitesMu.Unlock()
	return h.sitesGen
}

func (h *Handler) setSites(known map[uint32]bool, at time.Time) {
	h.sitesMu.Lock()
	h.sites, h.sitesLoaded = known, at
	h.sitesGen++
	h.sitesMu.Unlock()
}

func peerAddr(p protocol.Peer) string {
	if p.Addr == nil {
		return ""
	}
	return p.Addr.String()
}
