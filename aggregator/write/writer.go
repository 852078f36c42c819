package write

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/avila-analytics/avila/internal/logthrottle"
	"github.com/avila-analytics/avila/protocol"
	"github.com/avila-analytics/avila/storage/postgres"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"
)

// Defaults of Config.
const (
	defaultEvery     = 250 * time.Millisecond
	defaultIdleEvery = 4 * time.Second
	DefaultMaxEvents = 50_000
	DefaultMaxChunks = 4
	DefaultDeriveFor = 2 * time.Second
	DefaultInterval  = time.Second
	// DefaultUnreadFor is Config.UnreadFor's default: longer than a
	// newer node's restart in a rolling upgrade takes.
	DefaultUnreadFor = 5 * time.Minute
	// maxStagedRows bounds the staged rows (batch shares) one derivation
	// takes, whatever their size.
	maxStagedRows = 1000
	logEvery      = 10 * time.Second
)

// Config configures a Writer.
type Config struct {
	Logger *slog.Logger
	// Every is how often Run looks for events staged by other nodes
	// (default 250 ms); batches staged by this Writer wake it at once.
	// While its looks find nothing, Run waits twice as long each time, up
	// to IdleEvery.
	Every time.Duration
	// IdleEvery bounds the wait between Run's looks while nothing is
	// staged (default 4 s; at least Every): an idle node sleeps instead
	// of asking PostgreSQL four times a second.
	IdleEvery time.Duration
	// MaxEvents bounds the events of one chunk of a derivation
	// transaction (default 50 000; MaxChunks bounds the chunks), staged
	// and a quarter more added by the derivation: a site whose chunks add
	// more takes fewer staged events a chunk (chunkEvents). The
	// rollup rows a derivation writes grow with its distinct cells, not
	// its events, so larger derivations write fewer rows per event; its
	// memory grows with a chunk's events (docs/architecture.md, "The
	// write stage: why two steps").
	MaxEvents int
	// MaxAdded bounds the events a derivation adds itself (session_start,
	// first_visit), which it holds for Added until it commits (default
	// MaxEvents/2): a chunk expected to pass it is the derivation's last.
	// New visitors' hits add two events each, so without it a derivation
	// of such traffic held twice its staged events again.
	MaxAdded int
	// MaxChunks bounds the chunks of at most MaxEvents events one
	// derivation transaction takes one after the other (default 4): its
	// rollup rows are written once for all of them, while its memory
	// holds one chunk's events at a time (deriveSite). 1: one chunk.
	MaxChunks int
	// DeriveFor bounds the time a derivation takes further chunks
	// (default 2 s): reports see none of its events before it commits,
	// so it bounds their lag under a backlog.
	DeriveFor time.Duration
	// Interval is the least time between the starts of two of Run's
	// passes while they find events (default 1 s), unless a derivation
	// stopped at its bounds with events still staged (a backlog): a
	// derivation's cost has a part that grows with the rollup cells,
	// sessions and users it touches, not its events, which passes run
	// back to back paid for every few thousand events. Reports lag
	// staging by up to about this plus two derivations. The wait ends
	// early once a site this node derives holds as many staged events as
	// one derivation takes (MaxEvents × MaxChunks), staged by any node:
	// waiting on would only grow a backlog (a burst). Run looks every
	// Every while it waits.
	Interval time.Duration
	// Derived, when set, runs after a derivation of site committed, with
	// the events it made visible (e.g. to invalidate cached reports): of
	// a derivation of several chunks, those of its last chunk only (all
	// are of the site), as the others' were released. The events are
	// lent for the call: the next derivation reuses their array.
	Derived func(ctx context.Context, site uint32, events []protocol.Event)
	// Added, when set, runs after a derivation of site committed, with
	// only the events the derivation added itself (session_start,
	// first_visit; derived_events.go), once per commit: the staged events
	// were announced when their batch was staged, so a consumer of both
	// (realtime) counts every stored event once. A derivation whose node
	// dies between its commit and this call never announces them.
	Added func(ctx context.Context, site uint32, events []protocol.Event)
	// Tracer makes a span ("write.derive") per derivation; nil: none.
	Tracer trace.Tracer
	// Metrics count derivations (NewMetrics); nil: unregistered ones.
	Metrics *Metrics
	// Readers, when set, reports whether a node of the cluster other than
	// this one, alive, reads staged rows of protocol version v
	// (cluster.Cluster.Reads): a row of a newer version than this node's
	// is left to such nodes. Nil: no other node does (the node runs
	// alone).
	Readers func(v uint8) bool
	// UnreadFor is how long a staged row of a newer protocol version than
	// this node's that no node of the cluster reads (Readers) holds up its
	// site before it is quarantined (default DefaultUnreadFor): after a
	// downgrade, or in a cluster whose newer nodes all stopped, the site's
	// reports would otherwise stop there for good. A node that reads the
	// version requeues it when it runs.
	UnreadFor time.Duration
	// NoDerivedEvents leaves out the session_start and first_visit events
	// a derivation adds (derived_events.go): for loading events that hold
	// GA4's automatically collected events already, as a GA4 export does,
	// and for tests of the report stages over exactly the events they
	// generated. Sessions, new users and rollups are derived as usual.
	NoDerivedEvents bool
}

