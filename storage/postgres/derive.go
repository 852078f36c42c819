package postgres

import (
	"context"
	"errors"
	"fmt"
	"math"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/avila-analytics/avila/protocol"
)

// deriveLockSpace is the first key of the two-key advisory locks that make
// one transaction at a time derive a site ("avld"); the second is the site
// id. The two-key form keeps them apart from the store's one-key locks.
const deriveLockSpace int32 = 0x61766c64

// ErrSiteBusy is returned by BeginDerive when another transaction, on this
// node or another, is deriving the site.
var ErrSiteBusy = errors.New("postgres: site is being derived elsewhere")

// StagedRow is one staged_events row: a site's share of one batch.
type StagedRow struct {
	ID      int64
	Events  int
	Payload []byte // protocol.EncodeBatch
}

// DeriveTx is the transaction that turns a site's staged events into
// events, sessions, rollups and session rollups rows. It holds the site's
// derive lock, so it is the only writer of the site's sessions and rollups
// (a rebuild, which locks the sites row FOR UPDATE, waits for it and is
// waited for). The staged rows it took are deleted when it commits: each
// staged event is derived exactly once, and a derivation that fails or is
// killed leaves them for the next. Not safe for concurrent use.
type DeriveTx struct {
	s        *Store
	tx       pgx.Tx
	site     uint32
	zone     *time.Location
	gen      int64
	consumed []int64
	events   int64
	// cells are the rollup deltas of the chunks AddEvents aggregated and
	// not written yet (nil: none).
	cells *deriveCells
	// scratch, when set (UseCells), lends cells and takes them back.
	scratch *CellScratch
	// The site's ecommerce settings (commerce.go).
	currency  string
	keyEvents []string
}

// BeginDerive begins site's derivation, or returns ErrSiteBusy when another
// transaction holds the site's lock. It never waits for the lock: a
// connection waiting in the pool for a lock would be one the holder may
// need (it resolves strings on other connections).
func (s *Store) BeginDerive(ctx context.Context, site uint32) (*DeriveTx, error) {
	tx, err := s.pool.Begin(ctx)
	if err != nil {
		return nil, fmt.Errorf("postgres: derive site %d: begin: %w", site, err)
	}
	d := &DeriveTx{s: s, tx: newBindRoomTx(tx), site: site, zone: time.UTC, currency: "USD", keyEvents: []string{"purchase"}}
	if err := d.begin(ctx); err != nil {
		d.Rollback(ctx)
		if errors.Is(err, ErrSiteBusy) {
			return nil, err
		}
		return nil, fmt.Errorf("postgres: derive site %d: %w", site, err)
	}
	return d, nil
}

func (d *DeriveTx) begin(ctx context.Context) error {
	// The derivation commits without waiting for its WAL to reach disk
	// (synchronous_commit off, this transaction only): what a database
	// crash can lose of it is its last few hundred milliseconds of
	// derivations, which roll back whole, leaving their staged rows
	// (committed synchronously by StageBatch) to be derived again.
	// Its statements are planned for their arrays at every execution
	// (plan_cache_mode, this transaction only): after five executions on
	// a connection the plan cache would otherwise settle on a generic
	// plan, which takes every array parameter for 10 elements and probes
	// the primary key once per rollup cell or session, where a derivation
	// of thousands of them costs PostgreSQL less CPU hashed (the custom
	// plans' choice). Planning a derivation's dozen statements costs far
	// less than the difference.
	var ok bool
	if err := d.tx.QueryRow(ctx, `SELECT pg_try_advisory_xact_lock($1, $2), set_config('synchronous_commit', 'off', true) <> '',
			set_config('plan_cache_mode', 'force_custom_plan', true) <> ''`,
		deriveLockSpace, int32(d.site)).Scan(&ok, new(bool), new(bool)); err != nil {
		return fmt.Errorf("lock: %w", err)
	}
	if !ok {
		return ErrSiteBusy
	}
	// FOR SHARE: a rollup or session rebuild of the site (FOR UPDATE)
	// never interleaves with a derivation. A site without a row counts in UTC.
	var name string
	switch err := d.tx.QueryRow(ctx, "SELECT time_zone, currency_code, key_events FROM sites WHERE id = $1 FOR SHARE",
		int32(d.site)).Scan(&name, &d.currency, &d.keyEvents); {
	case errors.Is(err, pgx.ErrNoRows):
	case err != nil:
		return fmt.Errorf("read time zone: %w", err)
	default:
		loc, err := time.LoadLocation(name)
		if err != nil {
			return fmt.Errorf("time zone %q: %w", name, err)
		}
		d.zone = loc
	}
	if err := d.tx.QueryRow(ctx, `INSERT INTO derive_state (site_id, gen, derived, node, derived_at) VALUES ($1, 1, 0, $2, now())
		ON CONFLICT (site_id) DO UPDATE SET gen = derive_state.gen + 1, node = $2, derived_at = now() RETURNING gen`,
		int32(d.site), d.s.node).Scan(&d.gen); err != nil {
		return fmt.Errorf("read generation: %w", err)
	}
	return nil
}

