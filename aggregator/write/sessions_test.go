package write

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/avila-analytics/avila/aggregator/sessions"
	"github.com/avila-analytics/avila/protocol"
	"github.com/avila-analytics/avila/storage/postgres"
	"github.com/google/go-cmp/cmp"
)

// sessionTestRow is a sessions row with its dictionary values.
type sessionTestRow struct {
	Visitor, ID                 int64
	Start, Last                 string
	Events, Views, Keys         int
	Flags                       int
	Landing, Exit, Source, FSrc string
	Device                      string
}

func storedSessions(t *testing.T, s *testStore, site uint32) []sessionTestRow {
	t.Helper()
	rows, err := s.Pool.Query(context.Background(), `SELECT s.visitor_id, s.session_id, to_char(s.ts AT TIME ZONE 'UTC', 'HH24:MI:SS'),
		to_char(s.last_ts AT TIME ZONE 'UTC', 'HH24:MI:SS'), s.events, s.page_views, s.key_events, s.flags,
		COALESCE(l.value, ''), COALESCE(x.value, ''), COALESCE(src.value, ''), COALESCE(fs.value, ''), COALESCE(d.value, '')
		FROM sessions s LEFT JOIN dims l ON l.id = s.page_id LEFT JOIN dims x ON x.id = s.exit_page_id
		LEFT JOIN traffic_profiles t ON t.id = s.traffic_id LEFT JOIN client_profiles c ON c.id = s.client_id
		LEFT JOIN dims src ON src.id = t.source_id LEFT JOIN dims fs ON fs.id = s.first_source_id
		LEFT JOIN dims d ON d.id = c.device_id
		WHERE s.site_id = $1 ORDER BY s.visitor_id, s.ts`, int32(site))
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var out []sessionTestRow
	for rows.Next() {
		var r sessionTestRow
		if err := rows.Scan(&r.Visitor, &r.ID, &r.Start, &r.Last, &r.Events, &r.Views, &r.Keys, &r.Flags,
			&r.Landing, &r.Exit, &r.Source, &r.FSrc, &r.Device); err != nil {
			t.Fatal(err)
		}
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// TestWriteBatchSessions writes a visitor's events over several batches
// and checks the session rows, derived by one node that remembers the
// sessions it derived, by a new node for each batch (database look-ups
// only), and by two nodes taking turns (each must notice the other
// derived the site in between and forget what it remembers).
func TestWriteBatchSessions(t *testing.T) {
	for _, tc := range []struct {
		name   string
		writer func(s *testStore, i int) *Writer
	}{
		{"memory", func(s *testStore, _ int) *Writer { return s.w }},
		{"database", func(s *testStore, _ int) *Writer { return New(Config{}, s.Store) }},
		{"two nodes", func(s *testStore, i int) *Writer {
			if i%2 == 1 {
				return s.w
			}
			if s.other == nil {
				s.other = New(Config{}, s.Store)
			}
			return s.other
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := newStore(t)
			s.writer = func(i int) *Writer { return tc.writer(s, i) }
			ctx := context.Background()
			site, _ := s.CreateSite(ctx, postgres.SiteSpec{Name: "a"})
			at := time.Date(2025, 6, 1, 23, 40, 0, 0, time.UTC) // sessions run past midnight
			e := func(visitor uint64, d time.Duration, name, path string) protocol.Event {
				return protocol.Event{Site: site.ID, Visitor: visitor, TimeMicros: at.Add(d).UnixMicro(), Name: name, Path: path,
					Referrer: "https://www.google.com/", Device: "mobile"}
			}
			const a, b = 1, 2
			sidEvent := func(d time.Duration, sct int32) protocol.Event {
				x := e(b, d, "page_view", "/s")
				x.SessionID, x.SessionNum, x.Referrer, x.Device = 1748814000, sct, "", "desktop"
				return x
			}
			batch1 := []protocol.Event{e(a, 0, "page_view", "/a?utm_source=news"), e(a, 5*time.Second, "click", ""), sidEvent(0, 3)}
			batch1[1].Flags = protocol.FlagKeyEvent
			batch2 := []protocol.Event{e(a, 29*time.Minute, "page_view", "/b"), sidEvent(2*time.Hour, 3)}
			batch3 := []protocol.Event{e(a, 60*time.Minute, "page_view", "/c")} // 31 minutes after /b
			for i, batch := range [][]protocol.Event{batch1, batch2, batch3} {
				if _, err := s.WriteBatch(ctx, "ag", uint64(i+1), batch, nil); err != nil {
					t.Fatal(err)
				}
			}
			// Each session holds a derived session_start, a new user's
			// first session a derived first_visit too (their flags).
			start, first := int(protocol.FlagSessionStart), int(protocol.FlagFirstVisit)
			want := []sessionTestRow{
				{Visitor: a, ID: at.Unix(), Start: "23:40:00", Last: "00:09:00", Events: 3 + 2, Views: 2, Keys: 1,
					Flags: int(protocol.FlagKeyEvent|uint8(postgres.SessionFlagNew)) | start | first, Landing: "/a?utm_source=news", Exit: "/b",
					Source: "news", FSrc: "news", Device: "mobile"},
				{Visitor: a, ID: at.Add(60 * time.Minute).Unix(), Start: "00:40:00", Last: "00:40:00", Events: 1 + 1, Views: 1,
					Flags: start, Landing: "/c", Exit: "/c", Source: "google", FSrc: "news", Device: "mobile"},
				// sct 3: returning, though the first session of its visitor id.
				{Visitor: b, ID: 1748814000, Start: "23:40:00", Last: "01:40:00", Events: 2 + 1, Views: 2,
					Flags: start, Landing: "/s", Exit: "/s", Source: "(direct)", FSrc: "(direct)", Device: "desktop"},
			}
			if diff := cmp.Diff(want, storedSessions(t, s, site.ID)); diff != "" {
				t.Fatalf("sessions (-want +got):\n%s", diff)
			}
			// A resent batch is a duplicate and changes no session.
			if res, err := s.WriteBatch(ctx, "ag", 2, batch2, nil); err != nil || !res.Duplicate {
				t.Fatalf("resend: %+v, %v", res, err)
			}
			if diff := cmp.Diff(want, storedSessions(t, s, site.ID)); diff != "" {
				t.Fatalf("sessions after a resend (-want +got):\n%s", diff)
			}
			// Events carry their session's id.
			if n := count(t, s, `SELECT count(*) FROM events e JOIN sessions s USING (site_id, visitor_id, session_id) WHERE e.site_id = $1`, int32(site.ID)); n != 6+4 {
				t.Errorf("%d events joined their session, want 6 sent and 4 derived", n)
			}
		})
	}
}

// TestWriteBatchSessionsConcurrent: batches holding consecutive events of
// the same visitors (as an agent's in-flight segments do), written at once,
// continue each other's sessions instead of each starting one.
func TestWriteBatchSessionsConcurrent(t *testing.T) {
	s := newStore(t)
	ctx := context.Background()
	site, _ := s.CreateSite(ctx, postgres.SiteSpec{Name: "c"})
	at := time.Date(2025, 6, 1, 10, 0, 0, 0, time.UTC)
	const batches, visitors = 8, 20
	var wg sync.WaitGroup
	errs := make(chan error, batches)
	for b := range batches {
		var events []protocol.Event
		for v := range visitors {
			events = append(events, protocol.Event{Site: site.ID, Visitor: uint64(v + 1), Name: "page_view", Path: "/",
				TimeMicros: at.Add(time.Duration(b) * time.Minute).UnixMicro()})
		}
		wg.Go(func() {
			if _, err := s.WriteBatch(ctx, "c", uint64(b+1), events, nil); err != nil {
				errs <- err
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if n := count(t, s, "SELECT count(*) FROM sessions WHERE site_id = $1", int32(site.ID)); n != visitors {
		t.Errorf("%d sessions, want one per visitor (%d)", n, visitors)
	}
	// Each session also holds its derived session_start and first_visit.
	if n := count(t, s, "SELECT sum(events) FROM sessions WHERE site_id = $1", int32(site.ID)) - 2*visitors; n != batches*visitors {
		t.Errorf("sessions hold %d events, want %d", n, batches*visitors)
	}
}

// TestSiteMeasureOutlivesMemory: when another node derived a site, the
// sessions remembered go but the measure of the events its chunks add
// stays, so the next chunk is sized by it and not as a first one.
func TestSiteMeasureOutlivesMemory(t *testing.T) {
	w := New(Config{MaxEvents: 1000}, nil)
	s := w.siteSessions(7, -1)
	if got := s.chunkEvents(1000); got != 1000*5/4/3+1 {
		t.Fatalf("first chunk takes %d staged events, want room for two added each: %d", got, 1000*5/4/3+1)
	}
	s.chunkAdded(1000, 100)
	s.gen = 4
	next := w.siteSessions(7, 9) // generation 9 was another node's
	if next == s {
		t.Fatal("the memory of the site outlived another node's derivation")
	}
	if got := next.chunkEvents(1000); got != 1000 {
		t.Fatalf("after a chunk that added a tenth, the next takes %d staged events, want 1000", got)
	}
	if got := next.expectAdded(1000); got != 100 {
		t.Fatalf("expected %d added events of 1000 staged, want 100", got)
	}
}

// TestSessionMemoryBoundAcrossSites: the memories of the sites a Writer
// derives hold at most memoryMax visitors together; past it, those of
// the sites derived least recently are emptied, never the one beginning
// its derivation, and the sites keep their measure of added events.
func TestSessionMemoryBoundAcrossSites(t *testing.T) {
	w := New(Config{MaxEvents: 1000}, nil)
	w.memoryMax = 250
	fill := func(site uint32, n int) {
		latest := make(map[sessions.Key]sessions.Session, n)
		for v := range n {
			latest[sessions.Key{Site: site, Visitor: uint64(v + 1)}] = sessions.Session{ID: int64(v + 1), Start: 1, Last: 2}
		}
		s := w.siteSessions(site, -1)
		_ = s.mem.Put(context.Background(), latest)
		s.chunkAdded(100, 10)
	}
	fill(1, 100)
	fill(2, 100)
	fill(3, 40) // 240 in all
	if got := w.sites[1].mem.Len() + w.sites[2].mem.Len() + w.sites[3].mem.Len(); got != 240 {
		t.Fatalf("memories hold %d visitors under the bound, want all 240", got)
	}
	fill(3, 100) // site 3 now holds 100: 300 in all, past 250
	w.siteSessions(2, -1)
	if got := w.sites[1].mem.Len(); got != 0 {
		t.Errorf("site 1, derived least recently, still remembers %d visitors", got)
	}
	if w.sites[2].mem.Len() != 100 || w.sites[3].mem.Len() != 100 {
		t.Errorf("sites 2 and 3 remember %d and %d visitors, want 100 each", w.sites[2].mem.Len(), w.sites[3].mem.Len())
	}
	if got := w.sites[1].expectAdded(1000); got != 100 {
		t.Errorf("site 1 expects %d added events of 1000 staged after its memory went, want its measure's 100", got)
	}
	// One site alone past the bound keeps its memory (siteMemoryMax bounds it).
	fill(4, 300)
	w.siteSessions(4, -1)
	if got := w.sites[4].mem.Len(); got != 300 {
		t.Errorf("the site beginning its derivation remembers %d visitors, want its 300", got)
	}
	for _, site := range []uint32{1, 2, 3} {
		if n := w.sites[site].mem.Len(); n != 0 {
			t.Errorf("site %d remembers %d visitors beside a site past the bound alone", site, n)
		}
	}
}
