package write

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"

	"github.com/avila-analytics/avila/aggregator/channel"
	"github.com/avila-analytics/avila/aggregator/sessions"
	"github.com/avila-analytics/avila/protocol"
	"github.com/avila-analytics/avila/storage/postgres"
)

// trafficSource is the traffic source of a session landing on path from
// referrer (GA4's rules, aggregator/channel).
func trafficSource(path, referrer string) postgres.Traffic {
	t := channel.Attribute(path, referrer)
	return postgres.Traffic{Source: t.Source, Medium: t.Medium, Campaign: t.Campaign, Group: t.Group()}
}

// sourceMemo holds the traffic sources (trafficSource) of referrers, for
// landing pages without a query, whose source is the referrer's alone
// (channel.Attribute): a chunk attributes each of its distinct (page,
// referrer) pairs, mostly of a few hundred referrers and no query.
type sourceMemo map[string]postgres.Traffic

// maxSourceMemo bounds the referrers a sourceMemo holds; a full one is
// emptied.
const maxSourceMemo = 4096

// source is trafficSource(path, referrer), from m when path has no query.
func (m *sourceMemo) source(path, referrer string) postgres.Traffic {
	if strings.IndexByte(path, '?') >= 0 {
		return trafficSource(path, referrer)
	}
	if t, ok := (*m)[referrer]; ok {
		return t
	}
	t := trafficSource(path, referrer)
	if *m == nil || len(*m) >= maxSourceMemo {
		*m = make(sourceMemo)
	}
	(*m)[referrer] = t
	return t
}

// deriveSite runs one derivation transaction of site and returns how many
// staged events it derived (0: none were left) and the id of the last
// staged row it took.
//
// It takes the staged rows in chunks of at most Config.MaxEvents events
// (deriveChunk), one after the other in the one transaction: each chunk's
// events are decoded, given sessions, copied to events and released,
// while the rollup cells of every chunk add up in memory and are written
// once, with the last chunk's (postgres.DeriveTx.AddEvents). It takes no
// further chunk once one was not full (the site's staged rows are
// taken), after Config.MaxChunks of them, or once it has run for
// Config.DeriveFor. All chunks commit or none do.
func (w *Writer) deriveSite(ctx context.Context, site uint32, wait bool) (n int, last int64, err error) {
	ctx, span := w.cfg.Tracer.Start(ctx, "write.derive", trace.WithAttributes(attribute.Int64("avila.site", int64(site))))
	defer func() {
		span.SetAttributes(attribute.Int("avila.events", n))
		if err != nil && !errors.Is(err, postgres.ErrSiteBusy) {
			span.SetStatus(codes.Error, err.Error())
		}
		span.End()
	}()
	start := time.Now()
	d, err := w.begin(ctx, site, wait)
	if err != nil {
		return 0, 0, err
	}
	defer d.Rollback(ctx) // no-op after Commit
	d.UseCells(&w.scratch.cells)
	run := &derivation{d: d, site: site, start: start, mem: w.siteSessions(site, d.Gen()-1), single: w.isolate[site] > 0}
	// After the hooks: the last chunk's events and rows are the
	// scratch's, kept for the next derivation while traffic lasts.
	defer w.scratch.clean()
	defer func() {
		if err != nil && run.remembered {
			// The memory holds sessions of chunks that did not commit.
			w.forgetSessions(site)
		}
	}()
	for chunk := 0; ; chunk++ {
		more, err := w.deriveChunk(ctx, run, chunk)
		if err != nil {
			return 0, 0, run.failed(err)
		}
		if !more {
			break
		}
	}
	if run.rows == 0 {
		delete(w.isolate, site)
		return 0, 0, nil
	}
	if err := d.Commit(ctx); err != nil {
		w.forgetSessions(site)
		return 0, 0, run.failed(err)
	}
	if run.single {
		// The row went alone: the next derivations take the rows after
		// it, one each until isolateRows did.
		if w.isolate[site]--; w.isolate[site] <= 0 {
			delete(w.isolate, site)
		}
	}
	w.cutShort = w.cutShort || run.full
	w.cfg.Metrics.derivations.Inc()
	w.cfg.Metrics.derived.Add(float64(run.staged))
	w.cfg.Metrics.kept.Add(float64(run.fromMemory))
	w.cfg.Metrics.seconds.Observe(time.Since(start).Seconds())
	if w.log.Enabled(ctx, slog.LevelDebug) {
		w.log.LogAttrs(ctx, slog.LevelDebug, "derived", slog.Uint64("site", uint64(site)), slog.Int("staged_rows", run.rows),
			slog.Int("chunks", run.chunks), slog.Int("events", run.staged), slog.Int("derived_events", len(run.added)),
			slog.Int("sessions", run.sessions), slog.Duration("took", time.Since(start)))
	}
	if w.cfg.Derived != nil && len(run.lastEvents) > 0 {
		w.cfg.Derived(ctx, site, run.lastEvents)
	}
	if w.cfg.Added != nil && len(run.added) > 0 {
		w.cfg.Added(ctx, site, run.added)
	}
	return run.n, run.lastID, nil
}