// Site is the site being derived.
func (d *DeriveTx) Site() uint32 { return d.site }

// Gen is the derivation's generation: the previous derivation of the site
// that committed had Gen-1.
func (d *DeriveTx) Gen() int64 { return d.gen }

// TakeInto returns the site's oldest staged rows not taken yet: at most
// maxRows, and no more once those taken hold maxEvents events (at least one
// row; the last may carry them past it). Commit deletes them.
//
// The rows' payloads are read into buf, one after the other from its
// start, not an array each (nil buf: a new one); it returns buf extended
// (in a new array when it had no room left: the payloads read into the
// old one stay intact). The payloads are the caller's until it passes
// buf to TakeInto again, which overwrites them.
func (d *DeriveTx) TakeInto(ctx context.Context, buf []byte, maxRows, maxEvents int) ([]StagedRow, []byte, error) {
	after := int64(0)
	if n := len(d.consumed); n > 0 {
		after = d.consumed[n-1]
	}
	// The running sum leaves out rows past maxEvents without reading
	// their payloads.
	rows, err := d.tx.Query(ctx, `SELECT id, events, payload FROM (
			SELECT id, events, payload, sum(events) OVER (ORDER BY id) - events AS before
			FROM staged_events WHERE site_id = $1 AND id > $2 ORDER BY id LIMIT $3) s
		WHERE before < $4 ORDER BY id`, int32(d.site), after, maxRows, maxEvents)
	if err != nil {
		return nil, buf, fmt.Errorf("postgres: derive site %d: take staged events: %w", d.site, err)
	}
	payloads := payloadArena{buf: buf[:0]}
	out, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (StagedRow, error) {
		var r StagedRow
		if err := row.Scan(&r.ID, &r.Events, &payloads); err != nil {
			return r, err
		}
		r.Payload = payloads.last
		return r, nil
	})
	if err != nil {
		return nil, payloads.buf, fmt.Errorf("postgres: derive site %d: take staged events: %w", d.site, err)
	}
	for _, r := range out {
		d.consumed = append(d.consumed, r.ID)
		d.events += int64(r.Events)
	}
	return out, payloads.buf, nil
}

// payloadArena scans bytea values one after the other into buf (pgx
// passes them to ScanBytes from its read buffer, valid for the call
// only), last being the one scanned last, capped at its length. A NULL
// is nil.
type payloadArena struct {
	buf, last []byte
}

func (a *payloadArena) ScanBytes(v []byte) error {
	if v == nil {
		a.last = nil
		return nil
	}
	if cap(a.buf)-len(a.buf) < len(v) {
		// A new array with room for more, not a grown copy: the
		// payloads read into the old one stay there.
		a.buf = make([]byte, 0, max(2*cap(a.buf), len(v)+len(v)/4, 64<<10))
	}
	start := len(a.buf)
	a.buf = append(a.buf, v...)
	a.last = a.buf[start:len(a.buf):len(a.buf)]
	return nil
}

// Untake gives back rows, the rows the last TakeInto returned, as if not
// taken: the derivation does not derive them, and Commit leaves them
// staged.
func (d *DeriveTx) Untake(rows []StagedRow) {
	d.consumed = d.consumed[:max(len(d.consumed)-len(rows), 0)]
	for _, r := range rows {
		d.events -= int64(r.Events)
	}
}

// EventDaysKnown reports whether the partitions of every UTC day the
// events fall on are known to exist (EnsureEventDays would create
// none). A derivation that wrote events must not create partitions: the
// events table's lock it holds would keep the creation waiting on it.
func (s *Store) EventDaysKnown(events []protocol.Event) bool {
	s.partMu.Lock()
	defer s.partMu.Unlock()
	last := int64(math.MinInt64)
	for i := range events {
		day := unixDayMicros(events[i].TimeMicros)
		if day != last && !s.parts[day] {
			return false
		}
		last = day
	}
	return true
}

// copyEventsSQL copies rows in binary COPY form (eventsCopyReader) into events.
var copyEventsSQL = "COPY events (" + strings.Join(EventColumns, ", ") + ") FROM STDIN (FORMAT binary)"

// CopyEvents writes rows (events of the site, sessions assigned) to events,
// encoding them as the COPY sends them (eventsCopyReader). Their days'
// partitions must exist (EnsureEventDays).
func (d *DeriveTx) CopyEvents(ctx context.Context, rows []EventRow) error {
	if len(rows) == 0 {
		return nil
	}
	tag, err := d.tx.Conn().PgConn().CopyFrom(ctx, newEventsCopyReader(rows), copyEventsSQL)
	if err != nil {
		d.noPartition(err)
		return fmt.Errorf("postgres: derive site %d: copy events: %w", d.site, err)
	}
	if tag.RowsAffected() != int64(len(rows)) {
		return fmt.Errorf("postgres: derive site %d: copy events: BUG: %d rows copied of %d", d.site, tag.RowsAffected(), len(rows))
	}
	return nil
}

