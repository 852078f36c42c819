package redis

import (
	"context"
	"maps"
	"testing"
	"time"

	"github.com/avila-analytics/avila/protocol"
)

// A full minute (MaxCells) counts the events of the cells it holds and
// drops the others exactly, also those of cells that share a held cell's
// probe (same visitor, string lengths and last bytes) and differ only in
// earlier bytes; after Forget makes room, a new cell counts, also once
// the minute is full again (a filter of the cells before would drop it). Memory alone (Record) and memory beside
// Redis (a batch's distinct cells, addCounts) alike; and a minute that
// takes the slot of a full one fills and counts its own cells.
func TestRealtimeFullMinuteCountsExactly(t *testing.T) {
	ctx := context.Background()
	clock := rtNow
	now := func() time.Time { return clock }
	ev := func(visitor uint64, title, country string) protocol.Event {
		e := at(0, 1, visitor, "page_view")
		e.Title, e.Country = title, country
		return e
	}
	held := []protocol.Event{ev(1, "Aaaa page 12345678", "DE"), ev(2, "Aaaa page 12345678", "DE"), ev(3, "x", "FR")}
	twins := []protocol.Event{ev(1, "Bbbb page 12345678", "DE"), ev(1, "Aaaa page 12345678", "FR"), ev(3, "x", "DK")}
	for _, e := range twins[:2] {
		c, h := cellOf(&e, e.Visitor), cellOf(&held[0], held[0].Visitor)
		if cellProbe(&c) != cellProbe(&h) {
			t.Fatalf("BUG: the test's twin %+v has a probe of its own", c)
		}
	}
	type recorder interface {
		Record(context.Context, []protocol.Event)
	}
	stores := map[string]func() (recorder, *Realtime){
		"memory": func() (recorder, *Realtime) {
			r := NewRealtime(RealtimeOptions{Now: now, MaxCells: 3})
			return r, r
		},
		"batch counts": func() (recorder, *Realtime) {
			r := NewRealtime(RealtimeOptions{Now: now, MaxCells: 3})
			return batchRecorder{r}, r
		},
	}
	for name, open := range stores {
		rec, mem := open()
		rec.Record(ctx, held)
		rec.Record(ctx, append(append([]protocol.Event{}, twins...), held...))
		want := map[Cell]int64{}
		for _, e := range held {
			want[cellOf(&e, e.Visitor)] = 2
		}
		check := func(when string) {
			t.Helper()
			w, _ := mem.Window(ctx, 1)
			if len(w.Minutes) != 1 || !maps.Equal(w.Minutes[0].Cells, want) {
				t.Fatalf("%s, %s: cells %v, want %v", name, when, w.Minutes, want)
			}
		}
		check("full")
		if err := mem.Forget(ctx, 1, []uint64{3}); err != nil {
			t.Fatal(err)
		}
		delete(want, cellOf(&held[2], 3))
		// Room for one: a new visitor's cell takes it, and counts again
		// once the minute is full; the twins stay out.
		newcomer := ev(4, "y", "SE")
		rec.Record(ctx, append([]protocol.Event{newcomer}, twins...))
		rec.Record(ctx, append([]protocol.Event{newcomer}, twins...))
		want[cellOf(&newcomer, 4)] = 2
		check("refilled after Forget")

		// 30 minutes on, the minute's slot holds a new minute, which fills
		// and counts its own cells.
		clock = rtNow.Add(RealtimeWindow * time.Minute)
		later := []protocol.Event{ev(5, "a", "DE"), ev(6, "b", "DE"), ev(7, "c", "DE")}
		want = map[Cell]int64{}
		for i := range later {
			later[i].TimeMicros = clock.UnixMicro()
			want[cellOf(&later[i], later[i].Visitor)] = 2
		}
		rec.Record(ctx, later)
		rec.Record(ctx, later)
		check("a minute in a reused slot")
		clock = rtNow
	}
}

// batchRecorder records as RedisRealtime's memory does: a batch's
// distinct cells counted first (batchCounts), then added (addCounts).
type batchRecorder struct{ r *Realtime }

func (b batchRecorder) Record(_ context.Context, events []protocol.Event) {
	users := make([]uint64, len(events))
	for i := range events {
		users[i] = events[i].Visitor
	}
	var bc batchCounts
	t := b.r.opts.Now()
	bc.count(events, users, t)
	b.r.addCounts(&bc, events, users, t)
}
