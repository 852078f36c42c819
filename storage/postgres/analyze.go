package postgres

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"
)

// analyzeFreshPerRun bounds one AnalyzeFresh call: after a restart that
// lost the statistics' counters, every partition counts as never
// analyzed, and the upkeep takes them a few at a time.
const analyzeFreshPerRun = 16

// AnalyzeFresh analyzes the partitions of events, sessions and event_items
// that PostgreSQL has never analyzed and that have had rows written, at
// most analyzeFreshPerRun per call, most written first, and returns how
// many it analyzed. Without statistics the planner takes a fresh
// partition for nearly empty, and a raw-events report over it (a session
// report's join of events to their sessions) is planned as a nested loop
// over every pair: after a bulk load (`avila import`, a new site's first
// minutes) such a report ran past its deadline until autovacuum got to the
// partition. Autovacuum keeps the statistics of analyzed partitions.
func (s *Store) AnalyzeFresh(ctx context.Context) (int, error) {
	rows, err := s.pool.Query(ctx, `SELECT c.relname FROM pg_inherits i
			JOIN pg_class c ON c.oid = i.inhrelid
			JOIN pg_stat_user_tables t ON t.relid = c.oid
		WHERE i.inhparent IN ('events'::regclass, 'sessions'::regclass, 'event_items'::regclass)
			AND t.last_analyze IS NULL AND t.last_autoanalyze IS NULL AND t.n_mod_since_analyze > 0
		ORDER BY t.n_mod_since_analyze DESC, c.relname LIMIT $1`, analyzeFreshPerRun)
	if err != nil {
		return 0, fmt.Errorf("postgres: analyze fresh partitions: list: %w", err)
	}
	names, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return 0, fmt.Errorf("postgres: analyze fresh partitions: list: %w", err)
	}
	for i, name := range names {
		if _, err := s.pool.Exec(ctx, "ANALYZE "+pgx.Identifier{name}.Sanitize()); err != nil {
			return i, fmt.Errorf("postgres: analyze %s: %w", name, err)
		}
	}
	return len(names), nil
}
