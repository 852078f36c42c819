package write

import (
	"context"
	"testing"

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
