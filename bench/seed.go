package bench

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/avila-analytics/avila/storage/postgres"
)

// SeedEvents writes n generated events of site over [from, to) straight
// into events with COPY, with the dictionary and profiles they refer to
// (the data set behind the query figures), then rebuilds the site's
// rollups and sessions as the write stage would have written them. It is
// for tests that need a large property in seconds; the days' partitions
// are made first. The site must have no generated data yet. db is a pool
// on the store's database of the caller's own: the data set is written
// in bulk SQL and COPY, as no typed operation of the store writes it.
func SeedEvents(ctx context.Context, db *pgxpool.Pool, store *postgres.Store, site uint32, n int64, from, to time.Time) error {
	d, err := createDictionary(ctx, db, site)
	if err != nil {
		return err
	}
	contents, err := createContents(ctx, db, site, d)
	if err != nil {
		return err
	}
	clients, err := createClients(ctx, db, site, d)
	if err != nil {
		return err
	}
	traffic, err := createTraffic(ctx, db, site)
	if err != nil {
		return err
	}
	products, err := createProducts(ctx, store, site)
	if err != nil {
		return err
	}
	if err := store.EnsurePartitions(ctx, from, to); err != nil {
		return fmt.Errorf("bench: seed: %w", err)
	}
	conn, err := db.Acquire(ctx)
	if err != nil {
		return fmt.Errorf("bench: seed: %w", err)
	}
	defer conn.Release()
	// Purchase ids: a block of the event_commerce sequence as large as the
	// events could need, as loadDataset takes.
	var first int32
	if err := conn.QueryRow(ctx, `SELECT setval(pg_get_serial_sequence('event_commerce', 'id'),
		nextval(pg_get_serial_sequence('event_commerce', 'id')) + $1) - $1`, n).Scan(&first); err != nil {
		return fmt.Errorf("bench: seed: commerce ids: %w", err)
	}
	gen := newEventGen(site, d, contents, clients, traffic, from, to, n, 1).withProducts(products, first)
	if _, err := conn.CopyFrom(ctx, pgx.Identifier{"events"}, datasetCols, gen); err != nil {
		return fmt.Errorf("bench: seed: copy: %w", err)
	}
	if err := gen.writeCommerce(ctx, conn.Conn()); err != nil {
		return fmt.Errorf("bench: seed: %w", err)
	}
	if err := store.RebuildRollups(ctx, site); err != nil {
		return fmt.Errorf("bench: seed: %w", err)
	}
	if err := store.RebuildSessions(ctx, site); err != nil {
		return fmt.Errorf("bench: seed: %w", err)
	}
	if _, err := db.Exec(ctx, "ANALYZE events"); err != nil {
		return fmt.Errorf("bench: seed: analyze: %w", err)
	}
	return nil
}
