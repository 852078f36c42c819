package write

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/avila-analytics/avila/protocol"
	"github.com/avila-analytics/avila/storage/postgres"
)

// ErrQuarantined is returned (wrapped) by Flush when it moved staged rows
// to quarantine: it derived every other event staged before it.
var ErrQuarantined = errors.New("write: staged rows quarantined")

// isolateRows is how many derivations of one staged row each a site gets
// after a data error in a derivation of several rows: the row PostgreSQL
// refuses is among the first rows, which the failed derivation took; if
// none of them fails alone, the site is derived as usual again (and a
// failure that comes back starts it over).
const isolateRows = 16

// maxRefused bounds the rows of one site quarantined for a data error in
// refusedWindow: past it, the cause is likely the site's stored state
// (a rollup amount past its type's range, say), which would refuse every
// row alike, not the rows, so the site's rows are not quarantined one
// after the other: its derivations fail and are retried, and
// AvilaReportsLagging fires. Rows that do not decode are always
// quarantined. The rows are counted in staged_quarantine under the
// site's lock (DeriveTx.RefusedSince), so the bound is the cluster's, and
// a restart does not reset it; a requeue does, for the rows it takes.
const (
	maxRefused    = 5
	refusedWindow = time.Hour
)

// newerVersionFor is how long a node leaves a site after it met a staged
// row of a newer protocol version than its own, which it cannot decode:
// nodes of that version derive the site meanwhile. When no node of the
// cluster reads the version (Config.Readers), the row is quarantined once
// it was met so for Config.UnreadFor.
const newerVersionFor = 10 * time.Second

// requeueEvery is how often a node requeues the rows that nodes of an
// older version quarantined as newer than theirs, and that it reads
// (postgres.Store.RequeueReadable): at its first pass, then this often.
const requeueEvery = time.Minute

// unreadRow is a staged row of a newer protocol version that no node of
// the cluster reads, and when this node first met it so.
type unreadRow struct {
	id    int64
	since time.Time
}

// badRowError is a staged row whose payload does not decode to the
// events its row counts: no derivation can take it.
type badRowError struct {
	id  int64
	err error
}

func (e *badRowError) Error() string { return fmt.Sprintf("staged row %d: %v", e.id, e.err) }
func (e *badRowError) Unwrap() error { return e.err }

// failedDerivation is the error of a derivation that failed after it
// took staged rows: first is the first row it took, single whether it
// took that one only (isolating).
type failedDerivation struct {
	err    error
	first  int64
	single bool
}

func (e *failedDerivation) Error() string { return e.err.Error() }
func (e *failedDerivation) Unwrap() error { return e.err }

// onFailure handles a failed derivation of site (not ErrSiteBusy), so a
// staged row that no derivation can take does not stop its site's
// reports: a row of a newer protocol version (protocol.ErrNewerVersion)
// is left to nodes of that version (onNewerVersion); another row that
// does not decode is quarantined; after a data error
// (postgres.IsDataError) in a derivation of several rows, the site's next
// isolateRows derivations take one row each, and the one whose
// derivation fails so is quarantined. Other failures (a lost connection,
// a full disk) are left to the retries. retry reports whether the site
// can be derived again at once; quarantined counts the rows moved
// (deriving held).
func (w *Writer) onFailure(ctx context.Context, site uint32, err error) (retry bool, quarantined int) {
	var bad *badRowError
	var failed *failedDerivation
	errors.As(err, &failed)
	switch {
	case errors.Is(err, protocol.ErrNewerVersion):
		return w.onNewerVersion(ctx, site, err)
	case errors.As(err, &bad):
		return w.quarantine(ctx, site, bad.id, err, postgres.QuarantineCause{})
	case failed == nil || !postgres.IsDataError(err):
		return false, 0
	case failed.single:
		return w.quarantine(ctx, site, failed.first, err, postgres.QuarantineCause{Refused: true})
	}
	w.log.Warn("PostgreSQL refused a derivation's events; deriving the site's staged rows one at a time to find the row",
		"site", site, "first_row", failed.first, "err", err)
	w.isolate[site] = isolateRows
	return true, 0
}

