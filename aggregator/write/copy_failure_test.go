package write

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/avila-analytics/avila/protocol"
	"github.com/avila-analytics/avila/storage/postgres"
)

// writtenState is what a derivation writes besides its events: the
// sessions' and rollups' sums and row counts, the user-days, and the
// staged events left.
func writtenState(t *testing.T, s *testStore, site uint32) [7]int {
	t.Helper()
	id := int32(site)
	return [7]int{
		count(t, s, "SELECT count(*) FROM sessions WHERE site_id = $1", id),
		count(t, s, "SELECT coalesce(sum(events), 0) FROM sessions WHERE site_id = $1", id),
		count(t, s, "SELECT count(*) FROM rollup_days WHERE site_id = $1", id),
		count(t, s, "SELECT coalesce(sum(events), 0) FROM rollup_days WHERE site_id = $1 AND kind = 0", id),
		count(t, s, "SELECT coalesce(sum(events), 0) FROM session_rollups WHERE site_id = $1", id),
		count(t, s, "SELECT count(*) FROM rollup_user_days WHERE site_id = $1", id),
		count(t, s, "SELECT coalesce(sum(events), 0) FROM staged_events WHERE site_id = $1", id),
	}
}

// TestCopyFailureWritesNothing: the events' COPY runs beside the
// derivation's aggregation; when it fails (a row of a day whose partition
// was dropped, a context cancelled in the middle of the COPY), the
// derivation writes nothing, its staged rows stay, and the next one
// derives them once.
func TestCopyFailureWritesNothing(t *testing.T) {
	day := time.Date(2025, 3, 9, 10, 0, 0, 0, time.UTC)
	events := func(site uint32, from, n int) []protocol.Event {
		out := visitEvents(site, from, n)
		for i := range out {
			out[i].TimeMicros = day.Add(time.Duration(from+i) * time.Second).UnixMicro()
		}
		return out
	}
	for _, tc := range []struct {
		name string
		// fail makes the next derivation's COPY fail and returns the
		// context to derive in and what undoes the failure.
		fail func(t *testing.T, s *testStore) (context.Context, func())
	}{
		{"partition dropped", func(t *testing.T, s *testStore) (context.Context, func()) {
			// The store knows the partition from the first derivation:
			// the COPY is the first to find it missing.
			exec(t, s, "DROP TABLE "+postgres.PartitionName(day))
			return context.Background(), func() {}
		}},
		{"context cancelled", func(t *testing.T, s *testStore) (context.Context, func()) {
			// A row of visitor 7 holds the COPY until the context is
			// cancelled.
			exec(t, s, `CREATE FUNCTION hold_copy() RETURNS trigger LANGUAGE plpgsql AS
				$$BEGIN IF NEW.visitor_id = 7 THEN PERFORM pg_sleep(60); END IF; RETURN NEW; END$$`)
			exec(t, s, "CREATE TRIGGER hold_copy BEFORE INSERT ON events FOR EACH ROW EXECUTE FUNCTION hold_copy()")
			ctx, cancel := context.WithCancel(context.Background())
			go func() {
				defer cancel()
				for range 600 {
					var held bool
					if err := s.Pool.QueryRow(context.Background(), `SELECT EXISTS (SELECT 1 FROM pg_stat_activity
						WHERE datname = current_database() AND wait_event = 'PgSleep' AND query LIKE 'COPY events%')`).Scan(&held); err != nil || held {
						return
					}
					time.Sleep(50 * time.Millisecond)
				}
			}()
			return ctx, func() { exec(t, s, "DROP TRIGGER hold_copy ON events") }
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := newStore(t)
			ctx := context.Background()
			site, err := s.CreateSite(ctx, postgres.SiteSpec{Name: "copy"})
			if err != nil {
				t.Fatal(err)
			}
			if _, err := s.w.WriteBatch(ctx, "a", 1, events(site.ID, 0, 200), nil); err != nil {
				t.Fatal(err)
			}
			if err := s.w.Flush(ctx); err != nil {
				t.Fatal(err)
			}
			if _, err := s.w.WriteBatch(ctx, "a", 2, events(site.ID, 200, 100), nil); err != nil {
				t.Fatal(err)
			}
			failCtx, undo := tc.fail(t, s)
			eventRows := count(t, s, "SELECT count(*) FROM events WHERE site_id = $1", int32(site.ID))
			before := writtenState(t, s, site.ID)
			if before[6] != 100 {
				t.Fatalf("%d events staged, want 100", before[6])
			}
			if err := s.w.Flush(failCtx); err == nil {
				t.Fatal("derivation committed although its COPY failed")
			}
			if got := writtenState(t, s, site.ID); got != before {
				t.Fatalf("after the failed derivation: %v, want %v as before it", got, before)
			}
			if n := count(t, s, "SELECT count(*) FROM events WHERE site_id = $1", int32(site.ID)); n != eventRows {
				t.Fatalf("%d events rows after the failed derivation, want %d", n, eventRows)
			}
			undo()
			if err := s.w.Flush(ctx); err != nil {
				t.Fatalf("derivation after the failure: %v", err)
			}
			// The second batch's rows, its derived events included, are
			// counted once in events, sessions and rollups.
			added := count(t, s, "SELECT count(*) FROM events WHERE site_id = $1", int32(site.ID)) - eventRows
			own := count(t, s, "SELECT count(*) FROM events WHERE site_id = $1 AND flags & $2 <> 0 AND ts >= $3",
				int32(site.ID), postgres.EventFlagDerived, day.Add(200*time.Second))
			if added-own != 100 {
				t.Fatalf("%d events rows added (%d derived), want 100 staged", added, own)
			}
			after := writtenState(t, s, site.ID)
			if after[1]-before[1] != added || after[3]-before[3] != added || after[6] != 0 {
				t.Fatalf("sessions' events %d → %d, rollups' %d → %d, staged %d: want %d added, none staged",
					before[1], after[1], before[3], after[3], after[6], added)
			}
		})
	}
}

// exec runs sql on the test database.
func exec(t *testing.T, s *testStore, sql string) {
	t.Helper()
	if _, err := s.Pool.Exec(context.Background(), sql); err != nil {
		t.Fatal(fmt.Errorf("%s: %w", sql, err))
	}
}
