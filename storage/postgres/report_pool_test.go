package postgres

import (
	"context"
	"errors"
	"testing"

	"github.com/jackc/pgx/v5/pgconn"
)

// TestReportPoolReadsOnly: the report pool reads what the store wrote, and
// PostgreSQL refuses a write on it, so the query engine's own SQL cannot
// change a table.
func TestReportPoolReadsOnly(t *testing.T) {
	ctx := context.Background()
	s := newStore(t)
	site, err := s.CreateSite(ctx, SiteSpec{Name: "read only"})
	if err != nil {
		t.Fatal(err)
	}
	reports, err := OpenReportPool(ctx, s.pool.Config().ConnString(), nil, PoolOptions{MaxConns: 2})
	if err != nil {
		t.Fatal(err)
	}
	defer reports.Close()
	var name string
	if err := reports.QueryRow(ctx, "SELECT name FROM sites WHERE id = $1", int32(site.ID)).Scan(&name); err != nil || name != "read only" {
		t.Fatalf("report pool reading a site: %q, %v", name, err)
	}
	_, err = reports.Exec(ctx, "UPDATE sites SET name = 'changed' WHERE id = $1", int32(site.ID))
	var pgErr *pgconn.PgError
	if !errors.As(err, &pgErr) || pgErr.Code != "25006" {
		t.Fatalf("a write on the report pool: %v, want read_only_sql_transaction (25006)", err)
	}
	if err := s.pool.QueryRow(ctx, "SELECT name FROM sites WHERE id = $1", int32(site.ID)).Scan(&name); err != nil || name != "read only" {
		t.Fatalf("site after the refused write: %q, %v", name, err)
	}
}
