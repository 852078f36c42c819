package write

import (
	"context"
	"fmt"
	"math"
	"sync"
	"testing"
	"time"

	"github.com/avila-analytics/avila/protocol"
	"github.com/avila-analytics/avila/storage/postgres"
	"github.com/google/go-cmp/cmp"
)

var day0 = time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)

// testEvents makes n events for site spread over two UTC days, sharing a few
// pages so dictionary rows are reused.
func testEvents(site uint32, n int) []protocol.Event {
	out := make([]protocol.Event, n)
	for i := range out {
		out[i] = protocol.Event{
			Site:       site,
			TimeMicros: day0.Add(time.Duration(i) * 20 * time.Second).UnixMicro(),
			Name:       "page_view",
			Visitor:    math.MaxUint64 - uint64(i%50),
			SessionID:  1748779200 + int64(i%7),
			Flags:      protocol.FlagEngaged,
			EngageMs:   int64(i * 10),
			Host:       "example.com",
			Path:       fmt.Sprintf("/docs/%d", i%20),
			Title:      fmt.Sprintf("Docs %d", i%20),
			Referrer:   "https://search.example/",
			Language:   "en-us",
			Country:    "ES",
			City:       "Madrid",
			Browser:    "Firefox",
			OS:         "Linux",
			Device:     "desktop",
		}
	}
	return out
}

func count(t *testing.T, s *testStore, sql string, args ...any) int {
	t.Helper()
	var n int
	if err := s.Pool.QueryRow(context.Background(), sql, args...).Scan(&n); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
	return n
}

func TestWriteBatchStoresRowsOnce(t *testing.T) {
	s := newStore(t)
	ctx := context.Background()
	site, _ := s.CreateSite(ctx, postgres.SiteSpec{Name: "a"})
	events := testEvents(site.ID, 5000) // crosses midnight: two partitions
	events[0].Params = map[string]string{"plan": "pro"}
	events[0].NumParams = map[string]float64{"value": 9.5}
	events[1].EngageMs = math.MaxInt64
	events[2].Name, events[2].Path, events[2].Title, events[2].Referrer = "click", "", "", ""
	events[3].TimeMicros = time.Date(2019, 1, 1, 0, 0, 0, 0, time.UTC).UnixMicro() // queued long ago
	dead := []postgres.DeadLetter{{Index: 7, Reason: "name longer than 40 characters", Event: []byte{0x80}}}

	res, err := s.WriteBatch(ctx, "agent-1", 1, events, dead)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(writeResult{Stored: 5000, DeadLetters: 1}, res); diff != "" {
		t.Fatalf("result (-want +got):\n%s", diff)
	}
	if n := count(t, s, "SELECT count(*) FROM events WHERE flags & 256 = 0"); n != 5000 {
		t.Fatalf("%d events stored, want 5000", n)
	}
	if n := count(t, s, "SELECT count(DISTINCT tableoid) FROM events"); n != 3 {
		t.Errorf("events in %d partitions, want 3 (the days present only)", n)
	}
	if n := count(t, s, "SELECT count(*) FROM dims WHERE kind = $1", int16(postgres.DimPagePath)); n != 20 {
		t.Errorf("%d page dims, want 20", n)
	}
	if n := count(t, s, "SELECT count(*) FROM agent_batches WHERE agent_id = 'agent-1' AND seq = 1 AND events = 5000 AND dead_letters = 1"); n != 1 {
		t.Error("batch key not stored with its counts")
	}
	if n := count(t, s, "SELECT count(*) FROM dead_letters WHERE agent_id = 'agent-1' AND seq = 1 AND idx = 7 AND reason LIKE 'name longer%' AND event = '\\x80'"); n != 1 {
		t.Error("dead letter not stored")
	}

	// Row 0 read back through the dictionaries.
	var (
		ts                                                  time.Time
		visitor, session                                    int64
		name, page, host, title, ref, lang, country, device string
		engage                                              int32
		flags                                               int16
		params                                              []byte
	)
	err = s.Pool.QueryRow(ctx, `SELECT e.ts, e.visitor_id, e.session_id, n.value, p.value, h.value, t.value, r.value,
			l.value, c.value, d.value, e.engagement_ms, e.flags, e.params
		FROM events e JOIN dims n ON n.id = e.name_id JOIN content_profiles cn ON cn.id = e.content_id
		JOIN dims p ON p.id = cn.page_id JOIN dims h ON h.id = cn.host_id
		JOIN dims t ON t.id = cn.title_id JOIN dims r ON r.id = e.referrer_id
		JOIN client_profiles cp ON cp.id = e.client_id JOIN dims l ON l.id = cp.language_id
		JOIN dims c ON c.id = cp.country_id JOIN dims d ON d.id = cp.device_id
		WHERE e.ts = $1 AND e.flags & 256 = 0`, day0).Scan(&ts, &visitor, &session, &name, &page, &host, &title, &ref, &lang, &country, &device, &engage, &flags, &params)
	if err != nil {
		t.Fatal(err)
	}
	got := []any{ts.UTC(), uint64(visitor), session, name, page, host, title, ref, lang, country, device, engage, uint8(flags)}
	want := []any{day0, uint64(math.MaxUint64), int64(1748779200), "page_view", "/docs/0", "example.com", "Docs 0",
		"https://search.example/", "en-us", "ES", "desktop", int32(0), protocol.FlagEngaged}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("row 0 (-want +got):\n%s", diff)
	}
	p, err := postgres.DecodeParams(params)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(postgres.EventParams{Params: map[string]string{"plan": "pro"}, NumParams: map[string]float64{"value": 9.5}}, p); diff != "" {
		t.Errorf("params (-want +got):\n%s", diff)
	}
	if n := count(t, s, "SELECT count(*) FROM events WHERE params <> ''"); n != 1 {
		t.Errorf("%d rows with params, want 1 ('' when none)", n)
	}
	// Every event has the same client dimensions: one profile; each
	// session's first event, and no other, has a traffic profile.
	if n := count(t, s, "SELECT count(*) FROM client_profiles WHERE site_id = $1", int32(site.ID)); n != 1 {
		t.Errorf("%d client profiles of the site, want 1", n)
	}
	if n, want := count(t, s, "SELECT count(*) FROM events WHERE traffic_id <> 0 AND flags & 256 = 0"), count(t, s, "SELECT count(*) FROM sessions"); n != want {
		t.Errorf("%d events with a traffic profile, want one per session (%d)", n, want)
	}
	if n := count(t, s, "SELECT engagement_ms FROM events WHERE ts = $1", time.UnixMicro(events[1].TimeMicros)); n != math.MaxInt32 {
		t.Errorf("engagement clamped to %d, want %d", n, math.MaxInt32)
	}
	// Host known, path and title absent: a content profile of its own.
	if n := count(t, s, `SELECT count(*) FROM events e JOIN content_profiles c ON c.id = e.content_id
		WHERE c.page_id = 0 AND c.title_id = 0 AND c.host_id <> 0 AND e.referrer_id = 0 AND e.flags & 256 = 0`); n != 1 {
		t.Errorf("%d rows with absent strings as id 0, want 1", n)
	}

	// The resend of the batch writes nothing, twice.
	for range 2 {
		res, err = s.WriteBatch(ctx, "agent-1", 1, events, dead)
		if err != nil {
			t.Fatal(err)
		}
		if !res.Duplicate || res.Stored != 0 {
			t.Errorf("resend: %+v, want Duplicate", res)
		}
	}
	if n := count(t, s, "SELECT count(*) FROM events WHERE flags & 256 = 0"); n != 5000 {
		t.Fatalf("%d events after resend, want 5000", n)
	}
	if n := count(t, s, "SELECT count(*) FROM dead_letters"); n != 1 {
		t.Fatalf("%d dead letters after resend, want 1", n)
	}
	// The next seq of the same agent is a new batch; an empty one stores its key.
	res, err = s.WriteBatch(ctx, "agent-1", 2, nil, nil)
	if err != nil || res != (writeResult{}) {
		t.Errorf("empty batch: %+v, %v", res, err)
	}
	if n := count(t, s, "SELECT count(*) FROM agent_batches"); n != 2 {
		t.Errorf("%d batch keys, want 2", n)
	}
}

