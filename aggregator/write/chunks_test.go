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

// chunkBatches are batches of size events of visits over two local days
// of Madrid (sessionRollupEvents) whose sessions grow across batches, some
// beginning without a page view (their landing page is set by a later
// batch), with purchases repeating transaction ids across batches.
func chunkBatches(site uint32, size int) [][]protocol.Event {
	events := sessionRollupEvents(site, 150)
	for i := range events {
		e := &events[i]
		switch v := e.Visitor - 1000; {
		case v%5 == 2 && e.Flags&protocol.FlagSessionStart != 0:
			e.Name = "user_engagement"
		case v%9 == 4 && e.Name == "page_view" && e.Flags&protocol.FlagSessionStart == 0:
			e.Name, e.Value, e.Currency = "purchase", float64(v), "USD"
			e.TransactionID = fmt.Sprintf("T%d", v%4)
			e.Items = []protocol.Item{{ID: fmt.Sprintf("I%d", v%3), Price: 2, Quantity: 1}}
		}
	}
	var out [][]protocol.Event
	for len(events) > 0 {
		n := min(size, len(events))
		out = append(out, events[:n:n])
		events = events[n:]
	}
	return out
}

// derivationState is every row a derivation writes of site: events,
// sessions, commerce, rollups, session rollups and user-days, as text.
func derivationState(t *testing.T, s *testStore, site uint32) map[string][]string {
	t.Helper()
	out := map[string][]string{}
	for _, table := range []string{"events", "sessions", "event_commerce", "event_items", "rollup_days", "session_rollups", "rollup_user_days", "known_users"} {
		out[table] = textRows(t, s, "SELECT t::text FROM "+table+" t WHERE site_id = $1 ORDER BY 1", int32(site))
	}
	out["staged"] = textRows(t, s, "SELECT coalesce(sum(events), 0)::text FROM staged_events WHERE site_id = $1", int32(site))
	return out
}

// chunkStore is a store with a Madrid site and the partitions of
// chunkBatches' days.
func chunkStore(t *testing.T) (*testStore, postgres.Site) {
	t.Helper()
	s := newStore(t)
	ctx := context.Background()
	site, err := s.CreateSite(ctx, postgres.SiteSpec{Name: "chunks", TimeZone: "Europe/Madrid"})
	if err != nil {
		t.Fatal(err)
	}
	day := time.Date(2025, 6, 1, 0, 0, 0, 0, time.UTC)
	if err := s.EnsurePartitions(ctx, day, day.AddDate(0, 0, 2)); err != nil {
		t.Fatal(err)
	}
	return s, site
}

// TestChunkedDerivationEqualsOneByOne: a derivation that takes the staged
// batches in chunks, one batch each, writes the rows the derivations of
// the batches one by one write: sessions changed by several chunks,
// landing pages set by a later chunk (moved in the cells of the earlier
// ones), users made active by a later chunk, purchases repeated across
// chunks, and the rollups' sketches.
func TestChunkedDerivationEqualsOneByOne(t *testing.T) {
	const size = 40
	ctx := context.Background()
	one, oneSite := chunkStore(t)
	chunked, chunkedSite := chunkStore(t)
	if oneSite.ID != chunkedSite.ID {
		t.Fatalf("sites %d and %d: the stores must number alike", oneSite.ID, chunkedSite.ID)
	}
	batches := chunkBatches(oneSite.ID, size)
	total := 0
	for _, b := range batches {
		total += len(b)
	}
	if len(batches) < 4 {
		t.Fatalf("%d batches, want several chunks", len(batches))
	}

	byOne := New(Config{MaxEvents: size, MaxChunks: 1}, one.Store)
	for i, b := range batches {
		if _, err := byOne.WriteBatch(ctx, "a", uint64(i+1), b, nil); err != nil {
			t.Fatal(err)
		}
		if n, _, err := byOne.deriveSite(ctx, oneSite.ID, true); err != nil || n != len(b) {
			t.Fatalf("batch %d derived alone: %d events, %v; want %d", i, n, err, len(b))
		}
	}

	w := New(Config{MaxEvents: size, MaxChunks: len(batches), MaxAdded: 1 << 30, DeriveFor: time.Hour}, chunked.Store)
	for i, b := range batches {
		if _, err := w.WriteBatch(ctx, "a", uint64(i+1), b, nil); err != nil {
			t.Fatal(err)
		}
	}
	var added int
	w.cfg.Added = func(_ context.Context, _ uint32, events []protocol.Event) { added += len(events) }
	if n, _, err := w.deriveSite(ctx, chunkedSite.ID, true); err != nil || n != total {
		t.Fatalf("chunked derivation: %d events, %v; want all %d in one", n, err, total)
	}

	want, got := derivationState(t, one, oneSite.ID), derivationState(t, chunked, chunkedSite.ID)
	if diff := cmp.Diff(want, got); diff != "" {
		t.Fatalf("chunked derivation's rows differ from the batches derived one by one (-one by one +chunked):\n%s", diff)
	}
	own := count(t, chunked, "SELECT count(*) FROM events WHERE site_id = $1 AND flags & $2 <> 0", int32(chunkedSite.ID), postgres.EventFlagDerived)
	if own == 0 || added != own {
		t.Fatalf("Added saw %d events, want the %d derived (every chunk's)", added, own)
	}
	if len(want["event_commerce"]) == 0 || len(want["rollup_user_days"]) == 0 {
		t.Fatalf("the batches wrote no commerce or no user-days: %d, %d rows", len(want["event_commerce"]), len(want["rollup_user_days"]))
	}
}

