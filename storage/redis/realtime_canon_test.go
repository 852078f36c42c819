package redis

import (
	"context"
	"maps"
	"math/rand/v2"
	"strings"
	"testing"
	"time"
)

// prefixes are strings that share their bytes' address, each a prefix of
// the next: the same address, other lengths.
var prefixes = func() []string {
	s := strings.Repeat("Page 1", 3)
	return []string{s[:4], s[:5], s[:6], s[:7], s}
}()

// collidingCell is a random cell of few values, its strings often copies
// or prefixes of each other at one address.
func collidingCell(rng *rand.Rand) Cell {
	c := randCell(rng)
	c.Visitor %= 4
	if rng.IntN(3) == 0 {
		c.Screen = prefixes[rng.IntN(len(prefixes))]
	}
	if rng.IntN(4) == 0 {
		c.EventName = prefixes[rng.IntN(len(prefixes))]
	}
	return c
}

// A cellTable whose cells all share one tag (every cell a collision)
// still holds what a map[Cell]int64 holds: the cells' strings decide,
// whatever their addresses.
func TestCellTableCollisionsMatchMap(t *testing.T) {
	rng := rand.New(rand.NewPCG(9, 10))
	var tb cellTable
	tb.reset(newCellHasher(), 4)
	want := map[Cell]int64{}
	for step := range 5000 {
		c := collidingCell(rng)
		tag := uint32(rng.IntN(2)) // every cell on one of two tags
		i := -1
		for _, tg := range []uint32{0, 1} {
			if j := tb.find(&c, tg); j >= 0 {
				i = j
			}
		}
		if _, held := want[c]; (i >= 0) != held {
			t.Fatalf("step %d: table finds %+v: %v, the map holds it: %v", step, c, i >= 0, held)
		}
		if i >= 0 {
			tb.count(i, 1)
		} else {
			tb.insert(&c, tag, 1)
		}
		want[c]++
	}
	if got := tb.cells(); !maps.Equal(got, want) {
		t.Fatalf("table holds %d cells, the map %d", len(got), len(want))
	}
}

// Cells hashed by a hasher that forgets its values now and then (its
// bounds small) are counted as a map counts them: cells of one value
// taken before and after it forgot hold equal strings at other addresses.
func TestCellTableForgettingHasherMatchesMap(t *testing.T) {
	rng := rand.New(rand.NewPCG(11, 12))
	for _, bound := range []struct{ strings, bytes int }{{1, 1 << 20}, {3, 1 << 20}, {1 << 10, 12}} {
		hs := newCellHasher()
		hs.maxStrings, hs.maxBytes = bound.strings, bound.bytes
		var tb cellTable
		tb.reset(hs, 1)
		want := map[Cell]int64{}
		for step := range 20_000 {
			c := collidingCell(rng)
			if _, ok := want[c]; tb.holds(&c) != ok {
				t.Fatalf("bound %v, step %d: holds(%+v) = %v, map %v", bound, step, c, !ok, ok)
			}
			tb.add(&c, 1)
			want[c]++
		}
		if got := tb.cells(); !maps.Equal(got, want) {
			t.Fatalf("bound %v: table holds %d cells, the map %d", bound, len(got), len(want))
		}
		if len(hs.canon) > bound.strings || hs.canonBytes > bound.bytes {
			t.Fatalf("bound %v: the hasher holds %d values of %d bytes", bound, len(hs.canon), hs.canonBytes)
		}
	}
}

// Record counts the bench's traffic as maps count it, event by event,
// into a minute that fills (MaxCells) and one that holds every cell,
// with the batches counted again at other addresses (decoded apart).
func TestRealtimeRecordTrafficMatchesMaps(t *testing.T) {
	first := time.Date(2026, 12, 6, 12, 0, 0, 0, time.UTC)
	batches := trafficBatches(t, first, 8)
	batches = append(batches, apart(batches)...) // persistent visitors, each in one session: users are visitors
	clock := first.Add(50 * time.Second)
	for _, maxCells := range []int{15_000, 1 << 20} {
		r := NewRealtime(RealtimeOptions{Now: func() time.Time { return clock }, MaxCells: maxCells})
		ref := &refMinutes{maxCells: maxCells, minutes: map[siteMinute]map[Cell]int64{}}
		for _, evs := range batches {
			r.Record(context.Background(), evs)
			ref.record(evs, unixMinute(clock))
		}
		w, _ := r.Window(context.Background(), 1)
		if len(w.Minutes) != 1 || len(ref.minutes) != 1 {
			t.Fatalf("max cells %d: %d minutes, the maps %d", maxCells, len(w.Minutes), len(ref.minutes))
		}
		for _, cells := range ref.minutes {
			if !maps.Equal(w.Minutes[0].Cells, cells) {
				t.Fatalf("max cells %d: memory holds %d cells, the map %d", maxCells, len(w.Minutes[0].Cells), len(cells))
			}
		}
		if got := r.DroppedCells(); got != uint64(ref.dropped) {
			t.Fatalf("max cells %d: dropped %d events, the maps %d", maxCells, got, ref.dropped)
		}
		if maxCells < 1<<20 && ref.dropped == 0 {
			t.Fatalf("BUG: max cells %d dropped nothing", maxCells)
		}
	}
}
