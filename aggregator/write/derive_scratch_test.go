package write

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/avila-analytics/avila/aggregator/sessions"
	"github.com/avila-analytics/avila/protocol"
	"github.com/avila-analytics/avila/storage/postgres"
)

// TestScratchKeepsNothingOfEarlierChunks: the arrays a Writer reuses
// chunk after chunk and derivation after derivation (deriveScratch) carry
// nothing of one chunk into the next: batches of falling and rising sizes
// (a chunk shorter than the last leaves the old one's tail in the array),
// with purchases and session starts at indexes where the next chunk has
// neither, derived by one Writer in one derivation each, and by one
// derivation of a chunk each, write the rows a new Writer per batch (no
// reuse) writes; Derived sees exactly the last chunk's events.
func TestScratchKeepsNothingOfEarlierChunks(t *testing.T) {
	ctx := context.Background()
	var batches [][]protocol.Event
	for _, b := range chunkBatches(0, 40) {
		// Sizes 40, 11, 40, 3 … : a long chunk, then a short one.
		if len(batches)%2 == 1 {
			b = b[:len(b)/3]
		}
		batches = append(batches, b)
	}
	if len(batches) < 4 {
		t.Fatalf("%d batches, want several", len(batches))
	}
	stage := func(t *testing.T, w *Writer, site uint32, seq int, b []protocol.Event) {
		t.Helper()
		b = append([]protocol.Event(nil), b...)
		for i := range b {
			b[i].Site = site
		}
		if _, err := w.WriteBatch(ctx, "a", uint64(seq), b, nil); err != nil {
			t.Fatal(err)
		}
	}

	fresh, freshSite := chunkStore(t)
	for i, b := range batches {
		w := New(Config{MaxEvents: 40, MaxChunks: 1}, fresh.Store)
		stage(t, w, freshSite.ID, i+1, b)
		if n, _, err := w.deriveSite(ctx, freshSite.ID, true); err != nil || n != len(b) {
			t.Fatalf("batch %d by a new writer: %d events, %v; want %d", i, n, err, len(b))
		}
	}
	want := derivationState(t, fresh, freshSite.ID)

	reused, reusedSite := chunkStore(t)
	w := New(Config{MaxEvents: 40, MaxChunks: 1}, reused.Store)
	var last []protocol.Event
	w.cfg.Derived = func(_ context.Context, _ uint32, events []protocol.Event) { last = append(last[:0], events...) }
	for i, b := range batches {
		stage(t, w, reusedSite.ID, i+1, b)
		if n, _, err := w.deriveSite(ctx, reusedSite.ID, true); err != nil || n != len(b) {
			t.Fatalf("batch %d by one writer: %d events, %v; want %d", i, n, err, len(b))
		}
		staged := 0
		for _, e := range last {
			if e.Name != sessionStartName && e.Name != firstVisitName {
				staged++
			}
		}
		if staged != len(b) || last[0].TimeMicros != b[0].TimeMicros {
			t.Fatalf("batch %d: Derived saw %d staged events from %d, want the batch's %d from %d",
				i, staged, last[0].TimeMicros, len(b), b[0].TimeMicros)
		}
	}
	if diff := cmp.Diff(want, derivationState(t, reused, reusedSite.ID)); diff != "" {
		t.Fatalf("one writer's derivations differ from new writers' (-new +reused):\n%s", diff)
	}

	chunked, chunkedSite := chunkStore(t)
	w = New(Config{MaxEvents: 1, MaxChunks: len(batches), MaxAdded: 1 << 30, DeriveFor: time.Hour}, chunked.Store)
	for i, b := range batches {
		stage(t, w, chunkedSite.ID, i+1, b)
	}
	if _, _, err := w.deriveSite(ctx, chunkedSite.ID, true); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(want, derivationState(t, chunked, chunkedSite.ID)); diff != "" {
		t.Fatalf("a derivation of a chunk a batch differs from new writers' (-new +chunked):\n%s", diff)
	}
}