// The key check and the insert race when two nodes get the same batch: the
// insert inside the transaction decides.
func TestWriteBatchSameBatchConcurrently(t *testing.T) {
	s := newStore(t)
	ctx := context.Background()
	site, _ := s.CreateSite(ctx, postgres.SiteSpec{Name: "a"})
	events := testEvents(site.ID, 300)
	results := make(chan writeResult, 4)
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			res, err := s.WriteBatch(ctx, "agent-x", 9, events, nil)
			if err != nil {
				t.Error(err)
			}
			results <- res
		})
	}
	wg.Wait()
	close(results)
	stored := 0
	for r := range results {
		stored += r.Stored
	}
	if stored != 300 {
		t.Errorf("reported %d stored over 4 sends, want 300", stored)
	}
	if n := count(t, s, "SELECT count(*) FROM events WHERE flags & 256 = 0"); n != 300 {
		t.Errorf("%d events, want 300", n)
	}
}

func TestWriteBatchConcurrentSharedDims(t *testing.T) {
	s := newStore(t)
	ctx := context.Background()
	a, _ := s.CreateSite(ctx, postgres.SiteSpec{Name: "a"})
	b, _ := s.CreateSite(ctx, postgres.SiteSpec{Name: "b"})
	var wg sync.WaitGroup
	for i := range 8 {
		site := a.ID
		if i%2 == 1 {
			site = b.ID
		}
		events := testEvents(site, 2000)
		// Batches see the shared strings in different orders.
		if i%3 == 0 {
			for l, r := 0, len(events)-1; l < r; l, r = l+1, r-1 {
				events[l].Path, events[r].Path = events[r].Path, events[l].Path
			}
		}
		for j := range events {
			events[j].Title = fmt.Sprintf("batch %d title %d", i, j%40) // some strings new per batch
		}
		wg.Go(func() {
			cctx, cancel := context.WithTimeout(ctx, 60*time.Second)
			defer cancel()
			if _, err := s.WriteBatch(cctx, fmt.Sprintf("agent-%d", i), 1, events, nil); err != nil {
				t.Errorf("batch %d: %v", i, err)
			}
		})
	}
	wg.Wait()
	if n := count(t, s, "SELECT count(*) FROM events WHERE flags & 256 = 0"); n != 16000 {
		t.Errorf("%d events, want 16000", n)
	}
	if n := count(t, s, "SELECT count(*) FROM dims WHERE kind = $1", int16(postgres.DimPagePath)); n != 40 {
		t.Errorf("%d page dims, want 20 per site", n)
	}
	if n := count(t, s, "SELECT count(*) FROM dims WHERE kind = $1", int16(postgres.DimTitle)); n != 8*40 {
		t.Errorf("%d title dims, want %d", n, 8*40)
	}
	if n := count(t, s, "SELECT count(*) FROM agent_batches"); n != 8 {
		t.Errorf("%d batch keys, want 8", n)
	}
}