// Writer is the write stage. Safe for concurrent use.
type Writer struct {
	cfg   Config
	log   *slog.Logger
	store *postgres.Store
	wake  chan struct{}

	// deriving makes this Writer's derivation passes (Run's and Flush's)
	// take turns, so Flush returns only after a pass in progress, its
	// Derived hooks included, has ended.
	deriving sync.Mutex

	mu    sync.Mutex
	sites map[uint32]*siteSessions // sessions of the sites this node derived last
	// uses counts the derivations begun, to order sites by their last;
	// memoryMax bounds the visitors the sites' memories hold together
	// (memoryMax, boundMemory). Both guarded by mu.
	uses      int64
	memoryMax int

	failLog logthrottle.Throttle

	looks atomic.Int64 // passes that listed the staged sites

	// backlog is what the last pass's look at the staged rows found
	// (guarded by mu).
	backlog Backlog

	// busy holds the sites this node leaves to another node, each until
	// when: stickFor after its last derivation attempt found the lock
	// held, or as StagedSites said another node derives it (guarded by
	// mu, which staging reads it under too: deriving is held through a
	// whole pass).
	busy map[uint32]time.Time

	// woken holds the sites staged since Run last took them (guarded by
	// mu): a wake for sites all left to another node runs no pass.
	woken map[uint32]struct{}

	// decoded holds the events of the wire batches this Writer staged,
	// for the derivations that take them (decoded.go): at most
	// Config.MaxEvents events, about 20 MB at the default. A derivation
	// a second (Config.Interval) of a site staging more than that a
	// second takes the batches held and decodes the rest from their rows
	// (analytics_write_kept_events_total against
	// analytics_write_derived_events_total tells the share); more room
	// would cost the aggregator memory it does not have under load.
	decoded *decodedBatches

	// fullAt is a whole derivation's events (Config.MaxEvents ×
	// Config.MaxChunks): staged for a site this node derives, they end
	// Run's wait for Config.Interval (waitInterval).
	fullAt int64

	// cutShort is set by a derivation that stopped at its bounds
	// (chunks, time, events added) after a full chunk, so events may
	// still be staged: Run's next pass then does not wait for
	// Config.Interval. Guarded by deriving.
	cutShort bool

	// scratch holds the arrays of the last chunk derived, for the next
	// to reuse (derive_scratch.go); only the holder of deriving uses it.
	scratch deriveScratch

	// isolate holds the sites whose next derivations take one staged
	// row each, with how many more (quarantine.go). Guarded by deriving.
	isolate map[uint32]int
	// unread holds the sites whose derivation met a staged row of a newer
	// protocol version that no node of the cluster reads, with the row
	// and when (onNewerVersion); requeued is when this node last requeued
	// rows of its version quarantined as newer by older nodes
	// (requeueReadable). Guarded by deriving.
	unread   map[uint32]unreadRow
	requeued time.Time
}