// derivation is the state of one derivation transaction across its
// chunks.
type derivation struct {
	d     *postgres.DeriveTx
	site  uint32
	start time.Time
	mem   *siteSessions
	// remembered: mem holds sessions of a chunk of this derivation,
	// which are the database's only once it commits.
	remembered bool
	// wrote: a chunk wrote events. Later chunks then create no
	// partition (postgres.Store.EventDaysKnown).
	wrote bool
	// full: the last chunk was full, so events may still be staged.
	full   bool
	chunks int
	rows   int   // staged rows taken
	lastID int64 // of the last staged row taken
	// n is what deriveSite returns: the events derived, or for a chunk
	// of erased subjects' events only, the staged events taken.
	n          int
	staged     int // staged events derived
	fromMemory int // of them, kept decoded by ingest (decodedBatches)
	sessions   int
	// lastEvents are the last chunk's events, for Config.Derived (whose
	// consumers read their site): of a chunk found to be the last only
	// after it was written, its last event; added are the events every chunk
	// derived itself (session_start, first_visit), for Config.Added.
	lastEvents []protocol.Event
	added      []protocol.Event
	// first is the id of the first staged row taken (0: none yet);
	// single makes the derivation take one row only (isolating a row
	// PostgreSQL refuses, quarantine.go).
	first  int64
	single bool
}

// failed is err, of a derivation of run, with the rows it took
// (failedDerivation) when it took any.
func (run *derivation) failed(err error) error {
	if run.first == 0 {
		return err
	}
	return &failedDerivation{err: err, first: run.first, single: run.single}
}

