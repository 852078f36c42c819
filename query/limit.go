package query

import (
	"context"
	"sync"
	"sync/atomic"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// defaultPropertyConns is Options.PropertyConns when zero.
const defaultPropertyConns = 2

// propertySlots bound how many database statements (or read
// transactions) of one property run at once. A property's other requests
// wait for a slot (they are already admitted, so at most
// ConcurrentRequests of them wait, see quotas.admit) until their
// deadline, and the rest of the report pool stays free for other
// properties: a property's expensive reports queue behind each other, not
// in front of everyone else's.
type propertySlots struct {
	per     int
	metrics *QuotaMetrics
	mu      sync.Mutex
	m       map[uint32]*siteSlots
}

type siteSlots struct {
	ch    chan struct{}
	users int // requests holding or waiting for a slot; the entry goes at 0
}

func newPropertySlots(per int, m *QuotaMetrics) *propertySlots {
	if per <= 0 {
		per = defaultPropertyConns
	}
	return &propertySlots{per: per, metrics: m, m: map[uint32]*siteSlots{}}
}

// acquire waits for one of site's slots until ctx ends; release gives it
// back (once).
func (s *propertySlots) acquire(ctx context.Context, site uint32) (release func(), err error) {
	s.mu.Lock()
	e := s.m[site]
	if e == nil {
		e = &siteSlots{ch: make(chan struct{}, s.per)}
		s.m[site] = e
	}
	e.users++
	s.mu.Unlock()
	done := func() {
		s.mu.Lock()
		if e.users--; e.users == 0 {
			delete(s.m, site)
		}
		s.mu.Unlock()
	}
	select {
	case e.ch <- struct{}{}:
	default:
		s.metrics.wait(1)
		select {
		case e.ch <- struct{}{}:
			s.metrics.wait(-1)
		case <-ctx.Done():
			s.metrics.wait(-1)
			done()
			return nil, ctx.Err()
		}
	}
	var once sync.Once
	return func() {
		once.Do(func() {
			<-e.ch
			done()
		})
	}, nil
}

// usage is what one request read from PostgreSQL: statements run and rows
// received, for its token cost.
type usage struct {
	statements atomic.Int64
	rows       atomic.Int64
}

type usageKey struct{}

func withUsage(ctx context.Context) (context.Context, *usage) {
	u := &usage{}
	return context.WithValue(ctx, usageKey{}, u), u
}

// usageOf is the request's usage; a throwaway one outside a request.
func usageOf(ctx context.Context) *usage {
	if u, ok := ctx.Value(usageKey{}).(*usage); ok {
		return u
	}
	return &usage{}
}

// limitedDB runs a property's statements under its slots and counts them
// in the request's usage.
type limitedDB struct {
	d     db
	slots *propertySlots
	site  uint32
	use   *usage
}

func (l *limitedDB) Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error) {
	release, err := l.slots.acquire(ctx, l.site)
	if err != nil {
		return nil, err
	}
	l.use.statements.Add(1)
	rows, err := l.d.Query(ctx, sql, args...)
	if err != nil {
		release()
		return nil, err
	}
	return &countedRows{Rows: rows, release: release, use: l.use}, nil
}

// ConcurrentQueries reports whether l's statements may run at once (each
// under a slot of its own): l reads a pool, not a transaction
// (postgres.ConcurrentQuerier).
func (l *limitedDB) ConcurrentQueries() bool {
	_, ok := l.d.(*pgxpool.Pool)
	return ok
}

func (l *limitedDB) QueryRow(ctx context.Context, sql string, args ...any) pgx.Row {
	release, err := l.slots.acquire(ctx, l.site)
	if err != nil {
		return errRow{err}
	}
	l.use.statements.Add(1)
	l.use.rows.Add(1)
	return &releasedRow{row: l.d.QueryRow(ctx, sql, args...), release: release}
}

func (l *limitedDB) BeginTx(ctx context.Context, opts pgx.TxOptions) (pgx.Tx, error) {
	release, err := l.slots.acquire(ctx, l.site)
	if err != nil {
		return nil, err
	}
	tx, err := l.d.BeginTx(ctx, opts)
	if err != nil {
		release()
		return nil, err
	}
	return &limitedTx{Tx: tx, release: release, use: l.use}, nil
}

// countedRows counts the rows read and releases the slot once the rows
// are closed or read to the end.
type countedRows struct {
	pgx.Rows
	release func()
	use     *usage
}

func (r *countedRows) Next() bool {
	if r.Rows.Next() {
		r.use.rows.Add(1)
		return true
	}
	r.release()
	return false
}

func (r *countedRows) Close() {
	r.Rows.Close()
	r.release()
}

type releasedRow struct {
	row     pgx.Row
	release func()
}

func (r *releasedRow) Scan(dest ...any) error {
	defer r.release()
	return r.row.Scan(dest...)
}

type errRow struct{ err error }

func (r errRow) Scan(...any) error { return r.err }

// limitedTx holds its slot until it commits or rolls back, and counts its
// statements and rows.
type limitedTx struct {
	pgx.Tx
	release func()
	use     *usage
}

func (t *limitedTx) Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error) {
	t.use.statements.Add(1)
	rows, err := t.Tx.Query(ctx, sql, args...)
	if err != nil {
		return nil, err
	}
	return &countedRows{Rows: rows, release: func() {}, use: t.use}, nil
}

func (t *limitedTx) QueryRow(ctx context.Context, sql string, args ...any) pgx.Row {
	t.use.statements.Add(1)
	t.use.rows.Add(1)
	return t.Tx.QueryRow(ctx, sql, args...)
}

func (t *limitedTx) Commit(ctx context.Context) error {
	defer t.release()
	return t.Tx.Commit(ctx)
}

func (t *limitedTx) Rollback(ctx context.Context) error {
	defer t.release()
	return t.Tx.Rollback(ctx)
}