// TestScratchClean: clean zeroes every entry a chunk wrote, in the array
// kept and past its length, and drops arrays past the bound.
func TestScratchClean(t *testing.T) {
	s := deriveScratch{max: 100}
	events := s.eventsFor(10)
	for i := range 8 {
		events = append(events, protocol.Event{Name: "page_view", Visitor: uint64(i + 1)})
	}
	s.wrote(events)
	events = events[:3] // as dropErased leaves them
	s.wrote(events)
	again := s.eventsFor(10)
	if &again[:1][0] != &events[:1][0] {
		t.Fatal("the array was not reused")
	}
	for i, e := range again[:cap(again)] {
		if e.Name != "" || e.Visitor != 0 {
			t.Fatalf("entry %d kept %+v", i, e)
		}
	}
	// An append past the room moves the events to a larger array: that
	// one is kept.
	grown := append(again, make([]protocol.Event, 20)...)
	grown[15].Name = "session_start"
	s.wrote(grown)
	if got := s.eventsFor(1); cap(got) != cap(grown) || got[:16][15].Name != "" {
		t.Fatalf("grown array: cap %d (want %d), entry 15 %q", cap(got), cap(grown), got[:16][15].Name)
	}
	// A chunk past the array's room: the array doubles, up to what a
	// full chunk needs, then has an eighth more than a chunk past that;
	// the rows have the events' room.
	s.max = 1000
	s.drop()
	for _, c := range []struct{ n, want int }{{100, 100}, {101, 200}, {350, 400}, {500, 625}, {700, 787}, {640, 787}, {780, 787}} {
		if got := s.eventsFor(c.n); cap(got) != c.want || cap(s.res.Rows) != c.want {
			t.Fatalf("room for %d events: array of %d, rows of %d, want %d", c.n, cap(got), cap(s.res.Rows), c.want)
		}
	}
	s.max = 100
	big := s.eventsFor(500)
	s.wrote(append(big, protocol.Event{Name: "x"}))
	s.clean()
	if s.events != nil {
		t.Fatalf("an array of %d events past the bound of %d was kept", cap(s.events), s.max)
	}
}

// TestScratchShrinks: an array and rows far larger than the chunks need
// (a backlog's, kept while steady traffic follows) give way to ones of a
// chunk's size once shrinkAfter chunks in a row needed so little; ones up
// to shrinkPast times a chunk's size, or needed again in between, are
// reused.
func TestScratchShrinks(t *testing.T) {
	s := deriveScratch{max: 10_000}
	s.wrote(append(s.eventsFor(1000), protocol.Event{Name: "x"}))
	s.res.Rows = make([]postgres.EventRow, 1, 1000)
	if again := s.eventsFor(250); cap(again) != 1000 || cap(s.res.Rows) != 1000 || again[:1][0].Name != "" {
		t.Fatalf("a chunk of 250 after one of 1000: array of %d events, rows of %d, entry 0 %q", cap(again), cap(s.res.Rows), again[:1][0].Name)
	}
	for round := range 2 {
		for i := range shrinkAfter - 1 {
			if small := s.eventsFor(100); cap(small) != 1000 || cap(s.res.Rows) != 1000 {
				t.Fatalf("round %d: chunk %d of 100 after one of 1000: array of %d events, rows of %d", round, i, cap(small), cap(s.res.Rows))
			}
		}
		if round == 0 {
			s.eventsFor(900) // the backlog's size again
		}
	}
	if small := s.eventsFor(100); cap(small) != 100 || cap(s.res.Rows) != 100 {
		t.Fatalf("chunk %d of 100 in a row: array of %d events, rows of %d", shrinkAfter, cap(small), cap(s.res.Rows))
	}
}