// deriveChunk derives chunk (0, 1 …) of run: it takes the site's next
// staged rows up to Config.MaxEvents, and reports whether the derivation
// should take another chunk after it.
func (w *Writer) deriveChunk(ctx context.Context, run *derivation, chunk int) (more bool, err error) {
	d, site := run.d, run.site
	// The payloads are read into the scratch's buffer, over the last
	// chunk's.
	// Fewer staged events than Config.MaxEvents when the chunk is
	// expected to add over a quarter more: a chunk of new visitors' hits
	// adds two events to each, and its arrays would grow to three times
	// the staged events.
	limit, maxRows := run.mem.chunkEvents(w.cfg.MaxEvents), maxStagedRows
	if run.single {
		maxRows = 1
	}
	rows, payloads, err := d.TakeInto(ctx, w.scratch.payloads, maxRows, limit)
	w.scratch.payloads = payloads
	if err != nil {
		return false, err
	}
	if run.first == 0 && len(rows) > 0 {
		run.first = rows[0].ID
	}
	total := 0
	for _, st := range rows {
		total += st.Events
	}
	full := total >= limit || len(rows) >= maxRows
	run.full = full
	if !full {
		// Every row staged of the site when it began: the batches kept
		// decoded from now on are the ones the next derivations take.
		w.decoded.caughtUp()
	}
	if len(rows) == 0 {
		return false, nil
	}
	// The last chunk: no more staged, or the derivation's bounds: its
	// chunks, its time, or the events it adds (Config.MaxAdded).
	added := run.mem.expectAdded(total)
	final := !full || run.single || chunk+1 >= w.cfg.MaxChunks || time.Since(run.start) >= w.cfg.DeriveFor ||
		len(run.added)+added >= w.cfg.MaxAdded
	// The scratch's array, the last chunk's (derive_scratch.go), with
	// room for derived events.
	events := w.scratch.eventsFor(total + max(added, total/4))
	events, fromMemory, err := w.rowEvents(events, rows, total)
	if err != nil {
		return false, fmt.Errorf("write: derive site %d: %w", site, err)
	}
	if run.wrote && !w.store.EventDaysKnown(events) {
		// A day without a known partition: creating it would wait for
		// this transaction's hold on events. The next derivation
		// creates it before it writes.
		d.Untake(rows)
		return false, nil
	}
	run.chunks++
	run.rows += len(rows)
	run.lastID = rows[len(rows)-1].ID
	if events, err = dropErased(ctx, d, events, w.cfg.Metrics); err != nil {
		return false, err
	}
	if len(events) == 0 {
		// Every event was an erased subject's: the staged rows go all the same.
		run.n += total
		return !final, nil
	}
	staged := len(events)
	// Partitions first, in their own transactions: the derivation holds no
	// lock on events yet (a later chunk's days are known to exist, see
	// above), so creating a partition cannot wait for it. Derived events
	// fall on their triggers' days.
	if err := w.store.EnsureEventDays(ctx, events); err != nil {
		return false, fmt.Errorf("write: derive site %d: %w", site, err)
	}
	// Key events (the site's list) and repeated purchases before the rows
	// and sessions that count them.
	commerce, err := prepareCommerce(ctx, w.store, d, events, &w.scratch.commerce)
	if err != nil {
		return false, err
	}
	// Into the scratch's assignment, over the last chunk's.
	as := &w.scratch.as
	known, err := assignSessions(ctx, d, run.mem, events, as, &w.scratch.assign)
	if err != nil {
		return false, err
	}
	firstSeen, firstSources, err := d.AddKnownUsers(ctx, persistentUsers(events, as, emptied(&w.scratch.rows.users)))
	if err != nil {
		return false, err
	}
	newUser := newUsers(events, as, firstSeen, w.scratch.rows.newUser)
	w.scratch.rows.newUser = newUser
	derived := 0
	if !w.cfg.NoDerivedEvents {
		events, derived = deriveEvents(events, as, newUser)
		w.scratch.wrote(events)
	}
	run.mem.chunkAdded(staged, derived)
	// Strings in their own short transactions (see ResolveEventsTo), into
	// the scratch's rows.
	res := w.scratch.resolved()
	if err := w.store.ResolveEventsTo(ctx, res, events, w.scratch.sources.source); err != nil {
		return false, fmt.Errorf("write: derive site %d: %w", site, err)
	}
	for i := range res.Rows {
		a := &as.Sessions[as.Of[i]]
		// An event is stored under its session's visitor: after a login
		// in the middle of a session, the key the session began with.
		res.Rows[i].Session, res.Rows[i].Visitor = a.ID, int64(a.Visitor)
		if i >= len(events)-derived {
			res.Rows[i].Flags |= postgres.EventFlagDerived
		}
	}
	sess, newSources := sessionRows(events, res, as, newUser, firstSeen, firstSources, &w.scratch.rows)
	if err := d.SetFirstSources(ctx, newSources); err != nil {
		return false, err
	}
	// Commerce rows of the staged events (derived events carry none).
	items, err := commerce.write(ctx, w.store, d, events[:staged], res.Rows[:staged])
	if err != nil {
		return false, err
	}
	// Sessions before events: WriteEvents copies the events while it
	// aggregates them, which needs the sessions' changes.
	changes, err := d.UpsertSessions(ctx, sess)
	if err != nil {
		return false, err
	}
	write := d.AddEvents
	if final {
		write = d.WriteEvents
	}
	run.wrote = true
	if err := write(ctx, res.Rows, items, changes); err != nil {
		return false, err
	}
	// The next chunk's sessions continue these: the memory holds them
	// as of this derivation (its generation), forgotten should it not
	// commit.
	run.mem.commit(d.Gen(), sess, known, emptied(&w.scratch.assign.latest))
	run.remembered = true
	run.n += staged
	run.staged += staged
	run.fromMemory += fromMemory
	run.sessions += len(sess)
	if final {
		run.lastEvents = events
	} else {
		// The chunk's events are released: its last one stands for them.
		run.lastEvents = slices.Clone(events[staged-1 : staged])
	}
	run.added = append(run.added, events[len(events)-derived:]...)
	return !final, nil
}

