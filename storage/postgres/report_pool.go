package postgres

import (
	"context"
	"fmt"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// PoolOptions size and bound a connection pool. The zero value keeps pgx's
// defaults (and the URL's own pool_max_conns, options=…).
type PoolOptions struct {
	// MaxConns bounds the pool's connections; 0: pgx's default (the
	// URL's pool_max_conns, else max(4, CPUs)).
	MaxConns int32
	// StatementTimeout is PostgreSQL's statement_timeout on every
	// connection: the server cancels a statement running longer, even when
	// the client's own cancel never arrives. 0: the server's setting.
	StatementTimeout time.Duration
	// readOnly makes every transaction on the pool's connections read
	// only (default_transaction_read_only): reports read, never write.
	readOnly bool
}

func (o PoolOptions) apply(cfg *pgxpool.Config) {
	if o.MaxConns > 0 {
		cfg.MaxConns = o.MaxConns
	}
	if o.StatementTimeout > 0 {
		ms := max(1, o.StatementTimeout.Milliseconds())
		cfg.ConnConfig.RuntimeParams["statement_timeout"] = strconv.FormatInt(ms, 10)
	}
	if o.readOnly {
		cfg.ConnConfig.RuntimeParams["default_transaction_read_only"] = "on"
	}
}

// OpenReportPool opens a second pool on the store's database for reports,
// sized and bounded by o. Reports then never take the connections the
// write stage stages and derives batches on (the Store's own): however many
// long reports run, a batch commits without waiting for one of them.
// Its transactions are read only: the query engine runs its own SQL on
// it, and PostgreSQL refuses any statement of it that would write.
// The caller closes it after the store's users stop.
func OpenReportPool(ctx context.Context, databaseURL string, tracer pgx.QueryTracer, o PoolOptions) (*pgxpool.Pool, error) {
	o.readOnly = true
	pool, err := connectWith(ctx, databaseURL, tracer, o)
	if err != nil {
		return nil, fmt.Errorf("report pool: %w", err)
	}
	return pool, nil
}