// TestScratchKeptWhileTrafficLasts: a derivation keeps its arrays for
// the next, whether it left staged rows (its chunks' bound) or took them
// all; Run keeps them after a pass that derived nothing following one that
// did (the next batches are due after its wait), and drops them after a
// second such pass in a row.
func TestScratchKeptWhileTrafficLasts(t *testing.T) {
	ctx := context.Background()
	s, site := chunkStore(t)
	batches := chunkBatches(site.ID, 40)[:4]
	w := New(Config{MaxEvents: 40, MaxChunks: 2, DeriveFor: time.Hour}, s.Store)
	for i, b := range batches[:3] {
		if _, err := w.WriteBatch(ctx, "a", uint64(i+1), b, nil); err != nil {
			t.Fatal(err)
		}
	}
	kept := func(t *testing.T, what string) {
		t.Helper()
		if w.scratch.events == nil || w.scratch.res.Rows == nil {
			t.Fatalf("%s: the arrays were dropped", what)
		}
		if w.scratch.dirty != 0 || len(w.scratch.res.Rows) != 0 {
			t.Fatalf("%s: kept %d events and %d rows past the derivation", what, w.scratch.dirty, len(w.scratch.res.Rows))
		}
	}
	if n, _, err := w.deriveSite(ctx, site.ID, true); err != nil || n != 80 {
		t.Fatalf("first derivation: %d events, %v; want two chunks' 80", n, err)
	}
	kept(t, "a derivation with rows left")
	if n, _, err := w.deriveSite(ctx, site.ID, true); err != nil || n != 40 {
		t.Fatalf("second derivation: %d events, %v; want 40", n, err)
	}
	kept(t, "a derivation that caught up")

	// Run, with a wait that ends only when a batch is staged.
	w.cfg.Every, w.cfg.IdleEvery = time.Hour, time.Hour
	runCtx, cancel := context.WithCancel(ctx)
	var loop sync.WaitGroup
	loop.Go(func() { w.Run(runCtx) })
	t.Cleanup(func() { cancel(); loop.Wait() })
	// passes waits until Run began pass n, then for the pass to end.
	passes := func(t *testing.T, n int64) {
		t.Helper()
		for deadline := time.Now().Add(10 * time.Second); w.looks.Load() < n; time.Sleep(5 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("Run began %d passes, want %d", w.looks.Load(), n)
			}
		}
		w.deriving.Lock()
		//lint:ignore SA2001 waits for the pass holding the lock to end
		w.deriving.Unlock()
	}
	passes(t, 1) // nothing staged: no derivation before it
	if _, err := w.WriteBatch(ctx, "a", 4, batches[3], nil); err != nil {
		t.Fatal(err)
	}
	// The wake runs a pass that derives the batch, and one that finds
	// nothing more.
	passes(t, 3)
	w.deriving.Lock()
	kept(t, "Run after the pass that found nothing more")
	w.deriving.Unlock()
	if n, err := s.StagedEvents(ctx, site.ID); err != nil || n != 0 {
		t.Fatalf("%d events left staged, %v", n, err)
	}
	// A wake that finds nothing: two passes in a row derived nothing.
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		select {
		case w.wake <- struct{}{}:
		default:
		}
		w.deriving.Lock()
		dropped := w.scratch.events == nil && w.scratch.res.Rows == nil
		w.deriving.Unlock()
		if dropped {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("Run kept the arrays after two passes that derived nothing")
		}
	}
}