// parallelDecodeFrom is the least number of events of a chunk's rows to
// decode for rowEvents to decode them on two goroutines.
const parallelDecodeFrom = 4096

// rowEvents returns the events of the staged rows (total in all, by
// their counts), in the rows' order, in events (empty, with room for
// total): a row's events kept decoded by ingest (decodedBatches) copied,
// the other rows decoded from their payloads, which are the truth either
// way. Decoding takes a chunk's time when ingest kept none (a backlog,
// another node's batches), so the rows to decode are split between this
// goroutine and another by their events, each decoding into the rows'
// places in events: the derivation is one goroutine, and the decoding of
// a chunk then takes a core that would otherwise wait for it or for
// PostgreSQL. fromMemory counts the kept events.
func (w *Writer) rowEvents(events []protocol.Event, rows []postgres.StagedRow, total int) (_ []protocol.Event, fromMemory int, err error) {
	events = events[:total]
	// Each row is decoded into its places alone (a slice capped at its
	// count), so nothing is written past total, on error either.
	defer w.scratch.wrote(events)
	var decode []int // indexes of rows to decode
	decodeEvents, at := 0, 0
	offsets := w.scratch.offsets[:0]
	for i, st := range rows {
		offsets = append(offsets, at)
		if kept, ok := w.decoded.take(st.Payload); ok && len(kept) == st.Events {
			copy(events[at:at+st.Events], kept)
			fromMemory += len(kept)
			w.decoded.recycle(kept)
		} else {
			if ok {
				w.decoded.recycle(kept)
			}
			decode = append(decode, i)
			decodeEvents += st.Events
		}
		at += st.Events
	}
	w.scratch.offsets = offsets
	decodeRows := func(idx []int) error {
		var dec protocol.EventDecoder
		defer dec.Release()
		for _, i := range idx {
			st, off := &rows[i], offsets[i]
			got, err := dec.Append(events[off:off:off+st.Events], st.Payload)
			if err != nil {
				return &badRowError{id: st.ID, err: err}
			}
			if len(got) != st.Events || (len(got) > 0 && &got[0] != &events[off]) {
				return &badRowError{id: st.ID, err: fmt.Errorf("%d events decoded where its row counts %d", len(got), st.Events)}
			}
		}
		return nil
	}
	if decodeEvents < parallelDecodeFrom || len(decode) < 2 {
		return events, fromMemory, decodeRows(decode)
	}
	// Split by events: the first rows to this goroutine, the rest to
	// another.
	split, half := 0, 0
	for split < len(decode)-1 && half < decodeEvents/2 {
		half += rows[decode[split]].Events
		split++
	}
	var other error
	var wg sync.WaitGroup
	wg.Go(func() { other = decodeRows(decode[split:]) })
	err = decodeRows(decode[:split])
	wg.Wait()
	return events, fromMemory, errors.Join(err, other)
}

// begin begins a derivation of site. With wait it retries while another
// transaction derives the site (backing off from 5 to 100 ms), else it
// returns postgres.ErrSiteBusy.
func (w *Writer) begin(ctx context.Context, site uint32, wait bool) (*postgres.DeriveTx, error) {
	pause := 5 * time.Millisecond
	for {
		d, err := w.store.BeginDerive(ctx, site)
		if !wait || !errors.Is(err, postgres.ErrSiteBusy) {
			return d, err
		}
		t := time.NewTimer(pause)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil, fmt.Errorf("write: wait for the derivation of site %d: %w", site, ctx.Err())
		case <-t.C:
		}
		pause = min(2*pause, 100*time.Millisecond)
	}
}

