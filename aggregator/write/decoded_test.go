package write

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/avila-analytics/avila/protocol"
	"github.com/avila-analytics/avila/storage/postgres"
)

// TestDecodedBatches: an entry serves one payload equal to its wire, once;
// a full cache keeps no more, nor anything until derivations caught up
// with the rows it did not keep; old entries go.
func TestDecodedBatches(t *testing.T) {
	now := time.Unix(1_750_000_000, 0)
	c := newDecodedBatches(5)
	events := testEvents(1, 3)
	wire := []byte("wire of batch 1")
	c.keep(wire, events, now)
	events[0].Name = "reused by the caller"
	wire[0] = 'W'
	if _, ok := c.take([]byte("Wire of batch 1")); ok {
		t.Fatal("served a payload other than the wire kept")
	}
	got, ok := c.take([]byte("wire of batch 1"))
	if !ok || len(got) != 3 || got[0].Name != "page_view" {
		t.Fatalf("take = %d events (first %q), %v; want the 3 kept, as they were", len(got), firstName(got), ok)
	}
	if _, ok := c.take([]byte("wire of batch 1")); ok {
		t.Fatal("served the same entry twice")
	}

	c.keep([]byte("a"), testEvents(1, 3), now)
	c.keep([]byte("b"), testEvents(1, 3), now) // 6 > 5: not kept
	if _, ok := c.take([]byte("b")); ok {
		t.Fatal("kept a batch past the bound")
	}
	c.keep([]byte("c"), testEvents(1, 2), now.Add(decodedMaxAge)) // "a" expires first
	if _, ok := c.take([]byte("a")); ok {
		t.Fatal("served an expired entry")
	}
	if _, ok := c.take([]byte("c")); ok {
		t.Fatal("kept a batch staged after one not kept, before derivations caught up")
	}
	c.caughtUp()
	c.keep([]byte("d"), testEvents(1, 2), now.Add(decodedMaxAge))
	if _, ok := c.take([]byte("d")); !ok {
		t.Fatal("a batch within the bound was not kept once derivations caught up")
	}
	if c.events != 0 || len(c.byHash) != 0 {
		t.Fatalf("%d events in %d hashes left, want none", c.events, len(c.byHash))
	}
}

// TestDecodedBatchesRecycle: the array of taken events, given back, is
// cleared and holds the next batch kept; arrays held and free have room
// for max events at most.
func TestDecodedBatchesRecycle(t *testing.T) {
	now := time.Unix(1_750_000_000, 0)
	c := newDecodedBatches(4)
	c.keep([]byte("a"), testEvents(1, 2), now)
	got, _ := c.take([]byte("a"))
	array := &got[0]
	c.recycle(got)
	if got[0].Name != "" || got[1].Host != "" {
		t.Fatal("a recycled array keeps its events")
	}
	c.keep([]byte("b"), testEvents(1, 2), now)
	next, ok := c.take([]byte("b"))
	if !ok || &next[0] != array || next[1].Name != "page_view" {
		t.Fatalf("the next batch kept (%v) did not reuse the recycled array", ok)
	}
	c.recycle(next)
	c.recycle(make([]protocol.Event, 0, 1))
	c.recycle(make([]protocol.Event, 0, 2)) // 2+1+2 > 4: dropped
	if c.freeCap != 3 || len(c.free) != 2 {
		t.Fatalf("free arrays: %d of room in %d, want 3 in 2", c.freeCap, len(c.free))
	}
	c.keep([]byte("c"), testEvents(1, 3), now) // allocated: 3+3 > 4 frees room
	if c.events+c.freeCap > 4 {
		t.Fatalf("%d events held and %d of room free, more than 4", c.events, c.freeCap)
	}
}

func firstName(events []protocol.Event) string {
	if len(events) == 0 {
		return ""
	}
	return events[0].Name
}