// TestScratchReuseOfSessionsAndCommerce: the maps and arrays the
// sessions' assignment, their rows and the commerce plan reuse chunk
// after chunk (assignScratch, rowsScratch, commercePlan) carry nothing
// into the next: signed-in devices (client keys), persistent visitors,
// key events other than purchases, repeated purchases and commerce
// without a transaction id, in batches of
// falling and rising sizes derived by one Writer, write the rows a new
// Writer per batch writes.
func TestScratchReuseOfSessionsAndCommerce(t *testing.T) {
	ctx := context.Background()
	var batches [][]protocol.Event
	for _, b := range chunkBatches(0, 40) {
		if len(batches)%2 == 1 {
			b = b[:len(b)/3]
		}
		b = append([]protocol.Event(nil), b...)
		for i := range b {
			e := &b[i]
			switch v := e.Visitor - 1000; {
			case v%7 == 3: // signed in: the user's key, the device's client key
				e.Client, e.Visitor, e.User = e.Visitor, 5000+v, 5000+v
			case v%3 == 1:
				e.Flags |= protocol.FlagPersistent
			case v%9 != 4 && e.Name == "page_view" && e.Flags&protocol.FlagSessionStart == 0:
				// Commerce without a transaction, where other batches
				// have purchases.
				e.Name, e.Value, e.Currency = "add_to_cart", 3, "USD"
				e.Items = []protocol.Item{{ID: "I9", Price: 3, Quantity: 1}}
			}
		}
		batches = append(batches, b)
	}
	derive := func(t *testing.T, perBatch bool) map[string][]string {
		t.Helper()
		s, site := chunkStore(t)
		if _, err := s.SetKeyEvents(ctx, site.ID, []string{"purchase", "page_view", "user_engagement"}); err != nil {
			t.Fatal(err)
		}
		var w *Writer
		for i, b := range batches {
			if w == nil || perBatch {
				w = New(Config{MaxEvents: 40, MaxChunks: 1}, s.Store)
			}
			b = append([]protocol.Event(nil), b...)
			for j := range b {
				b[j].Site = site.ID
			}
			if _, err := w.WriteBatch(ctx, "a", uint64(i+1), b, nil); err != nil {
				t.Fatal(err)
			}
			if n, _, err := w.deriveSite(ctx, site.ID, true); err != nil || n != len(b) {
				t.Fatalf("batch %d: %d events, %v; want %d", i, n, err, len(b))
			}
		}
		return derivationState(t, s, site.ID)
	}
	want := derive(t, true)
	if diff := cmp.Diff(want, derive(t, false)); diff != "" {
		t.Fatalf("one writer's derivations differ from new writers' (-new +reused):\n%s", diff)
	}
}

// TestScratchMapsComeEmpty: each map a chunk reuses comes empty whatever
// the last chunk left in it, and siteSessions.commit empties the one it
// builds the latest sessions in once the memory has them.
func TestScratchMapsComeEmpty(t *testing.T) {
	var a assignScratch
	emptied(&a.index)[1] = 0
	emptied(&a.known)[sessions.Key{Visitor: 1}] = []sessions.Session{{ID: 1}}
	if len(emptied(&a.index)) != 0 || len(emptied(&a.known)) != 0 {
		t.Fatal("assignScratch's maps keep the last chunk's entries")
	}
	var r rowsScratch
	emptied(&r.users)[1] = 1
	fs, st := emptied(&r.firstSources), emptied(&r.firstStart)
	fs[1], st[1] = 1, 1
	fs, st = emptied(&r.firstSources), emptied(&r.firstStart)
	if len(emptied(&r.users)) != 0 || len(fs) != 0 || len(st) != 0 {
		t.Fatal("rowsScratch's maps keep the last chunk's entries")
	}
	s := &siteSessions{site: 1, mem: sessions.NewMemory(0, nil)}
	latest := emptied(&a.latest)
	at := time.Now()
	s.commit(1, []postgres.SessionRow{{Site: 1, Visitor: 2, ID: 3, TS: at, Last: at}}, nil, latest)
	if len(latest) != 0 {
		t.Fatalf("commit left %d sessions in its map", len(latest))
	}
	got, found := make([]sessions.Session, 2), make([]bool, 2)
	s.latest([]uint64{2, 4}, got, found)
	if !found[0] || got[0].ID != 3 || found[1] {
		t.Fatalf("memory after commit: %v %v, want session 3 of visitor 2 only", got, found)
	}
}
