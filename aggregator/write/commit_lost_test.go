package write

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/avila-analytics/avila/protocol"
	"github.com/avila-analytics/avila/storage/postgres"
)

// A dictionary or profile row is cached only once its insert committed. The
// insert and the select of its id run in one implicit transaction whose rows
// arrive before its commit; when the commit then fails (here a deferred
// trigger; under load, PostgreSQL crashing in between), a cached id would
// name a row that does not exist, and the resend of the batch would store
// events pointing at it: found by no join, lost to every report.
func TestWriteBatchCachesNoIDOfAFailedCommit(t *testing.T) {
	for _, table := range []string{"dims", "content_profiles", "client_profiles", "traffic_profiles"} {
		t.Run(table, func(t *testing.T) {
			s := newStore(t)
			ctx := context.Background()
			site, err := s.CreateSite(ctx, postgres.SiteSpec{Name: table})
			if err != nil {
				t.Fatal(err)
			}
			exec := func(sql string) {
				t.Helper()
				if _, err := s.Pool.Exec(ctx, sql); err != nil {
					t.Fatalf("%s: %v", sql, err)
				}
			}
			// Fails the commit of the first transaction inserting a row of
			// this site into table, after the row and its id were returned.
			exec(`CREATE FUNCTION fail_commit() RETURNS trigger LANGUAGE plpgsql AS
				$$BEGIN RAISE EXCEPTION 'commit refused by test'; END$$`)
			exec(fmt.Sprintf(`CREATE CONSTRAINT TRIGGER fail_commit AFTER INSERT ON %s
				DEFERRABLE INITIALLY DEFERRED FOR EACH ROW WHEN (NEW.site_id = %d)
				EXECUTE FUNCTION fail_commit()`, table, site.ID))

			e := protocol.Event{
				Site: site.ID, TimeMicros: time.Now().UnixMicro(), Name: "page_view", Visitor: 7, SessionID: 1,
				Flags: protocol.FlagSessionStart, Host: "example.com", Path: "/lost", Title: "Lost",
				Referrer: "https://news.example/", Language: "en-us", Country: "ES", Browser: "Firefox",
			}
			if _, err := s.WriteBatch(ctx, "agent-1", 1, []protocol.Event{e}, nil); err == nil {
				t.Fatal("batch stored although its rows of " + table + " did not commit")
			}
			exec("DROP TRIGGER fail_commit ON " + table)
			if _, err := s.WriteBatch(ctx, "agent-1", 1, []protocol.Event{e}, nil); err != nil {
				t.Fatalf("resend: %v", err)
			}
			// The event must be found through every dictionary and profile
			// it points at.
			n := count(t, s, `SELECT count(*) FROM events e
				JOIN content_profiles c ON c.id = e.content_id JOIN dims p ON p.id = c.page_id AND p.value = '/lost'
				JOIN dims h ON h.id = c.host_id AND h.value = 'example.com'
				JOIN client_profiles cl ON cl.id = e.client_id JOIN dims b ON b.id = cl.browser_id AND b.value = 'Firefox'
				JOIN traffic_profiles tp ON tp.id = e.traffic_id JOIN dims src ON src.id = tp.source_id
				JOIN dims r ON r.id = e.referrer_id AND r.value = 'https://news.example/'
				WHERE e.site_id = $1 AND e.flags & 256 = 0`, int32(site.ID))
			if n != 1 {
				t.Fatalf("%d events found through their dims and profiles, want 1 (of %d stored)",
					n, count(t, s, "SELECT count(*) FROM events WHERE site_id = $1", int32(site.ID)))
			}
		})
	}
}
