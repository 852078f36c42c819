package write

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/avila-analytics/avila/storage/postgres"
	"github.com/google/go-cmp/cmp"
)

// itemPacksVersion is the migration that partitions item rows by day and
// adds item_packs (021).
const itemPacksVersion = 21

// Migration 021 moves item rows written before it into day partitions
// (days of the events' partitions, and days only item rows hold), keeping
// every row; PackItems then packs the settled days and ItemsIn reads the
// same rows back from the packs, and late rows of a packed day too.
func TestMigrationPartitionsItemsAndPackingKeepsThem(t *testing.T) {
	ctx := context.Background()
	s := newStoreAt(t, itemPacksVersion-1)
	site := s.createOldSite(t, "items", "UTC")
	if _, err := s.Pool.Exec(ctx, `CREATE TABLE events_p20260301 PARTITION OF events
		FOR VALUES FROM ('2026-03-01 00:00:00+00') TO ('2026-03-02 00:00:00+00')`); err != nil {
		t.Fatal(err)
	}
	// 2026-03-01 has an events partition, 2026-03-05 item rows only.
	if _, err := s.Pool.Exec(ctx, `INSERT INTO event_items (ts, visitor_id, session_id, revenue, site_id, name_id, referrer_id,
			content_id, client_id, traffic_id, commerce_id, item_profile_id, list_id, promotion_id, quantity, flags)
		SELECT d + make_interval(mins => g), g % 7, g % 5, g * 1.25, $1, 3, 0, g % 3, 4, 0, g, g % 4 + 1, g % 2, 0, g % 3 + 1, g % 2
		FROM unnest(ARRAY['2026-03-01 00:00:00+00', '2026-03-05 00:00:00+00']::timestamptz[]) d, generate_series(1, 50) g`,
		int32(site.ID)); err != nil {
		t.Fatal(err)
	}
	const all = `SELECT array_agg(i::text ORDER BY i::text COLLATE "C") FROM `
	read := func(src string) []string {
		t.Helper()
		var out []string
		if err := s.Pool.QueryRow(ctx, all+src+" i", int32(site.ID), time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC),
			time.Date(2026, 3, 6, 0, 0, 0, 0, time.UTC)).Scan(&out); err != nil {
			t.Fatalf("%s: %v", src, err)
		}
		return out
	}
	rowsIn := "(SELECT " + strings.Join(postgres.ItemColumns(), ", ") + " FROM event_items WHERE site_id = $1 AND ts >= $2 AND ts < $3)"
	before := read(rowsIn)
	if len(before) != 100 {
		t.Fatalf("%d item rows before the migration, want 100", len(before))
	}
	if err := s.MigrateTo(ctx, itemPacksVersion); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(before, read(rowsIn)); diff != "" {
		t.Fatalf("item rows changed by the migration (-before +after):\n%s", diff)
	}
	var parts []string
	if err := s.Pool.QueryRow(ctx, `SELECT array_agg(c.relname::text ORDER BY c.relname) FROM pg_inherits i
		JOIN pg_class c ON c.oid = i.inhrelid WHERE i.inhparent = 'event_items'::regclass`).Scan(&parts); err != nil {
		t.Fatal(err)
	}
	if want := []string{"event_items_p20260301", "event_items_p20260305"}; !cmp.Equal(parts, want) {
		t.Fatalf("event_items partitions %v, want %v", parts, want)
	}
	s.SetPackPartEvents(30)
	if days, err := s.PackItems(ctx, time.Date(2026, 3, 20, 0, 0, 0, 0, time.UTC)); err != nil || days != 2 {
		t.Fatalf("packed %d days (%v), want 2", days, err)
	}
	var rows, packs, packed int
	if err := s.Pool.QueryRow(ctx, `SELECT (SELECT count(*) FROM event_items), count(*), COALESCE(sum(items), 0) FROM item_packs`).
		Scan(&rows, &packs, &packed); err != nil || rows != 0 || packs != 4 || packed != 100 {
		t.Fatalf("after packing: %d rows, %d packs holding %d items (%v); want 0, 4 and 100", rows, packs, packed, err)
	}
	if diff := cmp.Diff(before, read(postgres.ItemsIn("$1", "$2", "$3", postgres.ItemColumns()))); diff != "" {
		t.Fatalf("packed item rows read back differently (-rows +packs):\n%s", diff)
	}
	// Late item rows of a packed day: a new part after a last part of at
	// least half the size (20 of 30), merged into a last part smaller than
	// that (5) by the next pass; read with the rest either way.
	for i, wantParts := range []int{5, 5} {
		if _, err := s.Pool.Exec(ctx, `INSERT INTO event_items (ts, visitor_id, session_id, revenue, site_id, name_id, referrer_id,
				content_id, client_id, traffic_id, commerce_id, item_profile_id, list_id, promotion_id, quantity, flags)
			SELECT '2026-03-01 12:00:00+00'::timestamptz + make_interval(secs => g + $2), 9, 9, g, $1, 3, 0, 0, 4, 0, 0, 1, 0, 0, 1, 0
			FROM generate_series(1, 5) g`, int32(site.ID), i*10); err != nil {
			t.Fatal(err)
		}
		want := read(rowsIn)
		if days, err := s.PackItems(ctx, time.Date(2026, 3, 20, 0, 0, 0, 0, time.UTC)); err != nil || days != 1 {
			t.Fatalf("late pass %d: packed %d days (%v), want 1", i, days, err)
		}
		var last int
		if err := s.Pool.QueryRow(ctx, `SELECT count(*), (SELECT items FROM item_packs WHERE day = '2026-03-01' ORDER BY part DESC LIMIT 1)
			FROM item_packs`).Scan(&packs, &last); err != nil || packs != wantParts || last != 5*(i+1) {
			t.Fatalf("late pass %d: %d packs, the day's last holding %d items (%v); want %d and %d", i, packs, last, err, wantParts, 5*(i+1))
		}
		got := read(postgres.ItemsIn("$1", "$2", "$3", postgres.ItemColumns()))
		before = append(before, want...)
		slices.Sort(before)
		if diff := cmp.Diff(before, got); diff != "" {
			t.Fatalf("late pass %d: item rows read back differently (-want +got):\n%s", i, diff)
		}
	}
}