// stickFor is how long a pass leaves a site to another node after that
// node began a derivation of it (derive_state, by the database's clock;
// past Config.Interval, the time between the starts of that node's
// derivations under steady traffic, which a stay of stickFor alone would
// equal, so a look could find the lock free between two of them)
// or after finding the site's lock held, whether the pass was woken by
// this node's own staging or is a timed look. The node deriving a site
// looks again as soon as it derived events and so takes the batches
// other nodes stage meanwhile; a node taking the lock between two of its
// derivations (free during its settleFor wait) would only make
// derivations alternate between nodes, each then reading the site's
// sessions from the database instead of its memory; found only by a
// collision on the lock, the stay began late or never while derivations
// were short, and after each stickFor a look could land in that wait. A
// site whose deriving node stopped is taken by the next timed look
// (every Config.Every while deferring) after Config.Interval and
// stickFor, so it waits at most those and Config.Every (2.25 s by
// default).
const stickFor = time.Second

// New returns a write stage storing into store.
func New(cfg Config, store *postgres.Store) *Writer {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Every <= 0 {
		cfg.Every = defaultEvery
	}
	if cfg.IdleEvery <= 0 {
		cfg.IdleEvery = defaultIdleEvery
	}
	cfg.IdleEvery = max(cfg.IdleEvery, cfg.Every)
	if cfg.MaxEvents <= 0 {
		cfg.MaxEvents = DefaultMaxEvents
	}
	if cfg.MaxAdded <= 0 {
		cfg.MaxAdded = max(cfg.MaxEvents/2, 1)
	}
	if cfg.MaxChunks <= 0 {
		cfg.MaxChunks = DefaultMaxChunks
	}
	if cfg.DeriveFor <= 0 {
		cfg.DeriveFor = DefaultDeriveFor
	}
	if cfg.Interval <= 0 {
		cfg.Interval = DefaultInterval
	}
	if cfg.UnreadFor <= 0 {
		cfg.UnreadFor = DefaultUnreadFor
	}
	if cfg.Tracer == nil {
		cfg.Tracer = noop.NewTracerProvider().Tracer("")
	}
	if cfg.Metrics == nil {
		cfg.Metrics, _ = NewMetrics(nil) // registers nothing, so cannot fail
	}
	w := &Writer{cfg: cfg, log: cfg.Logger, store: store, wake: make(chan struct{}, 1),
		sites: make(map[uint32]*siteSessions), memoryMax: memoryMax, failLog: logthrottle.Throttle{Every: logEvery},
		busy: make(map[uint32]time.Time), woken: make(map[uint32]struct{}), isolate: make(map[uint32]int), unread: make(map[uint32]unreadRow),
		decoded: newDecodedBatches(cfg.MaxEvents),
		fullAt:  int64(cfg.MaxEvents) * int64(cfg.MaxChunks)}
	// A chunk takes up to MaxEvents events and its last row's past them,
	// with room for a quarter more derived; an array grown past twice
	// that (a row of a huge batch) is not kept. Small arrays always are.
	w.scratch.max = max(2*cfg.MaxEvents, 4096)
	return w
}

// WriteBatch stages one validated batch exactly once (postgres.StageBatch):
// its events become visible to reports once a derivation took them.
func (w *Writer) WriteBatch(ctx context.Context, agentID string, seq uint64, events []protocol.Event, dead []postgres.DeadLetter) (postgres.StageResult, error) {
	return w.stageBatch(ctx, agentID, seq, stage(events), dead, nil)
}

// WriteWireBatch is WriteBatch for a batch without dead letters whose
// wire form (protocol.DecodeBatch of wire gives events) is at hand: when
// its events are all of one site, wire itself is the staged row's payload,
// which spares encoding and compressing them again, and this Writer keeps
// a copy of events for the derivation that takes the row, which spares
// decoding it again (decodedBatches). Neither events nor wire is kept
// past the call.
func (w *Writer) WriteWireBatch(ctx context.Context, agentID string, seq uint64, events []protocol.Event, wire []byte) (postgres.StageResult, error) {
	if len(events) == 0 || slices.ContainsFunc(events, func(e protocol.Event) bool { return e.Site != events[0].Site }) {
		return w.WriteBatch(ctx, agentID, seq, events, nil)
	}
	return w.stageBatch(ctx, agentID, seq, []postgres.Staged{{Site: events[0].Site, Events: len(events), Payload: wire}}, nil, events)
}

