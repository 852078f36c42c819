package postgres

import (
	"context"
	"embed"
	"fmt"
	"io/fs"

	"github.com/jackc/tern/v2/migrate"
)

//go:embed migrations/*.sql
var migrationFiles embed.FS

// versionTable records the applied migration number (tern's format).
const versionTable = "public.schema_version"

// migrateLockKey is the advisory lock that serializes whole migration runs
// across processes (tern also locks each step; this one covers loading,
// checking and applying as one unit).
const migrateLockKey = int64(0x61766c615f6d6967) // "avla_mig"

// Migrate applies the embedded migrations that the database lacks. Several
// processes may call it at once: they queue on an advisory lock and the later
// ones find nothing left to do.
func (s *Store) Migrate(ctx context.Context) error { return s.migrateTo(ctx, -1, "aggregator") }

// MigrateAs is Migrate recording actor in the audit trail when it applied
// anything.
func (s *Store) MigrateAs(ctx context.Context, actor string) error {
	return s.migrateTo(ctx, -1, actor)
}

// MigrateTo applies the migrations up to version target (-1: all), for
// tests of a migration over data written with the schema before it.
func (s *Store) MigrateTo(ctx context.Context, target int32) error {
	return s.migrateTo(ctx, target, "aggregator")
}

func (s *Store) migrateTo(ctx context.Context, target int32, actor string) error {
	conn, err := s.pool.Acquire(ctx)
	if err != nil {
		return fmt.Errorf("postgres: migrate: acquire connection: %w", err)
	}
	defer conn.Release()
	if _, err := conn.Exec(ctx, "SELECT pg_advisory_lock($1)", migrateLockKey); err != nil {
		return fmt.Errorf("postgres: migrate: lock: %w", err)
	}
	defer func() {
		// Unlock on a fresh context: ctx may be done, and a connection
		// returned to the pool must not keep the lock.
		if _, err := conn.Exec(context.WithoutCancel(ctx), "SELECT pg_advisory_unlock($1)", migrateLockKey); err != nil {
			conn.Conn().Close(context.WithoutCancel(ctx))
		}
	}()
	m, err := migrate.NewMigrator(ctx, conn.Conn(), versionTable)
	if err != nil {
		return fmt.Errorf("postgres: migrate: %w", err)
	}
	sub, err := fs.Sub(migrationFiles, "migrations")
	if err != nil {
		return fmt.Errorf("postgres: migrate: %w", err)
	}
	if err := m.LoadMigrations(sub); err != nil {
		return fmt.Errorf("postgres: migrate: load: %w", err)
	}
	from, err := m.GetCurrentVersion(ctx)
	if err != nil {
		return fmt.Errorf("postgres: migrate: current version: %w", err)
	}
	to := int32(len(m.Migrations))
	if target >= 0 {
		to = target
	}
	if err := m.MigrateTo(ctx, to); err != nil {
		return fmt.Errorf("postgres: migrate: %w", err)
	}
	if to != from {
		s.log.Info("database migrated", "from", from, "to", to)
		if err := s.auditMigration(ctx, actor, from, to); err != nil {
			return err
		}
	}
	return nil
}