// TestWireBatchDecodedOnce: the derivation of a batch this Writer staged
// through WriteWireBatch takes the events ingest decoded, copied (the
// caller reuses its array); a staged row whose payload is not the wire the
// events came with is decoded, so the staged row stays the truth.
func TestWireBatchDecodedOnce(t *testing.T) {
	s := newStore(t)
	ctx := context.Background()
	site, _ := s.CreateSite(ctx, postgres.SiteSpec{Name: "a"})
	m, _ := NewMetrics(nil)
	w := New(Config{Metrics: m, NoDerivedEvents: true}, s.Store)
	events := testEvents(site.ID, 30)
	stageWire(t, w, 1, events)
	for i := range events {
		events[i].Name = "overwritten" // as the handler's next batch does
	}
	if err := w.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if got := metricValue(t, m.kept); got != 30 {
		t.Fatalf("%v events taken as decoded by ingest, want 30", got)
	}
	if n := count(t, s, "SELECT count(*) FROM events e JOIN dims d ON d.id = e.name_id WHERE e.site_id = $1 AND d.value = 'page_view'", int32(site.ID)); n != 30 {
		t.Fatalf("%d page_view events stored, want 30", n)
	}

	// A row whose payload differs from the wire kept (as if another
	// writer's): its own events are derived.
	second := testEvents(site.ID, 20)
	for i := range second {
		second[i].TimeMicros += 3600e6
	}
	stageWire(t, w, 2, second)
	for i := range second {
		second[i].Name = "scroll"
	}
	truth := wireBatch(t, 2, second)
	if _, err := s.Pool.Exec(ctx, "UPDATE staged_events SET payload = $1 WHERE site_id = $2", truth, int32(site.ID)); err != nil {
		t.Fatal(err)
	}
	if err := w.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if got := metricValue(t, m.kept); got != 30 {
		t.Fatalf("%v events taken as decoded by ingest, want still 30", got)
	}
	if n := count(t, s, "SELECT count(*) FROM events e JOIN dims d ON d.id = e.name_id WHERE e.site_id = $1 AND d.value = 'scroll'", int32(site.ID)); n != 20 {
		t.Fatalf("%d scroll events stored, want the staged row's 20", n)
	}
	if n := count(t, s, "SELECT count(*) FROM events WHERE site_id = $1", int32(site.ID)); n != 50 {
		t.Fatalf("%d events stored, want 50", n)
	}
}

// wireBatch is the wire form of a batch of events from agent "edge".
func wireBatch(t *testing.T, seq uint64, events []protocol.Event) []byte {
	t.Helper()
	wire, err := protocol.EncodeBatch(&protocol.Batch{Version: protocol.Version, AgentID: "edge", Seq: seq, Events: events})
	if err != nil {
		t.Fatal(err)
	}
	return wire
}

// stageWire stages events through w's WriteWireBatch, as ingest does, in
// the wire form from agent "edge".
func stageWire(t *testing.T, w *Writer, seq uint64, events []protocol.Event) {
	t.Helper()
	if _, err := w.WriteWireBatch(context.Background(), "edge", seq, events, wireBatch(t, seq, events)); err != nil {
		t.Fatal(err)
	}
}

// metricValue is the value of a counter or a gauge.
func metricValue(t *testing.T, c prometheus.Metric) float64 {
	t.Helper()
	var m dto.Metric
	if err := c.Write(&m); err != nil {
		t.Fatal(err)
	}
	if g := m.GetGauge(); g != nil {
		return g.GetValue()
	}
	return m.GetCounter().GetValue()
}