// stageBatch stages a batch; decoded, when not nil, are the events of
// staged's one row, kept for its derivation once the stage committed.
func (w *Writer) stageBatch(ctx context.Context, agentID string, seq uint64, staged []postgres.Staged, dead []postgres.DeadLetter, decoded []protocol.Event) (postgres.StageResult, error) {
	res, err := w.store.StageBatch(ctx, agentID, seq, staged, dead)
	if err != nil {
		return res, fmt.Errorf("write: %w", err)
	}
	if res.Staged > 0 {
		if decoded != nil && !w.derivedElsewhere(staged[0].Site) {
			// Before the wake, so the derivation it starts finds them.
			w.decoded.keep(staged[0].Payload, decoded, time.Now())
		}
		w.mu.Lock()
		for _, st := range staged {
			w.woken[st.Site] = struct{}{}
		}
		w.mu.Unlock()
		select {
		case w.wake <- struct{}{}:
		default:
		}
	}
	return res, nil
}

// leftElsewhere reports whether every site staged since the last call
// is one this node leaves to another node for now (stickFor): a pass
// would only list the staged sites and defer them. The timed looks go
// on, so a site whose deriving node stopped is taken over as before.
func (w *Writer) leftElsewhere() bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	all := len(w.woken) > 0
	for s := range w.woken {
		all = all && w.leftLocked(s)
	}
	clear(w.woken)
	return all
}

// derivedElsewhere reports whether this node leaves site to another node
// for now (stickFor): passes defer it, and staging keeps none of its
// batches decoded, which that node's derivation takes.
func (w *Writer) derivedElsewhere(site uint32) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.leftLocked(site)
}

// leftLocked is derivedElsewhere with mu held.
func (w *Writer) leftLocked(site uint32) bool {
	until, ok := w.busy[site]
	return ok && time.Now().Before(until)
}

// leaveFor leaves site to another node for d from now, unless it is
// left longer already.
func (w *Writer) leaveFor(site uint32, d time.Duration) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if until := time.Now().Add(d); until.After(w.busy[site]) {
		w.busy[site] = until
	}
}