// assignSessions gives the events their sessions, into as
// (sessions.AssignInto): from mem for visitors it covers, else from the
// sessions stored in the database (under the events' visitor and client
// keys). The known sessions it returns are in sc's map, valid until sc
// serves the next chunk.
func assignSessions(ctx context.Context, d *postgres.DeriveTx, mem *siteSessions, events []protocol.Event, as *sessions.Assignment, sc *assignScratch) (map[sessions.Key][]sessions.Session, error) {
	site := d.Site()
	lo, hi := sc.eventVisitors(events)
	visitors := sc.visitors
	cached := grownTo(sc.cached, len(visitors))
	covered := grownTo(sc.covered, len(visitors))
	sc.cached, sc.covered = cached, covered
	mem.latest(visitors, cached, covered)
	sc.coverSessions(events)
	known := emptied(&sc.known)
	// The lists of one remembered session share an array.
	one := sc.one[:0]
	if cap(one) < len(visitors) {
		one = make([]sessions.Session, 0, len(visitors))
	}
	missing := sc.missing[:0]
	for j, v := range visitors {
		if covered[j] {
			one = append(one, cached[j])
			known[sessions.Key{Site: site, Visitor: v}] = one[len(one)-1 : len(one) : len(one)]
			continue
		}
		missing = append(missing, int64(v))
	}
	sc.one, sc.missing = one, missing
	if len(missing) > 0 {
		from := time.UnixMicro(lo).Add(-sessions.Lookback)
		to := time.UnixMicro(hi).Add(sessions.Timeout)
		refs, err := d.LookupSessions(ctx, missing, from, to)
		if err != nil {
			return nil, fmt.Errorf("write: %w", err)
		}
		for _, r := range refs {
			k := sessions.Key{Site: site, Visitor: uint64(r.Visitor)}
			known[k] = append(known[k], sessions.Session{ID: r.ID, Start: r.Start.UnixMicro(), Last: r.Last.UnixMicro(), FirstSource: r.FirstSource})
		}
	}
	sessions.AssignInto(as, events, known)
	return known, nil
}

// eventVisitors lists the events' visitor and client keys (events not
// empty) in sc.visitors, each once, in the order first met, sets
// sc.place[i] to event i's visitor's index among them, and returns the
// events' first and last times. A visitor's events come in runs: an event
// of the previous one's visitor and client takes its place without a
// look-up.
func (sc *assignScratch) eventVisitors(events []protocol.Event) (lo, hi int64) {
	index := emptied(&sc.index)
	visitors := sc.visitors[:0]
	place := grownTo(sc.place, len(events))
	lo, hi = events[0].TimeMicros, events[0].TimeMicros
	for i := range events {
		e := &events[i]
		lo, hi = min(lo, e.TimeMicros), max(hi, e.TimeMicros)
		if i > 0 && e.Visitor == events[i-1].Visitor && e.Client == events[i-1].Client {
			place[i] = place[i-1]
			continue
		}
		j, ok := index[e.Visitor]
		if !ok {
			j = int32(len(visitors))
			index[e.Visitor] = j
			visitors = append(visitors, e.Visitor)
		}
		place[i] = j
		if e.Client != 0 {
			if _, ok := index[e.Client]; !ok {
				index[e.Client] = int32(len(visitors))
				visitors = append(visitors, e.Client)
			}
		}
	}
	sc.visitors, sc.place = visitors, place
	return lo, hi
}

// coverSessions clears sc.covered (by index in sc.visitors: whether the
// memory's latest session, sc.cached, is all the sessions Assign needs of
// the visitor) for each visitor with an event the latest session does not
// cover (sessions.CacheCovers), and for both keys of a signed-in device's
// events.
func (sc *assignScratch) coverSessions(events []protocol.Event) {
	covered, cached, place := sc.covered, sc.cached, sc.place
	for i := range events {
		e := &events[i]
		if e.Client != 0 {
			// A signed-in device's session may be stored under either
			// key; the memory holds each key's latest only: ask the
			// database for both.
			covered[place[i]], covered[sc.index[e.Client]] = false, false
			continue
		}
		if j := place[i]; covered[j] && !sessions.CacheCovers(cached[j], e.SessionID, e.TimeMicros) {
			covered[j] = false
		}
	}
}

// persistentUsers are the persistent visitors (FlagPersistent) of the
// assigned sessions, each with its earliest event time, in out (empty).
func persistentUsers(events []protocol.Event, as *sessions.Assignment, out map[uint64]int64) map[uint64]int64 {
	for i := range as.Sessions {
		a := &as.Sessions[i]
		for _, ei := range a.Events {
			if e := &events[ei]; e.Flags&protocol.FlagPersistent != 0 {
				if t, ok := out[a.Visitor]; !ok || e.TimeMicros < t {
					out[a.Visitor] = e.TimeMicros
				}
			}
		}
	}
	return out
}