// TestNoBatchesKeptForASiteDerivedElsewhere: while another node derives
// a site, this node keeps none of the wire batches it stages for it
// decoded (that node's derivation takes them); once it derives the site
// itself, it keeps them again.
func TestNoBatchesKeptForASiteDerivedElsewhere(t *testing.T) {
	s := newStore(t)
	ctx := context.Background()
	m, _ := NewMetrics(nil)
	site, held, w := siteHeldElsewhere(t, s, Config{Metrics: m, Every: 50 * time.Millisecond})

	seq := uint64(0)
	stageFive := func() {
		t.Helper()
		seq++
		stageWire(t, w, seq, testEvents(site.ID, 5))
	}
	keptEvents := func() int {
		w.decoded.mu.Lock()
		defer w.decoded.mu.Unlock()
		return w.decoded.events
	}
	stageFive() // kept: nothing says yet that another node derives the site
	for deadline := time.Now().Add(5 * time.Second); !w.derivedElsewhere(site.ID); {
		if time.Now().After(deadline) {
			t.Fatal("the pass did not find the site derived elsewhere")
		}
		time.Sleep(5 * time.Millisecond) // polling, with the deadline above
	}
	for range 10 {
		stageFive()
	}
	if n := keptEvents(); n != 5 {
		t.Fatalf("%d events kept decoded, want the first batch's 5 only", n)
	}

	// The other node stops: this node takes the site over, and keeps the
	// batches it stages next for its own derivations.
	held.Rollback(ctx)
	waitDerived(t, s, site.ID, 10*time.Second)
	if w.derivedElsewhere(site.ID) {
		t.Fatal("the site is still taken as derived elsewhere after this node derived it")
	}
	kept := metricValue(t, m.kept)
	stageFive()
	if err := w.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if got := metricValue(t, m.kept) - kept; got != 5 {
		t.Fatalf("%v events of the batch staged after the take-over taken as decoded, want 5", got)
	}
	if got := derivedTotals(t, s, site.ID); got != [3]int{60, 60, 60} {
		t.Fatalf("events, in sessions, in rollups: %v, want 60 each", got)
	}
}

// TestDecodedKeptAgainOnceCaughtUp: after a batch was not kept for want of
// room, the batches staged next are not kept either, until a derivation
// took every staged row; then they are again.
func TestDecodedKeptAgainOnceCaughtUp(t *testing.T) {
	s := newStore(t)
	ctx := context.Background()
	site, _ := s.CreateSite(ctx, postgres.SiteSpec{Name: "a"})
	m, _ := NewMetrics(nil)
	w := New(Config{Metrics: m, NoDerivedEvents: true, MaxEvents: 8}, s.Store) // keeps 8 events at most
	stageWire(t, w, 1, testEvents(site.ID, 5))                                 // kept
	stageWire(t, w, 2, testEvents(site.ID, 5))                                 // no room: behind
	if !w.decoded.behind {
		t.Fatal("a batch not kept for want of room left the Writer's kept batches not behind")
	}
	if err := w.Flush(ctx); err != nil { // one derivation takes both rows: caught up
		t.Fatal(err)
	}
	if got := metricValue(t, m.kept); got != 5 {
		t.Fatalf("%v events taken as decoded by ingest, want the first batch's 5", got)
	}
	stageWire(t, w, 3, testEvents(site.ID, 5))
	if err := w.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if got := metricValue(t, m.kept); got != 10 {
		t.Fatalf("%v events taken as decoded by ingest, want 10: the batch staged after the derivation caught up kept", got)
	}
	if n := count(t, s, "SELECT count(*) FROM events WHERE site_id = $1", int32(site.ID)); n != 15 {
		t.Fatalf("%d events stored, want 15", n)
	}
}

// TestDecodedBatchesReuseAcrossSizes: batches of about the same size
// (an agent's segments, sealed at a count or a time) reuse one another's
// arrays, and a cache of max full batches keeps all their arrays once
// taken for the next ones; a much smaller batch takes none of them.
func TestDecodedBatchesReuseAcrossSizes(t *testing.T) {
	now := time.Unix(1_750_000_000, 0)
	const size, batches = 500, 5
	c := newDecodedBatches(size * batches)
	wire := func(i int) []byte { return []byte{byte(i), byte(i >> 8)} }
	arrays := map[*protocol.Event]bool{}
	round := func(r, n int) {
		t.Helper()
		for i := range batches {
			c.keep(wire(r*batches+i), testEvents(1, n), now)
		}
		for i := range batches {
			got, ok := c.take(wire(r*batches + i))
			if !ok || len(got) != n {
				t.Fatalf("round %d batch %d: %d events, %v; want %d kept", r, i, len(got), ok, n)
			}
			arrays[&got[:1][0]] = true
			c.recycle(got)
		}
	}
	round(0, size-15) // in size's class (arrayCap)
	if len(c.free) != batches {
		t.Fatalf("%d arrays free after taking %d batches, want all", len(c.free), batches)
	}
	for r, n := range []int{size, size - 30, size} {
		round(r+1, n)
	}
	if len(arrays) != batches {
		t.Fatalf("batches of %d to %d events used %d arrays, want the first round's %d", size-30, size, len(arrays), batches)
	}
	c.keep(wire(1000), testEvents(1, size/4), now)
	small, _ := c.take(wire(1000))
	if arrays[&small[:1][0]] || cap(small) > arrayCap(size/4) {
		t.Fatalf("a batch of %d took an array of room %d", size/4, cap(small))
	}
}

