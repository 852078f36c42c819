package postgres

import (
	"context"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// TestPackSettledPassesPartitionsItCouldNotTruncate: while an old snapshot
// still sees the moved rows, VACUUM cannot truncate the packed partitions,
// so they keep a size and are listed again. They must not take the next
// run's days: with one day more than a run packs, the second run packs
// that day (listing at most a run's days of partitions packed none of it
// until the snapshot ended, and a caller packing until 0 stopped there).
func TestPackSettledPassesPartitionsItCouldNotTruncate(t *testing.T) {
	ctx := context.Background()
	s := newStore(t)
	first := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	days := packEventDaysPerRun + 1
	last := first.AddDate(0, 0, days-1)
	if err := s.EnsurePartitions(ctx, first, last); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		table, insert string
		pack          func(context.Context, time.Time) (int, error)
	}{
		{"events", `INSERT INTO events (ts, visitor_id, session_id, site_id, name_id, referrer_id, content_id,
				client_id, traffic_id, engagement_ms, flags, params, commerce_id)
			SELECT $1::timestamptz + make_interval(days => g, hours => 12), g, g, 1, 1, 0, 0, 0, 0, 0, 0, ''::bytea, 0
			FROM generate_series(0, $2 - 1) g`, s.PackEvents},
		{"event_items", `INSERT INTO event_items (ts, visitor_id, session_id, revenue, site_id, name_id, referrer_id,
				content_id, client_id, traffic_id, commerce_id, item_profile_id, list_id, promotion_id, quantity, flags)
			SELECT $1::timestamptz + make_interval(days => g, hours => 12), g, g, 1, 1, 1, 0, 0, 0, 0, 0, 1, 0, 0, 1, 0
			FROM generate_series(0, $2 - 1) g`, s.PackItems},
	} {
		t.Run(tc.table, func(t *testing.T) {
			if _, err := s.pool.Exec(ctx, tc.insert, first, days); err != nil {
				t.Fatal(err)
			}
			old, err := s.pool.Acquire(ctx)
			if err != nil {
				t.Fatal(err)
			}
			defer old.Release()
			tx, err := old.BeginTx(ctx, pgx.TxOptions{IsoLevel: pgx.RepeatableRead})
			if err != nil {
				t.Fatal(err)
			}
			defer tx.Rollback(ctx)
			var seen int
			if err := tx.QueryRow(ctx, "SELECT count(*) FROM "+tc.table).Scan(&seen); err != nil || seen != days {
				t.Fatalf("the old snapshot sees %d rows (%v), want %d", seen, err, days)
			}
			now := last.AddDate(0, 0, 10)
			for i, want := range []int{packEventDaysPerRun, days - packEventDaysPerRun, 0} {
				n, err := tc.pack(ctx, now)
				if err != nil || n != want {
					t.Fatalf("run %d packed %d days (%v), want %d", i, n, err, want)
				}
			}
			var left, sized int
			if err := s.pool.QueryRow(ctx, "SELECT (SELECT count(*) FROM "+tc.table+`),
				(SELECT count(*) FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
				 WHERE i.inhparent = $1::regclass AND pg_relation_size(c.oid) > 0)`, tc.table).Scan(&left, &sized); err != nil {
				t.Fatal(err)
			}
			if left != 0 || sized != days {
				t.Fatalf("%d rows left, %d partitions with pages; want 0 and %d (the old snapshot holds them)", left, sized, days)
			}
			if err := tx.Rollback(ctx); err != nil {
				t.Fatal(err)
			}
			if n, err := tc.pack(ctx, now); err != nil || n != 0 {
				t.Fatalf("after the snapshot: packed %d days (%v), want 0", n, err)
			}
			if err := s.pool.QueryRow(ctx, `SELECT count(*) FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
				WHERE i.inhparent = $1::regclass AND pg_relation_size(c.oid) > 0`, tc.table).Scan(&sized); err != nil || sized != 0 {
				t.Fatalf("after the snapshot: %d partitions keep pages (%v), want 0", sized, err)
			}
		})
	}
}
