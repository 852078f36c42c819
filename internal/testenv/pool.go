package testenv

import (
	"context"
	"testing"

	"github.com/jackc/pgx/v5/pgxpool"
)

// Pool opens a connection pool of the test's own on the database at url,
// closed when t ends: for fixtures and checks a test writes in SQL. The
// store keeps its own pool to itself (storage/postgres), so a test reads
// what was committed as any other client would.
func Pool(t testing.TB, url string) *pgxpool.Pool {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), setupTimeout)
	defer cancel()
	pool, err := pgxpool.New(ctx, url)
	if err != nil {
		t.Fatalf("testenv: open a pool: %v", err)
	}
	if err := pool.Ping(ctx); err != nil {
		pool.Close()
		t.Fatalf("testenv: open a pool: %v", err)
	}
	t.Cleanup(pool.Close)
	return pool
}
