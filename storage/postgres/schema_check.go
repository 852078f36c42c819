package postgres

import (
	"context"
	"fmt"
	"io/fs"
)

// CheckSchema reports whether the database has every embedded migration
// applied: nil when it does, else an error saying which version it is at and
// what to run. It is cheap enough for a readiness probe (one row read).
func (s *Store) CheckSchema(ctx context.Context) error {
	files, err := fs.Glob(migrationFiles, "migrations/*.sql")
	if err != nil {
		return fmt.Errorf("postgres: check schema: %w", err)
	}
	var version int32
	if err := s.pool.QueryRow(ctx, "SELECT version FROM "+versionTable).Scan(&version); err != nil {
		return fmt.Errorf("postgres: check schema: read %s (has the database been migrated? run avila migrate): %w", versionTable, err)
	}
	if int(version) != len(files) {
		return fmt.Errorf("postgres: schema at version %d, this build needs %d (run avila migrate, or restart the aggregator)", version, len(files))
	}
	return nil
}