// TestChunkFailureLeavesNothing: when a later chunk of a derivation fails
// (its events' COPY), nothing of its earlier chunks is written, every
// staged event stays, and the next derivation derives each once.
func TestChunkFailureLeavesNothing(t *testing.T) {
	const size = 40
	ctx := context.Background()
	s, site := chunkStore(t)
	batches := chunkBatches(site.ID, size)[:4]
	// A visitor first seen in the last batch: its row fails the COPY of
	// the last chunk only.
	var last *protocol.Event
	for i := range batches[3] {
		e := &batches[3][i]
		if !slices.ContainsFunc(slices.Concat(batches[:3]...), func(o protocol.Event) bool { return o.Visitor == e.Visitor }) {
			last = e
			break
		}
	}
	if last == nil {
		t.Fatal("no visitor first seen in the last batch")
	}
	w := New(Config{MaxEvents: size, MaxChunks: len(batches), MaxAdded: 1 << 30, DeriveFor: time.Hour}, s.Store)
	for i, b := range batches {
		if _, err := w.WriteBatch(ctx, "a", uint64(i+1), b, nil); err != nil {
			t.Fatal(err)
		}
	}
	exec(t, s, fmt.Sprintf(`CREATE FUNCTION fail_copy() RETURNS trigger LANGUAGE plpgsql AS
		$$BEGIN IF NEW.visitor_id = %d THEN RAISE EXCEPTION 'copy refused by test'; END IF; RETURN NEW; END$$`, last.Visitor))
	exec(t, s, "CREATE TRIGGER fail_copy BEFORE INSERT ON events FOR EACH ROW EXECUTE FUNCTION fail_copy()")
	before := derivationState(t, s, site.ID)
	if _, _, err := w.deriveSite(ctx, site.ID, true); err == nil {
		t.Fatal("derivation committed although its last chunk's COPY failed")
	}
	if diff := cmp.Diff(before, derivationState(t, s, site.ID)); diff != "" {
		t.Fatalf("the failed derivation wrote rows (-before +after):\n%s", diff)
	}
	exec(t, s, "DROP TRIGGER fail_copy ON events")
	if err := w.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	want := 0
	for _, b := range batches {
		want += len(b)
	}
	if got := derivedTotals(t, s, site.ID); got != [3]int{want, want, want} {
		t.Fatalf("events, in sessions, in rollups after the retry: %v, want %d each", got, want)
	}
}

