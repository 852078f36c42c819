package write

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/avila-analytics/avila/internal/testenv"
	"github.com/avila-analytics/avila/protocol"
	"github.com/avila-analytics/avila/storage/postgres"
	"github.com/google/go-cmp/cmp"
	"github.com/jackc/pgx/v5"
)

// narrowVersion is the migration that narrows events (008).
const narrowVersion = 8

// newStoreAt is a store on a fresh database migrated up to version.
func newStoreAt(t *testing.T, version int32) *testStore {
	t.Helper()
	ctx := context.Background()
	url := testenv.PostgresURL(t)
	s, err := postgres.Open(ctx, url, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	if err := s.MigrateTo(ctx, version); err != nil {
		t.Fatal(err)
	}
	return &testStore{Store: s, url: url, Pool: testenv.Pool(t, url), w: New(Config{}, s)}
}

// createOldSite creates a site on a database at an older schema version,
// whose sites table lacks later columns (CreateSite needs them all).
func (s *testStore) createOldSite(t *testing.T, name, tz string) postgres.Site {
	t.Helper()
	if tz == "" {
		tz = "UTC"
	}
	var id int32
	if err := s.Pool.QueryRow(context.Background(), `INSERT INTO sites (measurement_id, api_secret, name, time_zone)
		VALUES ('G-' || upper(substr(md5(random()::text), 1, 10)), 'secret', $1, $2) RETURNING id`, name, tz).Scan(&id); err != nil {
		t.Fatal(err)
	}
	return postgres.Site{ID: uint32(id), Name: name, TimeZone: tz}
}

// eventFacts is every stored fact of every event of a site, strings
// resolved, in one stable order: what a report can read.
func eventFacts(t *testing.T, s *testStore, sql string) [][]string {
	t.Helper()
	rows, err := s.Pool.Query(context.Background(), sql)
	if err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) ([]string, error) {
		var v []string
		err := r.Scan(&v)
		return v, err
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// d is the SQL of a dims value by id, ” when absent.
func dimSQL(id string) string {
	return "COALESCE((SELECT value FROM dims WHERE id = " + id + "), '')"
}

// Migration 008 rewrites events written with the wide layout (002, 006)
// into the narrow one: every event keeps its time, visitor, session,
// strings, client and traffic dimensions, engagement, flags and params, and
// rollups rebuilt afterwards count the same.
func TestMigrationNarrowsEventsKeepingFacts(t *testing.T) {
	ctx := context.Background()
	s := newStoreAt(t, narrowVersion-1)
	site := s.createOldSite(t, "old", "Europe/Madrid")
	// Rows as the writer before 008 stored them: three days, two clients,
	// a session start with traffic, params on one event, NULL elsewhere.
	var ids [postgres.NumDimKinds + 1]int32
	for k, v := range []string{"", "page_view", "/a", "example.com", "A", "https://ref.example/", "de-de", "1920x1080",
		"DE", "Berlin", "Berlin", "Firefox", "Linux", "desktop", "newsletter", "email", "May", "Email"} {
		if k == 0 {
			continue
		}
		if err := s.Pool.QueryRow(ctx, "INSERT INTO dims (site_id, kind, value) VALUES ($1, $2, $3) RETURNING id",
			int32(site.ID), int16(k), v).Scan(&ids[k]); err != nil {
			t.Fatal(err)
		}
	}
	day := time.Date(2026, 3, 1, 10, 0, 0, 0, time.UTC)
	if err := s.EnsurePartitions(ctx, day, day.AddDate(0, 0, 2)); err != nil {
		t.Fatal(err)
	}
	for i := range 300 {
		client := ids[postgres.DimLanguage : postgres.DimDevice+1]
		if i%3 == 0 {
			client = make([]int32, 8) // a client with nothing known
		}
		traffic := []int32{0, 0, 0, 0}
		flags := int16(protocol.FlagEngaged)
		if i%50 == 0 {
			traffic = ids[postgres.DimSource : postgres.DimChannelGroup+1]
			flags |= int16(protocol.FlagSessionStart)
		}
		var params []byte // NULL
		if i == 7 {
			params = []byte{0x81, 0xa2, 'p', 's', 0x81, 0xa4, 'p', 'l', 'a', 'n', 0xa3, 'p', 'r', 'o'}
		}
		args := []any{int32(site.ID), day.Add(time.Duration(i) * 10 * time.Minute), int64(1000 + i%40), int64(i % 9),
			ids[postgres.DimEventName], ids[postgres.DimPagePath], ids[postgres.DimHost], ids[postgres.DimTitle], ids[postgres.DimReferrer], int32(i * 100), flags, params}
		for _, id := range append(append([]int32(nil), client...), traffic...) {
			args = append(args, id)
		}
		if _, err := s.Pool.Exec(ctx, `INSERT INTO events (site_id, ts, visitor_id, session_id, name_id, page_id, host_id,
				title_id, referrer_id, engagement_ms, flags, params,
				language_id, screen_id, country_id, region_id, city_id, browser_id, os_id, device_id,
				source_id, medium_id, campaign_id, channel_id)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20, $21, $22, $23, $24)`,
			args...); err != nil {
			t.Fatal(err)
		}
	}
	facts := func(content, client, traffic string) string {
		cols := []string{"e.ts::text", "e.visitor_id::text", "e.session_id::text", "e.site_id::text",
			dimSQL("e.name_id"), dimSQL("e.referrer_id")}
		for _, k := range postgres.ContentProfile.Kinds {
			cols = append(cols, dimSQL(content+postgres.DimColumns[k]))
		}
		for _, k := range postgres.ClientProfile.Kinds {
			cols = append(cols, dimSQL(client+postgres.DimColumns[k]))
		}
		for _, k := range postgres.TrafficProfile.Kinds {
			cols = append(cols, dimSQL(traffic+postgres.DimColumns[k]))
		}
		cols = append(cols, "e.engagement_ms::text", "e.flags::text", "COALESCE(encode(e.params, 'hex'), '')", "e.tableoid::regclass::text")
		sql := "SELECT ARRAY[" + cols[0]
		for _, c := range cols[1:] {
			sql += ", " + c
		}
		return sql + "] FROM events e"
	}
	before := eventFacts(t, s, facts("e.", "e.", "e.")+" ORDER BY e.ts")
	if len(before) != 300 {
		t.Fatalf("%d events before, want 300", len(before))
	}
	// What the rollups of the old rows must say, per kind and id.
	var counts []string
	for _, k := range []postgres.DimKind{postgres.DimPagePath, postgres.DimCountry, postgres.DimDevice, postgres.DimSource, postgres.DimChannelGroup} {
		counts = append(counts, "SELECT ARRAY["+fmt.Sprint(int(k))+"::text, "+postgres.DimColumns[k]+"::text, count(*)::text, sum(engagement_ms)::text] FROM events GROUP BY "+postgres.DimColumns[k])
	}
	rollupsBefore := eventFacts(t, s, strings.Join(counts, " UNION ALL ")+" ORDER BY 1")

	if err := s.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	after := eventFacts(t, s, facts("n.", "c.", "p.")+" LEFT JOIN content_profiles n ON n.id = e.content_id"+
		" LEFT JOIN client_profiles c ON c.id = e.client_id LEFT JOIN traffic_profiles p ON p.id = e.traffic_id ORDER BY e.ts")
	if diff := cmp.Diff(before, after); diff != "" {
		t.Fatalf("events changed by the migration (-before +after):\n%s", diff)
	}
	if n := count(t, s, "SELECT count(*) FROM client_profiles"); n != 1 {
		t.Errorf("%d client profiles, want 1 (the empty client is id 0)", n)
	}
	if n := count(t, s, "SELECT count(*) FROM content_profiles"); n != 1 {
		t.Errorf("%d content profiles, want 1", n)
	}
	if n := count(t, s, "SELECT count(*) FROM events WHERE client_id = 0"); n != 100 {
		t.Errorf("%d events without a client profile, want 100", n)
	}
	if n := count(t, s, "SELECT count(*) FROM events WHERE traffic_id <> 0"); n != 6 {
		t.Errorf("%d events with a traffic profile, want 6", n)
	}
	if n := count(t, s, "SELECT count(*) FROM pg_class WHERE relname LIKE 'events%wide%'"); n != 0 {
		t.Errorf("%d old tables left", n)
	}
	// Rollups of the migrated rows, rebuilt, are the same.
	if err := s.RebuildRollups(ctx, site.ID); err != nil {
		t.Fatal(err)
	}
	rollups := "SELECT ARRAY[kind::text, dim_id::text, sum(events)::text, sum(engagement_ms)::text] FROM " + rollupRowsSQL + " r " +
		"WHERE kind IN (2, 8, 13, 14, 17) GROUP BY kind, dim_id ORDER BY 1"
	if diff := cmp.Diff(rollupsBefore, eventFacts(t, s, rollups)); diff != "" {
		t.Fatalf("rollups rebuilt after the migration differ (-before +after):\n%s", diff)
	}
	// New batches go to the migrated partitions and reuse the profiles.
	ev := protocol.Event{Site: site.ID, TimeMicros: day.Add(time.Hour).UnixMicro(), Name: "page_view", Visitor: 5,
		Path: "/a", Host: "example.com", Title: "A", Referrer: "https://ref.example/", Language: "de-de", Screen: "1920x1080",
		Country: "DE", Region: "Berlin", City: "Berlin", Browser: "Firefox", OS: "Linux", Device: "desktop"}
	if _, err := s.WriteBatch(ctx, "agent", 1, []protocol.Event{ev}, nil); err != nil {
		t.Fatal(err)
	}
	if n := count(t, s, "SELECT count(*) FROM client_profiles"); n != 1 {
		t.Errorf("%d client profiles after a batch of a known client, want 1: %v", n,
			eventFacts(t, s, "SELECT ARRAY[id, site_id, language_id, screen_id, country_id, region_id, city_id, browser_id, os_id, device_id]::text[] FROM client_profiles"))
	}
	if n := count(t, s, "SELECT count(*) FROM events WHERE visitor_id = 5 AND client_id = (SELECT id FROM client_profiles) AND flags & 256 = 0"); n != 1 {
		t.Errorf("the new event is not stored with the migrated client profile")
	}
}

// A row without NULLs, columns in alignment order: the tuple header stays
// 24 bytes and an event without params takes 84 bytes of tuple (88 with
// alignment, 92 with its line pointer; commerce_id, migration 015, took
// the last 4).
func TestEventRowWidth(t *testing.T) {
	s := newStore(t)
	ctx := context.Background()
	site, _ := s.CreateSite(ctx, postgres.SiteSpec{Name: "w"})
	events := testEvents(site.ID, 10)
	if _, err := s.WriteBatch(ctx, "agent", 1, events, nil); err != nil {
		t.Fatal(err)
	}
	var width int
	if err := s.Pool.QueryRow(ctx, "SELECT max(pg_column_size(e.*)) FROM events e").Scan(&width); err != nil {
		t.Fatal(err)
	}
	if width != 84 {
		t.Fatalf("events row of %d bytes, want 84 (24 header + 60 data)", width)
	}
}
