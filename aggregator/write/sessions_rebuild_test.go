package write

import (
	"context"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/avila-analytics/avila/protocol"
	"github.com/avila-analytics/avila/storage/postgres"
)

// allSessions returns a site's sessions rows, every column, as JSON text.
func allSessions(t *testing.T, s *testStore, site uint32) []string {
	t.Helper()
	rows, err := s.Pool.Query(context.Background(),
		`SELECT row_to_json(s)::text FROM sessions s WHERE site_id = $1 ORDER BY visitor_id, ts, session_id`, int32(site))
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var j string
		if err := rows.Scan(&j); err != nil {
			t.Fatal(err)
		}
		out = append(out, j)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// derivedEvents returns a site's derived events, every column, as text.
func derivedEvents(t *testing.T, s *testStore, site uint32) []string {
	t.Helper()
	return textRows(t, s, `SELECT concat_ws(' ', e.ts, e.visitor_id, e.session_id, n.value, e.referrer_id,
		e.content_id, e.client_id, e.traffic_id, e.engagement_ms, e.flags, length(e.params))
		FROM events e JOIN dims n ON n.id = e.name_id WHERE e.site_id = $1 AND e.flags & $2 <> 0 ORDER BY 1`, int32(site), postgres.EventFlagDerived)
}

// TestRebuildSessions writes visits through WriteBatch (GA4 session ids and
// inactivity sessions, across midnight and batches, with referrers,
// campaigns, first visits, key events and engagement), then drops the
// sessions rows and rebuilds them from the events alone: every column of
// every row comes back as WriteBatch wrote it.
func TestRebuildSessions(t *testing.T) {
	s := newStore(t)
	ctx := context.Background()
	site, err := s.CreateSite(ctx, postgres.SiteSpec{Name: "rebuild", Domains: []string{"shop.test"}})
	if err != nil {
		t.Fatal(err)
	}
	at := time.Date(2025, 6, 1, 23, 40, 0, 0, time.UTC)
	ev := func(visitor uint64, sid int64, d time.Duration, name, path, ref string) protocol.Event {
		return protocol.Event{Site: site.ID, Visitor: visitor, SessionID: sid, TimeMicros: at.Add(d).UnixMicro(), Name: name,
			Host: "shop.test", Path: path, Title: "T " + path, Referrer: ref, Country: "DE", City: "Berlin", Device: "mobile",
			Browser: "Firefox", OS: "Android", Language: "de-de", Screen: "412x915", EngageMs: int64(d / time.Millisecond % 7000)}
	}
	var batches [3][]protocol.Event
	for v := uint64(1); v <= 12; v++ {
		sid := int64(0) // inactivity sessions for some visitors
		if v%3 != 0 {
			sid = at.Unix() + int64(v)
		}
		ref := []string{"", "https://www.google.com/", "https://news.example/a"}[v%3]
		landing := "/landing-" + string(rune('a'+v%4))
		if v%4 == 1 {
			landing += "?utm_source=mail&utm_medium=email&utm_campaign=june"
		}
		first := ev(v, sid, time.Duration(v)*time.Minute, "page_view", landing, ref)
		first.Flags = protocol.FlagSessionStart
		if v%2 == 0 {
			first.Flags |= protocol.FlagFirstVisit
		}
		buy := ev(v, sid, time.Duration(v)*time.Minute+20*time.Second, "purchase", "", "")
		buy.Flags = protocol.FlagKeyEvent
		batches[0] = append(batches[0], first, buy)
		// Past midnight, in the next batch: the same session goes on.
		batches[1] = append(batches[1], ev(v, sid, time.Duration(v+25)*time.Minute, "page_view", "/next", ""),
			ev(v, sid, time.Duration(v+26)*time.Minute, "scroll", "", ""))
		// Two hours later: a new session (new GA4 id, or past 30 minutes).
		later := sid
		if sid != 0 {
			later = sid + 7200
		}
		again := ev(v, later, 165*time.Minute, "page_view", "/again", "https://www.bing.com/")
		again.Flags = protocol.FlagSessionStart
		batches[2] = append(batches[2], again, ev(v, later, 166*time.Minute, "page_view", "/exit", ""))
	}
	for i, b := range batches {
		if _, err := s.WriteBatch(ctx, "rebuild", uint64(i+1), b, nil); err != nil {
			t.Fatal(err)
		}
	}
	want := allSessions(t, s, site.ID)
	if len(want) != 24 {
		t.Fatalf("WriteBatch wrote %d sessions, want 24 (two per visitor)", len(want))
	}
	wantDerived := derivedEvents(t, s, site.ID)
	if len(wantDerived) != 24+12 { // a session_start per session, a first_visit per visitor
		t.Fatalf("WriteBatch derived %d events, want 36", len(wantDerived))
	}
	// The events as a bulk load leaves them: no sessions, no derived events.
	if _, err := s.Pool.Exec(ctx, "DELETE FROM sessions WHERE site_id = $1", int32(site.ID)); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Pool.Exec(ctx, "DELETE FROM events WHERE site_id = $1 AND flags & $2 <> 0", int32(site.ID), postgres.EventFlagDerived); err != nil {
		t.Fatal(err)
	}
	if err := s.RebuildSessions(ctx, site.ID); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(want, allSessions(t, s, site.ID)); diff != "" {
		t.Fatalf("rebuilt sessions differ from those WriteBatch wrote (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(wantDerived, derivedEvents(t, s, site.ID)); diff != "" {
		t.Fatalf("rebuilt derived events differ from those WriteBatch wrote (-want +got):\n%s", diff)
	}
	// Rebuilding again replaces, never adds.
	if err := s.RebuildSessions(ctx, site.ID); err != nil {
		t.Fatal(err)
	}
	if got := allSessions(t, s, site.ID); len(got) != len(want) {
		t.Fatalf("a second rebuild left %d sessions, want %d", len(got), len(want))
	}
	if got := derivedEvents(t, s, site.ID); len(got) != len(wantDerived) {
		t.Fatalf("a second rebuild left %d derived events, want %d", len(got), len(wantDerived))
	}
	if err := s.RebuildSessions(ctx, 9999); err == nil {
		t.Fatal("rebuilding an unknown site succeeded")
	}
}