// setBusy records whether this node's derivation attempt at site just
// found another node deriving it: then it leaves the site for stickFor.
func (w *Writer) setBusy(site uint32, busy bool) {
	if busy {
		w.leaveFor(site, stickFor)
		return
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	delete(w.busy, site)
}

// stage splits events by site, in order, and encodes each site's share
// as a wire batch (protocol.AppendEvent, as the agent does).
func stage(events []protocol.Event) []postgres.Staged {
	if len(events) > 0 && !slices.ContainsFunc(events, func(e protocol.Event) bool { return e.Site != events[0].Site }) {
		return []postgres.Staged{encodeStaged(events[0].Site, events)} // the common case: one site
	}
	var sites []uint32
	by := make(map[uint32][]protocol.Event)
	for i := range events {
		s := events[i].Site
		if _, ok := by[s]; !ok {
			sites = append(sites, s)
		}
		by[s] = append(by[s], events[i])
	}
	out := make([]postgres.Staged, 0, len(sites))
	for _, s := range sites {
		out = append(out, encodeStaged(s, by[s]))
	}
	return out
}

// encodeStaged encodes one site's events as a staged row's payload.
func encodeStaged(site uint32, events []protocol.Event) postgres.Staged {
	return postgres.Staged{Site: site, Events: len(events), Payload: protocol.EncodeEvents(events)}
}

// settleFor is how long a pass woken by this node's staging, after Run
// waited, waits for the batches staged at about the same time: an agent
// ships several segments at once (ship.Options.InFlight), and a later
// one can be staged first. Derived alone, a later segment's events would
// begin their session, and its session_start and first_visit would stand
// on a later page than the session's first; taken in one derivation, its
// events are ordered by time. While passes find events they follow each
// other Config.Interval apart instead (less often overtaken: a pass takes
// what a second staged).
const settleFor = 250 * time.Millisecond

// Run derives staged events until ctx ends: settleFor after this Writer
// staged a batch, pass after pass while passes find events (each
// Config.Interval after the one before began, unless that one left a
// backlog), and else
// after a wait for batches other nodes staged, Config.Every at first and
// twice as long after each look that found nothing, up to
// Config.IdleEvery. Errors are logged (rate-limited) and retried after
// Config.Every; a staged row no derivation can take is quarantined
// (quarantine.go) and the site derived on at once.
func (w *Writer) Run(ctx context.Context) {
	t := time.NewTimer(w.cfg.Every)
	defer t.Stop()
	wait := w.cfg.Every
	// idle: the last pass derived nothing either.
	idle := false
	for {
		began := time.Now()
		more, backlog, deferred, err := w.pass(ctx)
		if ctx.Err() != nil {
			return
		}
		switch {
		case err != nil:
			level := slog.LevelWarn
			if !postgres.IsTransient(err) {
				level = slog.LevelError
			}
			if n, ok := w.failLog.Allow(time.Now()); ok {
				w.log.Log(ctx, level, "derivation failed; staged events wait for the next pass", "err", err, "suppressed", n)
			}
			wait = w.cfg.Every
		case more:
			wait, idle = w.cfg.Every, false
			if !backlog && !w.waitInterval(ctx, began) {
				return
			}
			continue
		case deferred:
			wait = w.cfg.Every
		}
		// A pass that derived nothing after one that did is the end of
		// the backlog or of the batches staged since the last wait: under
		// steady traffic the next derivation follows the next wait, and
		// reuses the arrays. Two passes in a row that derived nothing (a
		// whole wait without traffic), or a failure to wait on, and they go
		// (derive_scratch.go).
		if (idle || err != nil) && w.deriving.TryLock() { // else a Flush derives
			w.scratch.drop()
			w.deriving.Unlock()
		}
		idle = true
		t.Reset(wait)
		staged := false
		for woke := false; !woke; {
			select {
			case <-ctx.Done():
				return
			case <-w.wake:
				if deferred && w.leftElsewhere() {
					// Batches of sites another node derives: its next
					// pass takes them; the timer runs on.
					continue
				}
				wait, woke, staged = w.cfg.Every, true, true
			case <-t.C:
				wait, woke = min(2*wait, w.cfg.IdleEvery), true
			}
		}
		if staged && !sleepCtx(ctx, settleFor) {
			return
		}
	}
}

// pass runs one derivation of each site with staged events, so a busy
// site does not hold the others back, skipping the sites another
// transaction derives; more reports whether one found events (there may
// be more), backlog whether one stopped at its bounds with events still
// staged.
//
// A pass leaves to the other node the sites another node began deriving
// or it found derived elsewhere, within stickFor, and reports them as
// deferred.
func (w *Writer) pass(ctx context.Context) (more, backlog, deferred bool, err error) {
	w.deriving.Lock()
	defer w.deriving.Unlock()
	w.looks.Add(1)
	w.requeueReadable(ctx)
	sites, err := w.lookStaged(ctx)
	if err != nil {
		return false, false, false, err
	}
	w.cutShort = false
	var errs []error
	for _, st := range sites {
		site := st.Site
		if st.Elsewhere > 0 {
			// Left until another node's stay ends, as when its lock is
			// found held, so that staging keeps no decoded batches of
			// it and its wakes run no pass.
			w.leaveFor(site, st.Elsewhere)
		}
		if w.derivedElsewhere(site) {
			deferred = true
			continue
		}
		n, _, err := w.deriveSite(ctx, site, false)
		busy := errors.Is(err, postgres.ErrSiteBusy) // another node derives it
		w.setBusy(site, busy)
		if busy {
			deferred = true
			continue
		}
		if err != nil {
			if retry, _ := w.onFailure(ctx, site, err); retry {
				// A row quarantined, or the rows derived one at a time
				// from now on: the next pass goes on at once.
				more, w.cutShort = true, true
				continue
			}
		}
		switch {
		case err != nil:
			errs = append(errs, err)
		case n > 0:
			more = true
		}
	}
	return more, w.cutShort, deferred, errors.Join(errs...)
}

// Backlog is what a node's last look found staged and not derived yet:
// the events reports do not show yet.
type Backlog struct {
	// Events staged, every site's; Sites with any.
	Events int64
	Sites  int
	// Oldest is the age of the oldest staged row, any site's, by the
	// database's clock (0: none): how far reports lag ingest.
	Oldest time.Duration
	// At is when the look was taken (zero: none yet, Run not started).
	At time.Time
}

// Backlog returns what this node's last look at the staged rows found
// (Run looks every Config.Every to Config.IdleEvery, and before each
// derivation pass).
func (w *Writer) Backlog() Backlog {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.backlog
}

// lookStaged lists the staged sites (postgres.Store.StagedSites), each
// with how long another node's stay in it still runs, and keeps and
// exports the backlog it found (noteBacklog). Another node derives a site
// Config.Interval apart while it finds events: its stay runs stickFor
// past that.
func (w *Writer) lookStaged(ctx context.Context) ([]postgres.StagedSite, error) {
	sites, err := w.store.StagedSites(ctx, w.cfg.Interval+stickFor)
	if err != nil {
		return nil, fmt.Errorf("write: %w", err)
	}
	w.noteBacklog(sites)
	return sites, nil
}

// noteBacklog keeps and exports what a look found staged.
func (w *Writer) noteBacklog(sites []postgres.StagedSite) {
	b := Backlog{Sites: len(sites), At: time.Now()}
	for _, st := range sites {
		b.Events += st.Events
		b.Oldest = max(b.Oldest, st.Oldest)
	}
	w.mu.Lock()
	w.backlog = b
	w.mu.Unlock()
	w.cfg.Metrics.staged.Set(float64(b.Events))
	w.cfg.Metrics.oldest.Set(b.Oldest.Seconds())
}

// sleepCtx waits for d, and reports false if ctx ended first.
func sleepCtx(ctx context.Context, d time.Duration) bool {
	if d <= 0 {
		return ctx.Err() == nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

// waitInterval waits until Config.Interval after began, and reports false
// if ctx ended first. Every Config.Every meanwhile it looks at the staged
// rows (which also keeps Backlog fresh), and it ends early once a site
// this node derives holds a whole derivation's events (fullAt), whichever
// node staged them: in a burst waiting on would only grow a backlog.
func (w *Writer) waitInterval(ctx context.Context, began time.Time) bool {
	for {
		left := w.cfg.Interval - time.Since(began)
		if left <= 0 {
			return ctx.Err() == nil
		}
		if !sleepCtx(ctx, min(left, w.cfg.Every)) {
			return false
		}
		if left <= w.cfg.Every || w.burstStaged(ctx) {
			return true
		}
	}
}

// burstStaged reports whether a site this node derives (not left to
// another node) holds fullAt staged events or more: its derivation would
// take a whole one's. A failed look reports false (the interval then runs
// out, and the pass reports the error).
func (w *Writer) burstStaged(ctx context.Context) bool {
	sites, err := w.lookStaged(ctx)
	if err != nil {
		return false
	}
	return slices.ContainsFunc(sites, func(st postgres.StagedSite) bool {
		return st.Events >= w.fullAt && st.Elsewhere == 0 && !w.derivedElsewhere(st.Site)
	})
}

// Flush derives every event staged before it was called, waiting for
// derivations other nodes run meanwhile: afterwards reports see them.
// Events staged after it began (under load, other nodes' batches keep
// coming) are left to Run. A staged row no derivation can take is
// quarantined (quarantine.go) and the rest derived; Flush then returns
// ErrQuarantined.
func (w *Writer) Flush(ctx context.Context) error {
	upTo, err := w.store.LastStagedID(ctx)
	if err != nil || upTo == 0 {
		return err
	}
	staged, err := w.store.StagedSites(ctx, 0)
	if err != nil {
		return fmt.Errorf("write: %w", err)
	}
	sites := make([]uint32, len(staged))
	for i, st := range staged {
		sites[i] = st.Site
	}
	quarantined := 0
	for len(sites) > 0 {
		var errs []error
		left := sites[:0]
		w.deriving.Lock()
		for _, site := range sites {
			// Staged rows are taken in id order: once one at or past upTo
			// was taken, the site's rows staged before Flush are derived.
			n, last, err := w.deriveSite(ctx, site, true)
			if err != nil {
				retry, q := w.onFailure(ctx, site, err)
				quarantined += q
				if retry {
					left = append(left, site)
					continue
				}
			}
			switch {
			case err != nil:
				errs = append(errs, err)
			case n > 0 && last < upTo:
				left = append(left, site)
			}
		}
		if len(left) == 0 {
			// Caught up with what Flush was called for: the arrays
			// derivations reuse go (derive_scratch.go).
			w.scratch.drop()
		}
		w.deriving.Unlock()
		if len(errs) > 0 {
			return errors.Join(errs...)
		}
		sites = left
	}
	if quarantined > 0 {
		return fmt.Errorf("%w: %d rows no derivation could take (`avila staged list`); every other event staged is derived", ErrQuarantined, quarantined)
	}
	return nil
}