// onNewerVersion handles a derivation of site that met a staged row of a
// newer protocol version than this node's, staged by a node of that
// version (a rolling upgrade): while a node of the cluster reads it
// (Config.Readers), the site is left to those nodes for newerVersionFor
// at a time. When none does (a downgrade, or every newer node stopped),
// the site's other rows would wait for it for good: once this node has
// met the row so for Config.UnreadFor, it is quarantined, marked with its
// version, and a node that reads the version requeues it when it runs
// (requeueReadable).
func (w *Writer) onNewerVersion(ctx context.Context, site uint32, err error) (retry bool, quarantined int) {
	v, _ := protocol.NewerVersion(err)
	var bad *badRowError
	now := time.Now()
	read := w.cfg.Readers != nil && w.cfg.Readers(v)
	if !read && errors.As(err, &bad) {
		u, ok := w.unread[site]
		if !ok || u.id != bad.id {
			u = unreadRow{id: bad.id, since: now}
			w.unread[site] = u
		}
		if now.Sub(u.since) >= w.cfg.UnreadFor {
			delete(w.unread, site)
			return w.quarantine(ctx, site, bad.id, err, postgres.QuarantineCause{NewerVersion: v})
		}
	} else {
		delete(w.unread, site)
	}
	w.leaveFor(site, newerVersionFor)
	if n, ok := w.failLog.Allow(now); ok {
		if read {
			w.log.Warn("a staged row of the site is of a newer protocol version than this node's: the site is left to nodes of that version; "+
				"upgrade this node", "site", site, "err", err, "left_for", newerVersionFor, "suppressed", n)
		} else {
			w.log.Warn("a staged row of the site is of a newer protocol version than this node's, and no node of the cluster reads it: "+
				"the site waits for one to join, and the row is quarantined if none has by then", "site", site, "err", err,
				"quarantined_after", w.cfg.UnreadFor, "suppressed", n)
		}
	}
	return false, 0
}

// requeueReadable requeues the rows that nodes of an older version
// quarantined as newer than theirs and that this node reads, every
// requeueEvery (deriving held): the pass that follows derives them.
func (w *Writer) requeueReadable(ctx context.Context) {
	now := time.Now()
	if !w.requeued.IsZero() && now.Sub(w.requeued) < requeueEvery {
		return
	}
	rows, events, err := w.store.RequeueReadable(ctx, protocol.Version)
	switch {
	case ctx.Err() != nil:
		return // stopping: the next start requeues them
	case err != nil:
		if n, ok := w.failLog.Allow(now); ok {
			w.log.Warn("could not requeue staged rows of this node's protocol version quarantined by older nodes; retried in a minute",
				"err", err, "suppressed", n)
		}
	case rows > 0:
		w.log.Info("staged rows that nodes of an older protocol version quarantined requeued: this node reads them",
			"rows", rows, "events", events, "version", protocol.Version)
	}
	w.requeued = now
}

// quarantine moves the site's staged row id to quarantine, in a
// transaction holding the site's derivation lock, and reports whether
// the site can be derived again at once (deriving held). q says why,
// besides cause; of a row whose events PostgreSQL refused (q.Refused),
// maxRefused of the site within refusedWindow, and it is not moved.
func (w *Writer) quarantine(ctx context.Context, site uint32, id int64, cause error, q postgres.QuarantineCause) (retry bool, quarantined int) {
	failed := func(err error) (bool, int) {
		w.log.Error("could not quarantine a staged row no derivation can take", "site", site, "row", id, "cause", cause, "err", err)
		return false, 0
	}
	d, err := w.begin(ctx, site, true)
	if err != nil {
		return failed(err)
	}
	defer d.Rollback(ctx) // no-op after Commit
	if q.Refused {
		n, err := d.RefusedSince(ctx, refusedWindow)
		if err != nil {
			return failed(err)
		}
		if n >= maxRefused {
			delete(w.isolate, site)
			if n, ok := w.failLog.Allow(time.Now()); ok {
				w.log.Error("PostgreSQL refused a derivation's events, and too many of the site's rows were quarantined for such errors lately to "+
					"blame the rows; quarantining no more of them, the derivation is retried", "site", site, "quarantined", maxRefused,
					"within", refusedWindow, "err", cause, "suppressed", n)
			}
			return false, 0
		}
	}
	q.Reason = cause.Error()
	events, found, err := d.Quarantine(ctx, id, q)
	if err == nil {
		err = d.Commit(ctx)
	}
	if err != nil {
		return failed(err)
	}
	delete(w.isolate, site)
	if !found {
		// Another node's derivation took it (or quarantined it) meanwhile.
		return true, 0
	}
	w.cfg.Metrics.quarantined.Inc()
	w.cfg.Metrics.quarantinedEvents.Add(float64(events))
	until := "`avila staged requeue`"
	if q.NewerVersion > 0 {
		until = "a node of its version runs, which requeues it"
	}
	w.log.LogAttrs(ctx, slog.LevelError, "staged row quarantined: no derivation can take it, and its events are in no report until "+until,
		slog.Uint64("site", uint64(site)), slog.Int64("row", id), slog.Int("events", events), slog.String("reason", q.Reason))
	return true, 1
}
