package postgres

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
)

// partitionLockKey serializes partition creation across processes: two
// concurrent CREATE TABLE IF NOT EXISTS of the same table can otherwise fail
// on the catalog's unique indexes.
const partitionLockKey = int64(0x61766c615f707274) // "avla_prt"

// maxPartitionSpan bounds one EnsurePartitions call, so a bad time range
// cannot create thousands of tables.
const maxPartitionSpan = 400

// unixDay numbers UTC days since 1970-01-01.
func unixDay(t time.Time) int64 { return utcDay(t).Unix() / 86400 }

// unixDayMicros is unixDay(time.UnixMicro(us)), by a floor division
// instead of the time package's calendar walk to the day's midnight and
// back: the write path asks it for every event.
func unixDayMicros(us int64) int64 { return floorDiv(us, 86400*1_000_000) }

// floorDiv is a/b rounded towards minus infinity (b > 0): the day of an
// instant before 1970 is the one before its truncated quotient.
func floorDiv(a, b int64) int64 {
	q := a / b
	if a%b < 0 {
		q--
	}
	return q
}

// PartitionName is the name of the events partition holding t's UTC day.
func PartitionName(t time.Time) string { return "events_p" + utcDay(t).Format("20060102") }

// SessionsPartitionName is the name of the sessions partition holding the
// sessions that started on t's UTC day.
func SessionsPartitionName(t time.Time) string { return "sessions_p" + utcDay(t).Format("20060102") }

// EnsurePartitions creates the daily events, sessions and event_items partitions for the UTC days from
// through to, inclusive. Days already known to exist cost no database round
// trip, so the write path calls it for every batch.
func (s *Store) EnsurePartitions(ctx context.Context, from, to time.Time) error {
	first, last := unixDay(from), unixDay(to)
	if last < first {
		return fmt.Errorf("postgres: ensure partitions: %s is before %s", to.Format(time.DateOnly), from.Format(time.DateOnly))
	}
	if last-first >= maxPartitionSpan {
		return fmt.Errorf("postgres: ensure partitions: %d days requested, limit %d", last-first+1, maxPartitionSpan)
	}
	days := make([]int64, 0, last-first+1)
	for d := first; d <= last; d++ {
		days = append(days, d)
	}
	return s.ensureDays(ctx, days)
}

// ensureDays creates the partitions of the given Unix days that are not
// known to exist.
func (s *Store) ensureDays(ctx context.Context, days []int64) error {
	var missing []int64
	s.partMu.Lock()
	for _, d := range days {
		if !s.parts[d] {
			missing = append(missing, d)
		}
	}
	s.partMu.Unlock()
	if len(missing) == 0 {
		return nil
	}
	if err := s.createPartitions(ctx, missing); err != nil {
		return err
	}
	s.partMu.Lock()
	for _, d := range missing {
		s.parts[d] = true
	}
	s.partMu.Unlock()
	return nil
}

// forgetPartitions empties the cache of known partitions, for when rows found
// no partition (one was dropped behind this process's back).
func (s *Store) forgetPartitions() {
	s.partMu.Lock()
	clear(s.parts)
	s.partMu.Unlock()
}