// TestDecodedBatchesDropArraysUnderBacklog: once no batch was kept for
// decodedMaxAge (derivations behind), the free arrays go, and arrays
// given back are not kept, until derivations catch up.
func TestDecodedBatchesDropArraysUnderBacklog(t *testing.T) {
	now := time.Unix(1_750_000_000, 0)
	c := newDecodedBatches(4)
	c.keep([]byte("x"), testEvents(1, 1), now)
	x, _ := c.take([]byte("x"))
	c.recycle(x)
	c.keep([]byte("a"), testEvents(1, 3), now)
	c.keep([]byte("b"), testEvents(1, 2), now) // 3+2 > 4: behind
	c.keep([]byte("c"), testEvents(1, 1), now.Add(decodedMaxAge/2))
	if c.freeCap == 0 {
		t.Fatal("free arrays dropped before the backlog lasted decodedMaxAge")
	}
	c.keep([]byte("d"), testEvents(1, 1), now.Add(decodedMaxAge)) // "a" expires
	if c.freeCap != 0 || len(c.free) != 0 || c.events != 0 {
		t.Fatalf("after a lasting backlog: %d events held, %d of room free in %d arrays; want none", c.events, c.freeCap, len(c.free))
	}
	c.recycle(make([]protocol.Event, 0, 1))
	if c.freeCap != 0 {
		t.Fatal("an array given back under a lasting backlog was kept")
	}
	c.caughtUp()
	c.keep([]byte("e"), testEvents(1, 2), now.Add(decodedMaxAge))
	e, ok := c.take([]byte("e"))
	if !ok {
		t.Fatal("no batch kept once derivations caught up")
	}
	c.recycle(e)
	if c.freeCap != cap(e) {
		t.Fatalf("%d of room free after caught up, want the array given back (%d)", c.freeCap, cap(e))
	}
}

// TestArrayCap: an array's room is its events' count rounded up by at
// most an eighth.
func TestArrayCap(t *testing.T) {
	for n := 1; n < 70_000; n++ {
		if c := arrayCap(n); c < n || c > n+n/8 || arrayCap(c) != c {
			t.Fatalf("arrayCap(%d) = %d, want in [%d, %d] and its own", n, c, n, n+n/8)
		}
	}
}

// heldCap is the room in the events arrays c keeps reachable: its
// entries' (taken ones' too, while order lists them) and the free ones.
func heldCap(c *decodedBatches) int {
	n := 0
	for _, b := range c.order {
		n += cap(b.events)
	}
	for _, a := range c.free {
		n += cap(a)
	}
	return n
}

// TestDecodedBatchesHoldNoTakenArrays: an entry never taken (its row
// derived from PostgreSQL before it was kept) at the head of the order
// does not keep the arrays of the entries taken after it alive: what the
// cache holds stays within its bound however many batches pass behind it.
func TestDecodedBatchesHoldNoTakenArrays(t *testing.T) {
	now := time.Unix(1_750_000_000, 0)
	c := newDecodedBatches(64)
	c.keep([]byte("never taken"), testEvents(1, 8), now)
	for i := range 200 {
		// Batches of sizes far apart, two kept at a time: the free
		// arrays seldom fit the next, and recycle drops those over the
		// bound.
		var wires [2][]byte
		for j := range wires {
			wires[j] = []byte(fmt.Sprintf("batch %d.%d", i, j))
			c.keep(wires[j], testEvents(1, 4+(i*7+j*13)%24), now)
		}
		for j, wire := range wires {
			kept, ok := c.take(wire)
			if !ok {
				t.Fatalf("batch %d.%d was not kept", i, j)
			}
			c.recycle(kept)
		}
	}
	if held := heldCap(c); held > roomFor(c.max) {
		t.Fatalf("the cache holds arrays with room for %d events, want at most %d (its bound)", held, roomFor(c.max))
	}
}
