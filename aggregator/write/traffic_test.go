package write

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/avila-analytics/avila/protocol"
	"github.com/avila-analytics/avila/storage/postgres"
	"github.com/google/go-cmp/cmp"
)

// TestWriteBatchSessionTraffic: a session's first event carries its
// source, medium, campaign and default channel group as dims, whether the
// sender marked it as a session start or the aggregator cut the session;
// its other events carry none.
func TestWriteBatchSessionTraffic(t *testing.T) {
	s := newStore(t)
	ctx := context.Background()
	site, _ := s.CreateSite(ctx, postgres.SiteSpec{Name: "a"})
	events := testEvents(site.ID, 5)
	events[0].Flags |= protocol.FlagSessionStart
	events[0].Path, events[0].Referrer = "/sale?utm_source=Newsletter&utm_medium=email&utm_campaign=May", "https://t.co/x"
	events[1].Visitor, events[1].SessionID = events[0].Visitor, events[0].SessionID
	events[1].Path = "/next?utm_source=ignored" // not a session start: no traffic
	events[2].Flags |= protocol.FlagSessionStart
	events[2].Path, events[2].Referrer = "/", "https://www.google.de/"
	events[3].Flags |= protocol.FlagSessionStart
	events[3].Path, events[3].Referrer = "/", ""
	// Unmarked, but its session's first event.
	events[4].Path, events[4].Referrer = "/l?utm_source=partner&utm_medium=affiliate", ""
	if _, err := s.WriteBatch(ctx, "agent-1", 1, events, nil); err != nil {
		t.Fatal(err)
	}
	rows, err := s.Pool.Query(ctx, `
		SELECT coalesce(s.value, ''), coalesce(m.value, ''), coalesce(c.value, ''), coalesce(g.value, '')
		FROM events e LEFT JOIN traffic_profiles tp ON tp.id = e.traffic_id
		LEFT JOIN dims s ON s.id = tp.source_id AND s.kind = $1
		LEFT JOIN dims m ON m.id = tp.medium_id AND m.kind = $2
		LEFT JOIN dims c ON c.id = tp.campaign_id AND c.kind = $3
		LEFT JOIN dims g ON g.id = tp.channel_id AND g.kind = $4
		WHERE e.flags & 256 = 0
		ORDER BY e.ts`, int16(postgres.DimSource), int16(postgres.DimMedium), int16(postgres.DimCampaign), int16(postgres.DimChannelGroup))
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var got [][4]string
	for rows.Next() {
		var r [4]string
		if err := rows.Scan(&r[0], &r[1], &r[2], &r[3]); err != nil {
			t.Fatal(err)
		}
		got = append(got, r)
	}
	want := [][4]string{
		{"newsletter", "email", "May", "Email"},
		{"", "", "", ""},
		{"google", "organic", "(organic)", "Organic Search"},
		{"(direct)", "(none)", "(direct)", "Direct"},
		{"partner", "affiliate", "(not set)", "Affiliates"},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Fatalf("traffic per event (-want +got):\n%s", diff)
	}
}

// TestFirstUserSourceAcrossDays: a persistent user's sessions carry the
// source of the user's first session as firstUserSource (GA4's user
// scope), a day or more later too, when memory of the first session is
// gone (another derivation, no session within a day); RebuildSessions
// gives the same, also once the first session's events are gone. A daily
// cookieless id starts over each day.
func TestFirstUserSourceAcrossDays(t *testing.T) {
	s := newStore(t)
	ctx := context.Background()
	site, _ := s.CreateSite(ctx, postgres.SiteSpec{Name: "a"})
	ev := testEvents(site.ID, 4)
	for i := range ev {
		ev[i].Visitor, ev[i].Flags, ev[i].SessionID = 77, protocol.FlagPersistent, int64(1000*(i+1))
		ev[i].TimeMicros = ev[0].TimeMicros + int64(i)*(50*time.Hour).Microseconds()
		ev[i].Referrer = ""
	}
	ev[0].Referrer = "https://www.google.de/"
	ev[3].Visitor, ev[3].Flags, ev[3].TimeMicros = 88, 0, ev[2].TimeMicros // cookieless, direct
	ev[2].Referrer = "https://news.example.org/a"
	for i := range ev {
		if _, err := s.WriteBatch(ctx, "a", uint64(i+1), ev[i:i+1], nil); err != nil {
			t.Fatal(err)
		}
	}
	sources := func() []string {
		t.Helper()
		return textRows(t, s, `SELECT s.visitor_id || ' ' || COALESCE(d.value, '') FROM sessions s
			LEFT JOIN dims d ON d.id = s.first_source_id WHERE s.site_id = $1 ORDER BY s.ts, s.visitor_id`, int32(site.ID))
	}
	want := []string{"77 google", "77 google", "77 google", "88 (direct)"}
	if got := sources(); !slices.Equal(got, want) {
		t.Fatalf("first user source per session: %q, want %q", got, want)
	}
	if err := s.RebuildSessions(ctx, site.ID); err != nil {
		t.Fatal(err)
	}
	if got := sources(); !slices.Equal(got, want) {
		t.Fatalf("after RebuildSessions: %q, want %q", got, want)
	}
	// With the first session's events gone (as retention drops them), a
	// rebuild keeps the known user's first source.
	if _, err := s.Pool.Exec(ctx, "DELETE FROM events WHERE site_id = $1 AND session_id = 1000", int32(site.ID)); err != nil {
		t.Fatal(err)
	}
	if err := s.RebuildSessions(ctx, site.ID); err != nil {
		t.Fatal(err)
	}
	if got := sources(); !slices.Equal(got, want[1:]) {
		t.Fatalf("after RebuildSessions without the first session: %q, want %q", got, want[1:])
	}
}