func (s *Store) createPartitions(ctx context.Context, days []int64) error {
	tx, err := s.pool.Begin(ctx)
	if err != nil {
		return fmt.Errorf("postgres: ensure partitions: %w", err)
	}
	defer tx.Rollback(context.WithoutCancel(ctx)) // no-op after Commit
	if _, err := tx.Exec(ctx, "SELECT pg_advisory_xact_lock($1)", partitionLockKey); err != nil {
		return fmt.Errorf("postgres: ensure partitions: lock: %w", err)
	}
	// event_items is partitioned from migration 021 on; a database at an
	// older version (tests of earlier migrations) has it flat or not at all.
	var itemDays bool
	if err := tx.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM pg_partitioned_table WHERE partrelid = to_regclass('event_items'))").
		Scan(&itemDays); err != nil {
		return fmt.Errorf("postgres: ensure partitions: %w", err)
	}
	for _, d := range days {
		start := time.Unix(d*86400, 0).UTC()
		end := start.AddDate(0, 0, 1)
		// Identifiers and bounds come from formatted dates only, never input text.
		sql := fmt.Sprintf("CREATE TABLE IF NOT EXISTS %s PARTITION OF events FOR VALUES FROM ('%s') TO ('%s')",
			PartitionName(start), start.Format("2006-01-02 15:04:05+00"), end.Format("2006-01-02 15:04:05+00"))
		if _, err := tx.Exec(ctx, sql); err != nil {
			return fmt.Errorf("postgres: create partition %s: %w", PartitionName(start), err)
		}
		// Sessions starting that day: same bounds, so retention drops both.
		// Created apart and attached, which locks the sessions table only
		// in SHARE UPDATE EXCLUSIVE mode: batches read sessions before
		// they write events, so waiting for them here (as CREATE ... PARTITION
		// OF would) while holding events could deadlock.
		// Item rows of that day (migration 021) likewise: derivations
		// write them after their sessions and events.
		if err := attachPartition(ctx, tx, "sessions", SessionsPartitionName(start), start, end); err != nil {
			return err
		}
		if !itemDays {
			continue
		}
		if err := attachPartition(ctx, tx, "event_items", ItemsPartitionName(start), start, end); err != nil {
			return err
		}
	}
	if err := tx.Commit(ctx); err != nil {
		return fmt.Errorf("postgres: ensure partitions: commit: %w", err)
	}
	return nil
}

// SessionsFillFactor is the fill factor of sessions partitions: pages
// written by inserts keep 30% free for the new versions of the rows on
// them. A session is rewritten by every derivation that takes its events
// (about once a second while its visitor is active); on full pages the
// new version went to another page, with a new primary key entry, and the
// old one stayed until vacuumed. With room on the page the update is HOT
// (beside the old version, the index left alone) and the next update of
// the page prunes the old version. Six derivations rewriting 2,000
// sessions (TestSessionUpdatesStayOnPage) updated 2% HOT on full pages,
// 60% with 80 and 79% with 70, the table growing 6.8, 3.4 and 2.3 times;
// in the end-to-end bench the update statement took 17 µs a session row
// on full pages and 7.8 with 70 (2.3 and 1.4 WAL records, 6.8 and 3.3
// buffer accesses a row), its backend's CPU falling less than its time.
// Sessions inserted in bulk (a rebuild) take 1/0.7 of the room on disk.
// Migration 035 sets it on the partitions made before.
const SessionsFillFactor = 70

// partitionOptions are the storage parameters of the partitions
// attachPartition makes, by parent.
var partitionOptions = map[string]string{"sessions": fmt.Sprintf(" WITH (fillfactor = %d)", SessionsFillFactor)}

// attachPartition creates the partition name of parent for [start, end)
// unless it exists, apart and then attached (see createPartitions), with
// the parent's partitionOptions.
func attachPartition(ctx context.Context, tx pgx.Tx, parent, name string, start, end time.Time) error {
	var exists bool
	if err := tx.QueryRow(ctx, "SELECT to_regclass($1) IS NOT NULL", name).Scan(&exists); err != nil {
		return fmt.Errorf("postgres: create partition %s: %w", name, err)
	}
	if exists {
		return nil
	}
	// parent and name are fixed or made of formatted dates, never input.
	for _, sql := range []string{
		fmt.Sprintf("CREATE TABLE %s (LIKE %s INCLUDING DEFAULTS)%s", name, parent, partitionOptions[parent]),
		fmt.Sprintf("ALTER TABLE %s ATTACH PARTITION %s FOR VALUES FROM ('%s') TO ('%s')",
			parent, name, start.Format("2006-01-02 15:04:05+00"), end.Format("2006-01-02 15:04:05+00")),
	} {
		if _, err := tx.Exec(ctx, sql); err != nil {
			return fmt.Errorf("postgres: create partition %s: %w", name, err)
		}
	}
	return nil
}