// copyEventsBeside starts CopyEvents of rows on another goroutine and
// returns the channel that gives its error once it is done. Until then the
// transaction's connection is the COPY's: the caller must not use d, and
// must not write rows, before it has received from the channel (always,
// error or not, so no COPY outlives the derivation's statements).
func (d *DeriveTx) copyEventsBeside(ctx context.Context, rows []EventRow) <-chan error {
	done := make(chan error, 1)
	go func() { done <- d.CopyEvents(ctx, rows) }()
	return done
}

// noPartition forgets the partitions known to exist when err is
// PostgreSQL's for a row without a partition (check_violation): one was
// dropped after this process saw it, and the next derivation recreates it.
func (d *DeriveTx) noPartition(err error) {
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) && pgErr.Code == "23514" {
		d.s.forgetPartitions()
	}
}

// Commit writes the rollup deltas of chunks not written yet (AddEvents),
// deletes the staged rows taken, counts their events as derived and
// commits.
func (d *DeriveTx) Commit(ctx context.Context) error {
	if err := d.storeCells(ctx, nil); err != nil {
		return err
	}
	if len(d.consumed) > 0 {
		if _, err := d.tx.Exec(ctx, "DELETE FROM staged_events WHERE site_id = $1 AND id = ANY($2)", int32(d.site), d.consumed); err != nil {
			return fmt.Errorf("postgres: derive site %d: delete staged events: %w", d.site, err)
		}
		if _, err := d.tx.Exec(ctx, "UPDATE derive_state SET derived = derived + $2 WHERE site_id = $1", int32(d.site), d.events); err != nil {
			return fmt.Errorf("postgres: derive site %d: count derived events: %w", d.site, err)
		}
	}
	err := d.tx.Commit(ctx)
	if err != nil {
		d.noPartition(err)
		return fmt.Errorf("postgres: derive site %d: commit: %w", d.site, err)
	}
	return nil
}

// Rollback ends the transaction without deriving anything; a no-op after
// Commit.
func (d *DeriveTx) Rollback(ctx context.Context) {
	_ = d.tx.Rollback(context.WithoutCancel(ctx))
}

// StagedSite is a site with staged events; Elsewhere, when not zero, is
// how long the window StagedSites was given lasts past another Store's
// (another node's) latest start of a derivation of the site, by the
// database's clock.
type StagedSite struct {
	Site      uint32
	Elsewhere time.Duration
	// Events are the site's staged events; Oldest is how long ago its
	// oldest staged row was staged (the database's clock): its reports
	// lag its ingest by that much.
	Events int64
	Oldest time.Duration
}

// StagedSites returns the sites with staged events, by id, each with
// how long the last within lasts past another node's latest start of a
// derivation of it, and its backlog.
func (s *Store) StagedSites(ctx context.Context, within time.Duration) ([]StagedSite, error) {
	rows, err := s.pool.Query(ctx, `SELECT g.site_id, CASE WHEN d.node <> $1 AND d.derived_at > now() - $2::interval
			THEN (extract(epoch FROM d.derived_at + $2::interval - now()) * 1e6)::bigint ELSE 0 END,
			g.events, (extract(epoch FROM greatest(now() - g.oldest, '0'::interval)) * 1e6)::bigint
		FROM (SELECT site_id, sum(events)::bigint AS events, min(staged_at) AS oldest FROM staged_events GROUP BY site_id) g
		LEFT JOIN derive_state d ON d.site_id = g.site_id ORDER BY 1`,
		s.node, within)
	if err != nil {
		return nil, fmt.Errorf("postgres: staged sites: %w", err)
	}
	out, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (StagedSite, error) {
		var site int32
		var elsewhere, oldest, events int64
		err := row.Scan(&site, &elsewhere, &events, &oldest)
		return StagedSite{Site: uint32(site), Elsewhere: time.Duration(elsewhere) * time.Microsecond,
			Events: events, Oldest: time.Duration(oldest) * time.Microsecond}, err
	})
	if err != nil {
		return nil, fmt.Errorf("postgres: staged sites: %w", err)
	}
	return out, nil
}

// StagedEvents is the number of events staged and not derived yet, of
// site, or of every site when site is 0.
func (s *Store) StagedEvents(ctx context.Context, site uint32) (int64, error) {
	var n int64
	if err := s.pool.QueryRow(ctx, "SELECT coalesce(sum(events), 0) FROM staged_events WHERE $1 = 0 OR site_id = $1",
		int32(site)).Scan(&n); err != nil {
		return 0, fmt.Errorf("postgres: count staged events: %w", err)
	}
	return n, nil
}

// LastStagedID is the highest id of the staged rows committed so far (0:
// none staged).
func (s *Store) LastStagedID(ctx context.Context) (int64, error) {
	var id int64
	if err := s.pool.QueryRow(ctx, "SELECT coalesce(max(id), 0) FROM staged_events").Scan(&id); err != nil {
		return 0, fmt.Errorf("postgres: last staged id: %w", err)
	}
	return id, nil
}
