package write

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/avila-analytics/avila/protocol"
	"github.com/avila-analytics/avila/storage/postgres"
)

// narrowSessionsVersion is the migration that narrows sessions (011).
const narrowSessionsVersion = 11

// Migration 011 rewrites sessions written with the wide layout (007) into
// the narrow one: every session keeps its times, counters, pages, client
// and traffic dimensions and flags, read through the profiles; and new
// batches write and extend sessions in the migrated partitions.
func TestMigrationNarrowsSessionsKeepingFacts(t *testing.T) {
	ctx := context.Background()
	s := newStoreAt(t, narrowSessionsVersion-1)
	site := s.createOldSite(t, "old", "Europe/Madrid")
	day := time.Date(2025, 9, 1, 0, 0, 0, 0, time.UTC)
	if err := s.EnsurePartitions(ctx, day, day.AddDate(0, 0, 2)); err != nil {
		t.Fatal(err)
	}
	dim := func(kind postgres.DimKind, value string) int32 {
		t.Helper()
		var id int32
		if err := s.Pool.QueryRow(ctx, `INSERT INTO dims (site_id, kind, value) VALUES ($1, $2, $3)
			ON CONFLICT (site_id, kind, value) DO UPDATE SET value = excluded.value RETURNING id`,
			int32(site.ID), kind, value).Scan(&id); err != nil {
			t.Fatal(err)
		}
		return id
	}
	// Rows as the writer before 011 stored them: three days, clients and
	// sources varying, some sessions without a client or a source.
	for i := range 60 {
		var client [8]int32
		if i%5 != 0 {
			client = [8]int32{dim(postgres.DimLanguage, "en-us"), dim(postgres.DimScreen, "1920x1080"), dim(postgres.DimCountry, []string{"ES", "FR"}[i%2]),
				0, 0, dim(postgres.DimBrowser, "Firefox"), dim(postgres.DimOS, "Linux"), dim(postgres.DimDevice, []string{"desktop", "mobile", "tablet"}[i%3])}
		}
		var traffic [4]int32
		if i%4 != 0 {
			traffic = [4]int32{dim(postgres.DimSource, []string{"google", "news.example.org", "mail"}[i%3]), dim(postgres.DimMedium, "organic"),
				dim(postgres.DimCampaign, "(organic)"), dim(postgres.DimChannelGroup, "Organic Search")}
		}
		ts := day.Add(time.Duration(i) * 71 * time.Minute)
		args := []any{ts, ts.Add(time.Duration(i) * time.Second), int64(100 + i), int64(i), int64(i * 10), int32(site.ID),
			int32(1 + i%4), int32(i % 3), int32(i % 2), dim(postgres.DimPagePath, fmt.Sprintf("/p/%d", i%6)), dim(postgres.DimPagePath, "/exit"),
			dim(postgres.DimHost, "example.com"), int32(0)}
		for _, id := range client {
			args = append(args, id)
		}
		for _, id := range traffic {
			args = append(args, id)
		}
		args = append(args, traffic[0], int16(i%3)|postgres.SessionFlagNew*int16(i%2))
		if _, err := s.Pool.Exec(ctx, `INSERT INTO sessions (ts, last_ts, visitor_id, session_id, engagement_ms, site_id,
				events, page_views, key_events, page_id, exit_page_id, host_id, referrer_id,
				language_id, screen_id, country_id, region_id, city_id, browser_id, os_id, device_id,
				source_id, medium_id, campaign_id, channel_id, first_source_id, flags)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20, $21,
				$22, $23, $24, $25, $26, $27)`, args...); err != nil {
			t.Fatal(err)
		}
	}
	const common = "s.ts::text, s.last_ts::text, s.visitor_id::text, s.session_id::text, s.engagement_ms::text, " +
		"s.events::text, s.page_views::text, s.key_events::text, s.flags::text"
	pages := dimSQL("s.page_id") + ", " + dimSQL("s.exit_page_id") + ", " + dimSQL("s.host_id") + ", " + dimSQL("s.first_source_id")
	facts := func(from string, col func(postgres.DimKind) string) [][]string {
		var list string
		for _, k := range slices.Concat(postgres.ClientProfile.Kinds, postgres.TrafficProfile.Kinds) {
			list += ", " + dimSQL(col(k))
		}
		return eventFacts(t, s, "SELECT ARRAY["+common+", "+pages+list+"] FROM "+from+" ORDER BY s.ts")
	}
	before := facts("sessions s", func(k postgres.DimKind) string { return "s." + postgres.DimColumns[k] })
	if len(before) != 60 {
		t.Fatalf("%d sessions before, want 60", len(before))
	}
	if err := s.MigrateTo(ctx, narrowSessionsVersion); err != nil {
		t.Fatal(err)
	}
	after := facts("sessions s LEFT JOIN client_profiles c ON c.id = s.client_id LEFT JOIN traffic_profiles p ON p.id = s.traffic_id",
		func(k postgres.DimKind) string {
			if postgres.ProfileOf(k) == postgres.ClientProfile {
				return "c." + postgres.DimColumns[k]
			}
			return "p." + postgres.DimColumns[k]
		})
	if diff := cmp.Diff(before, after); diff != "" {
		t.Fatalf("sessions changed by the migration (-before +after):\n%s", diff)
	}
	if n := count(t, s, "SELECT count(*) FROM sessions WHERE client_id = 0"); n != 12 {
		t.Errorf("%d sessions without a client profile, want 12", n)
	}
	if n := count(t, s, "SELECT count(*) FROM sessions WHERE traffic_id = 0"); n != 15 {
		t.Errorf("%d sessions without a traffic profile, want 15", n)
	}
	if n := count(t, s, "SELECT count(*) FROM pg_class WHERE relname LIKE 'sessions%wide%'"); n != 0 {
		t.Errorf("%d old tables or indexes left", n)
	}
	// With the later migrations (the write stage's tables among them), a
	// batch extends a migrated session (same visitor, id and start) and
	// starts a new one with a known client and source.
	first := day.Add(71 * time.Minute) // session 1
	evs := []protocol.Event{
		{Site: site.ID, TimeMicros: first.Add(5 * time.Minute).UnixMicro(), Name: "page_view", Visitor: 101, SessionID: 1,
			Path: "/p/1", Country: "FR", Device: "mobile"},
		{Site: site.ID, TimeMicros: day.Add(30 * time.Hour).UnixMicro(), Name: "page_view", Visitor: 999, Path: "/new",
			Referrer: "https://www.google.com/", Flags: protocol.FlagSessionStart, Language: "en-us", Screen: "1920x1080",
			Country: "ES", Browser: "Firefox", OS: "Linux", Device: "desktop"},
	}
	if err := s.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := s.WriteBatch(ctx, "agent", 1, evs, nil); err != nil {
		t.Fatal(err)
	}
	if n := count(t, s, "SELECT events FROM sessions WHERE visitor_id = 101 AND session_id = 1"); n != 3 {
		t.Errorf("migrated session holds %d events after the batch, want 3", n)
	}
	got := eventFacts(t, s, `SELECT ARRAY[`+dimSQL("c.country_id")+`, `+dimSQL("c.device_id")+`, `+dimSQL("p.source_id")+`]
		FROM sessions s JOIN client_profiles c ON c.id = s.client_id JOIN traffic_profiles p ON p.id = s.traffic_id
		WHERE s.visitor_id = 999`)
	if diff := cmp.Diff([][]string{{"ES", "desktop", "google"}}, got); diff != "" {
		t.Errorf("new session's client and source (-want +got):\n%s", diff)
	}
}

// A sessions row without NULLs, columns in alignment order: 24 bytes of
// header and 86 of data (112 with alignment, 116 with its line pointer).
func TestSessionRowWidth(t *testing.T) {
	s := newStore(t)
	ctx := context.Background()
	site, _ := s.CreateSite(ctx, postgres.SiteSpec{Name: "w"})
	if _, err := s.WriteBatch(ctx, "agent", 1, testEvents(site.ID, 10), nil); err != nil {
		t.Fatal(err)
	}
	var width, n int
	if err := s.Pool.QueryRow(ctx, "SELECT max(pg_column_size(s.*)), count(*) FROM sessions s").Scan(&width, &n); err != nil {
		t.Fatal(err)
	}
	if n == 0 || width != 110 {
		t.Fatalf("%d sessions rows of up to %d bytes, want 110 (24 header + 86 data)", n, width)
	}
}