// TestChunkOfANewDayWaits: a later chunk whose events fall on a day
// without a known partition is left staged (creating the partition would
// wait for the derivation's hold on events); the next derivation creates
// it and derives them.
func TestChunkOfANewDayWaits(t *testing.T) {
	const size = 40
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	s, site := chunkStore(t)
	batches := chunkBatches(site.ID, size)[:2]
	later := slices.Clone(batches[1])
	for i := range later {
		later[i].TimeMicros += (30 * 24 * time.Hour).Microseconds()
	}
	w := New(Config{MaxEvents: size, MaxChunks: 4, DeriveFor: time.Hour}, s.Store)
	for i, b := range [][]protocol.Event{batches[0], later} {
		if _, err := w.WriteBatch(ctx, "a", uint64(i+1), b, nil); err != nil {
			t.Fatal(err)
		}
	}
	if n, _, err := w.deriveSite(ctx, site.ID, true); err != nil || n != len(batches[0]) {
		t.Fatalf("first derivation: %d events, %v; want the first chunk's %d", n, err, len(batches[0]))
	}
	if left, err := s.StagedEvents(ctx, site.ID); err != nil || left != int64(len(later)) {
		t.Fatalf("staged after the first derivation: %d, %v; want %d", left, err, len(later))
	}
	if n, _, err := w.deriveSite(ctx, site.ID, true); err != nil || n != len(later) {
		t.Fatalf("second derivation: %d events, %v; want %d", n, err, len(later))
	}
	want := len(batches[0]) + len(later)
	if got := derivedTotals(t, s, site.ID); got != [3]int{want, want, want} {
		t.Fatalf("events, in sessions, in rollups: %v, want %d each", got, want)
	}
}

// TestChunksOfNewVisitors: when every hit is a new visitor's, each adds
// two events (session_start, first_visit); once a chunk showed it, the
// site's chunks take fewer staged events, so a chunk holds about
// Config.MaxEvents events in all, and a derivation ends once the events
// it added reach Config.MaxAdded, which it holds until it commits. Every
// event is derived once all the same.
func TestChunksOfNewVisitors(t *testing.T) {
	const (
		maxEvents = 100
		perBatch  = 5
		visitors  = 400
	)
	ctx := context.Background()
	s, site := chunkStore(t)
	start := time.Date(2025, 6, 1, 10, 0, 0, 0, time.UTC)
	w := New(Config{MaxEvents: maxEvents, MaxChunks: 10, DeriveFor: time.Hour}, s.Store)
	for b := range visitors / perBatch {
		batch := make([]protocol.Event, perBatch)
		for i := range batch {
			v := b*perBatch + i
			batch[i] = protocol.Event{Site: site.ID, TimeMicros: start.Add(time.Duration(v) * time.Second).UnixMicro(),
				Name: "page_view", Visitor: uint64(5000 + v), Path: "/"}
		}
		if _, err := w.WriteBatch(ctx, "a", uint64(b+1), batch, nil); err != nil {
			t.Fatal(err)
		}
	}
	var lastChunk, added []int
	w.cfg.Derived = func(_ context.Context, _ uint32, events []protocol.Event) { lastChunk = append(lastChunk, len(events)) }
	w.cfg.Added = func(_ context.Context, _ uint32, events []protocol.Event) { added = append(added, len(events)) }
	derived := 0
	for derived < visitors {
		n, _, err := w.deriveSite(ctx, site.ID, true)
		if err != nil {
			t.Fatal(err)
		}
		if n == 0 {
			t.Fatalf("a derivation took nothing with %d of %d events derived", derived, visitors)
		}
		derived += n
	}
	if len(lastChunk) < 3 {
		t.Fatalf("%d derivations (last chunks %v), want the events spread over several", len(lastChunk), lastChunk)
	}
	// The first derivation's first chunk has no measure of the site yet.
	for i := 1; i < len(lastChunk); i++ {
		if lastChunk[i] > maxEvents*3/2 {
			t.Errorf("derivation %d: last chunk of %d events with those it added, want at most %d (every chunk's: %v)", i, lastChunk[i], maxEvents*3/2, lastChunk)
		}
		if added[i] > maxEvents {
			t.Errorf("derivation %d held %d added events until its commit, want at most %d (every derivation's: %v)", i, added[i], maxEvents, added)
		}
	}
	if got := count(t, s, "SELECT count(*) FROM events WHERE site_id = $1", int32(site.ID)); got != 3*visitors {
		t.Fatalf("%d events stored, want %d: each hit, its session_start and its first_visit", got, 3*visitors)
	}
	if got := count(t, s, "SELECT count(*) FROM staged_events WHERE site_id = $1", int32(site.ID)); got != 0 {
		t.Fatalf("%d staged rows left", got)
	}
}
