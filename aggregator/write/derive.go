package write

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
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

// deriveSite runs one derivation transaction of site and returns how many
// staged events it derived (0: none were left) and the id of the last
// staged row it took.
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
	rows, err := d.Take(ctx, maxStagedRows, w.cfg.MaxEvents)
	if err != nil {
		return 0, 0, err
	}
	total := 0
	for _, st := range rows {
		total += st.Events
	}
	if total < w.cfg.MaxEvents && len(rows) < maxStagedRows {
		// Every row staged of the site when it began: the batches kept
		// decoded from now on are the ones the next derivations take.
		w.decoded.caughtUp()
	}
	if len(rows) == 0 {
		return 0, 0, nil
	}
	events := make([]protocol.Event, 0, total+total/4) // room for derived events
	var dec protocol.EventDecoder
	fromMemory := 0
	for _, st := range rows {
		// The events ingest decoded when this node staged the row, if
		// kept; their row's payload is the truth either way.
		if kept, ok := w.decoded.take(st.Payload); ok {
			events = append(events, kept...)
			fromMemory += len(kept)
			w.decoded.recycle(kept)
			continue
		}
		if events, err = dec.Append(events, st.Payload); err != nil {
			dec.Release()
			return 0, 0, fmt.Errorf("write: derive site %d: staged row %d: %w", site, st.ID, err)
		}
	}
	dec.Release()
	if events, err = dropErased(ctx, d, events, w.cfg.Metrics); err != nil {
		return 0, 0, err
	}
	if len(events) == 0 {
		// Every event was an erased subject's: the staged rows go all the same.
		if err := d.Commit(ctx); err != nil {
			w.forgetSessions(site)
			return 0, 0, err
		}
		return total, rows[len(rows)-1].ID, nil
	}
	staged := len(events)
	// Partitions first, in their own transactions: the derivation holds no
	// lock on events yet, so creating a partition cannot wait for it.
	// Derived events fall on their triggers' days.
	if err := w.store.EnsureEventDays(ctx, events); err != nil {
		return 0, 0, fmt.Errorf("write: derive site %d: %w", site, err)
	}
	// Key events (the site's list) and repeated purchases before the rows
	// and sessions that count them.
	commerce, err := prepareCommerce(ctx, w.store, d, events)
	if err != nil {
		return 0, 0, err
	}
	mem := w.siteSessions(site, d.Gen()-1)
	as, known, err := assignSessions(ctx, d, mem, events)
	if err != nil {
		return 0, 0, err
	}
	firstSeen, firstSources, err := d.AddKnownUsers(ctx, persistentUsers(events, &as))
	if err != nil {
		return 0, 0, err
	}
	newUser := newUsers(events, &as, firstSeen)
	derived := 0
	if !w.cfg.NoDerivedEvents {
		events, derived = deriveEvents(events, &as, newUser)
	}
	// Strings in their own short transactions (see ResolveEvents).
	res, err := w.store.ResolveEvents(ctx, events, trafficSource)
	if err != nil {
		return 0, 0, fmt.Errorf("write: derive site %d: %w", site, err)
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
	sess, newSources := sessionRows(events, res, &as, newUser, firstSeen, firstSources)
	if err := d.SetFirstSources(ctx, newSources); err != nil {
		return 0, 0, err
	}
	// Commerce rows of the staged events (derived events carry none).
	items, err := commerce.write(ctx, w.store, d, events[:staged], res.Rows[:staged])
	if err != nil {
		return 0, 0, err
	}
	// Sessions before events: WriteEvents copies the events while it
	// aggregates them, which needs the sessions' changes.
	changes, err := d.UpsertSessions(ctx, sess)
	if err != nil {
		return 0, 0, err
	}
	if err := d.WriteEvents(ctx, res.Rows, items, changes); err != nil {
		return 0, 0, err
	}
	if err := d.Commit(ctx); err != nil {
		w.forgetSessions(site)
		return 0, 0, err
	}
	mem.commit(d.Gen(), sess, known)
	w.cfg.Metrics.derivations.Inc()
	w.cfg.Metrics.derived.Add(float64(staged))
	w.cfg.Metrics.kept.Add(float64(fromMemory))
	w.cfg.Metrics.seconds.Observe(time.Since(start).Seconds())
	if w.log.Enabled(ctx, slog.LevelDebug) {
		w.log.LogAttrs(ctx, slog.LevelDebug, "derived", slog.Uint64("site", uint64(site)), slog.Int("staged_rows", len(rows)),
			slog.Int("events", staged), slog.Int("derived_events", derived), slog.Int("sessions", len(sess)), slog.Duration("took", time.Since(start)))
	}
	if w.cfg.Derived != nil {
		w.cfg.Derived(ctx, site, events)
	}
	if w.cfg.Added != nil && derived > 0 {
		w.cfg.Added(ctx, site, events[len(events)-derived:])
	}
	return staged, rows[len(rows)-1].ID, nil
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

// assignSessions gives the events their sessions: from mem for visitors it
// covers, else from the sessions stored in the database (under the
// events' visitor and client keys).
func assignSessions(ctx context.Context, d *postgres.DeriveTx, mem *siteSessions, events []protocol.Event) (sessions.Assignment, map[sessions.Key][]sessions.Session, error) {
	site := d.Site()
	seen := make(map[uint64]bool)
	var visitors []uint64
	lo, hi := events[0].TimeMicros, events[0].TimeMicros
	for i := range events {
		e := &events[i]
		if !seen[e.Visitor] {
			seen[e.Visitor] = true
			visitors = append(visitors, e.Visitor)
		}
		if e.Client != 0 && !seen[e.Client] {
			seen[e.Client] = true
			visitors = append(visitors, e.Client)
		}
		lo, hi = min(lo, e.TimeMicros), max(hi, e.TimeMicros)
	}
	cached := mem.get(visitors)
	covered := make(map[uint64]bool, len(cached))
	for v := range cached {
		covered[v] = true
	}
	for i := range events {
		e := &events[i]
		if e.Client != 0 {
			// A signed-in device's session may be stored under either
			// key; the memory holds each key's latest only: ask the
			// database for both.
			covered[e.Visitor], covered[e.Client] = false, false
			continue
		}
		if covered[e.Visitor] && !sessions.CacheCovers(cached[e.Visitor], e.SessionID, e.TimeMicros) {
			covered[e.Visitor] = false
		}
	}
	known := make(map[sessions.Key][]sessions.Session, len(visitors))
	var missing []int64
	for _, v := range visitors {
		if covered[v] {
			known[sessions.Key{Site: site, Visitor: v}] = []sessions.Session{cached[v]}
			continue
		}
		missing = append(missing, int64(v))
	}
	if len(missing) > 0 {
		from := time.UnixMicro(lo).Add(-sessions.Lookback)
		to := time.UnixMicro(hi).Add(sessions.Timeout)
		refs, err := d.LookupSessions(ctx, missing, from, to)
		if err != nil {
			return sessions.Assignment{}, nil, fmt.Errorf("write: %w", err)
		}
		for _, r := range refs {
			k := sessions.Key{Site: site, Visitor: uint64(r.Visitor)}
			known[k] = append(known[k], sessions.Session{ID: r.ID, Start: r.Start.UnixMicro(), Last: r.Last.UnixMicro(), FirstSource: r.FirstSource})
		}
	}
	return sessions.Assign(events, known), known, nil
}

// persistentUsers are the persistent visitors (FlagPersistent) of the
// assigned sessions, each with its earliest event time.
func persistentUsers(events []protocol.Event, as *sessions.Assignment) map[uint64]int64 {
	out := map[uint64]int64{}
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
