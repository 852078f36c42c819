package redis

import (
	"context"
	"maps"
	"math/rand/v2"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/avila-analytics/avila/protocol"
)

// randString is one of a few strings, often a copy at another address
// (as events decoded apart carry them), sometimes "" at an address.
func randString(rng *rand.Rand, values []string) string {
	s := values[rng.IntN(len(values))]
	switch rng.IntN(4) {
	case 0:
		return strings.Clone(s)
	case 1:
		if s == "" {
			return addressed[1:1] // "" that has an address
		}
	}
	return s
}

// addressed is a string not known at compile time, whose empty slices
// have an address.
var addressed = strings.Repeat("x", 2)

var tableValues = [5][]string{
	{"page_view", "scroll", "click", "", "user_engagement"},
	{"DE", "FR", "", "US"},
	{"Berlin", "Paris", "", "Nice"},
	{"desktop", "mobile", ""},
	{"Home", "Page 1", "Page 2", "Page 12", "Page 21", "", "A long page title | Bench Example blog"},
}

func randCell(rng *rand.Rand) Cell {
	return Cell{EventName: randString(rng, tableValues[0]), Country: randString(rng, tableValues[1]),
		City: randString(rng, tableValues[2]), Device: randString(rng, tableValues[3]),
		Screen: randString(rng, tableValues[4]), Visitor: uint64(rng.IntN(40)), Active: rng.IntN(2) == 0}
}

// sameCell and the table's hash read a cell field by field: a field they
// do not know of would make cells that differ in it count as one.
func TestCellFieldsKnown(t *testing.T) {
	if n := reflect.TypeFor[Cell]().NumField(); n != 8 {
		t.Fatalf("Cell has %d fields: sameCell and cellHasher.hash read 7 (and _)", n)
	}
}

// sameCell is ==, whether the cells' strings are the same strings or
// equal copies.
func TestSameCellIsEqual(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for range 200_000 {
		a, b := randCell(rng), randCell(rng)
		if rng.IntN(3) == 0 {
			b = a
			b.Screen = randString(rng, []string{a.Screen})
		}
		if got, want := sameCell(&a, &b), a == b; got != want {
			t.Fatalf("sameCell(%+v, %+v) = %v, == says %v", a, b, got, want)
		}
	}
}

// A cellTable holds what a map[Cell]int64 counting the same cells holds,
// through growth and drops, whatever the addresses of the cells' strings;
// equal cells hash alike.
func TestCellTableMatchesMap(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	hs := newCellHasher()
	for round := range 20 {
		var tb cellTable
		tb.reset(hs, rng.IntN(4))
		want := map[Cell]int64{}
		for step := range 5000 {
			c := randCell(rng)
			c.Visitor += uint64(round * 7) // a few more cells each round
			copyOf := c
			copyOf.EventName, copyOf.Screen = strings.Clone(c.EventName), strings.Clone(c.Screen)
			if hs.hash(&c) != hs.hash(&copyOf) {
				t.Fatalf("equal cells %+v hash apart", c)
			}
			if _, ok := want[c]; tb.holds(&c) != ok {
				t.Fatalf("round %d step %d: holds(%+v) = %v, map %v", round, step, c, !ok, ok)
			}
			n := int64(rng.IntN(3) + 1)
			tb.add(&copyOf, n)
			want[c] += n
			if rng.IntN(500) == 0 {
				gone := map[uint64]bool{uint64(rng.IntN(60)): true, uint64(rng.IntN(60)): true}
				had := false
				for c := range want {
					if gone[c.Visitor] {
						delete(want, c)
						had = true
					}
				}
				if tb.drop(gone) != had {
					t.Fatalf("round %d step %d: drop says %v, the map held %v", round, step, !had, had)
				}
			}
			if step%250 == 0 || step == 4999 {
				if got := tb.cells(); !maps.Equal(got, want) || tb.len() != len(want) {
					t.Fatalf("round %d step %d: table holds %d cells %v, map %d %v", round, step, tb.len(), got, len(want), want)
				}
			}
		}
	}
}

// refMinutes counts events as the memory store did with a map[Cell]int64
// a minute: each event of a minute that holds maxCells cells counts only
// if the minute holds its cell.
type refMinutes struct {
	maxCells int
	minutes  map[siteMinute]map[Cell]int64
	dropped  int
}

func (m *refMinutes) record(events []protocol.Event, now int64) {
	for i, k := range windowed(events, now) {
		for old := range m.minutes {
			if old.site == k.site && old.minute != k.minute && old.minute%RealtimeWindow == k.minute%RealtimeWindow && old.minute < k.minute {
				delete(m.minutes, old)
			}
		}
		cells := m.minutes[k]
		if cells == nil {
			cells = map[Cell]int64{}
			m.minutes[k] = cells
		}
		c := cellOf(&events[i], events[i].Visitor)
		if _, ok := cells[c]; !ok && len(cells) >= m.maxCells {
			m.dropped++
			continue
		}
		cells[c]++
	}
}

func (m *refMinutes) forget(site uint32, gone map[uint64]bool) {
	for k, cells := range m.minutes {
		if k.site != site {
			continue
		}
		for c := range cells {
			if gone[c.Visitor] {
				delete(cells, c)
			}
		}
	}
}

// Memory's minutes (each event counted, Record's way, or a batch's
// distinct cells added, RedisRealtime's way) hold exactly the cells and
// counts a map a minute held, over random traffic that fills minutes to
// MaxCells, moves on by minutes (reusing slots), and forgets visitors.
func TestRealtimeCellsMatchMaps(t *testing.T) {
	for _, batched := range []bool{false, true} {
		rng := rand.New(rand.NewPCG(5, 6))
		clock := rtNow
		r := NewRealtime(RealtimeOptions{Now: func() time.Time { return clock }, MaxCells: 12})
		ref := &refMinutes{maxCells: 12, minutes: map[siteMinute]map[Cell]int64{}}
		for step := range 400 {
			if rng.IntN(8) == 0 {
				clock = clock.Add(time.Duration(rng.IntN(40)) * time.Minute)
			}
			events := make([]protocol.Event, rng.IntN(120))
			for i := range events {
				c := randCell(rng)
				events[i] = protocol.Event{Site: uint32(1 + rng.IntN(2)), Visitor: c.Visitor, Name: c.EventName,
					Country: c.Country, City: c.City, Device: c.Device, Title: c.Screen, Path: "/p?q",
					TimeMicros: clock.Add(-time.Duration(rng.IntN(3)) * time.Minute).UnixMicro()}
				if rng.IntN(10) == 0 { // now and then a minute further back, or out of the window
					events[i].TimeMicros = clock.Add(-time.Duration(rng.IntN(35)) * time.Minute).UnixMicro()
				}
				if c.Active {
					events[i].EngageMs = 1
				}
			}
			users := make([]uint64, len(events))
			for i := range events {
				users[i] = events[i].Visitor
			}
			now := unixMinute(clock)
			if batched {
				var b batchCounts
				b.count(events, users, clock)
				r.addCounts(&b, events, users, clock)
			} else {
				r.recordMemory(events, users)
			}
			ref.record(events, now)
			if rng.IntN(20) == 0 {
				site, gone := uint32(1+rng.IntN(2)), map[uint64]bool{uint64(rng.IntN(40)): true}
				r.forget(site, gone)
				ref.forget(site, gone)
			}
			for site := uint32(1); site <= 2; site++ {
				w, _ := r.Window(context.Background(), site)
				got := map[int64]map[Cell]int64{}
				for _, m := range w.Minutes {
					got[m.Minute] = m.Cells
				}
				for k, cells := range ref.minutes {
					if k.site != site || k.minute <= now-RealtimeWindow || len(cells) == 0 {
						continue
					}
					if !maps.Equal(got[k.minute], cells) {
						t.Fatalf("batched %v, step %d, site %d minute %d: memory holds %v, the map %v", batched, step, site, k.minute, got[k.minute], cells)
					}
					delete(got, k.minute)
				}
				if len(got) > 0 {
					t.Fatalf("batched %v, step %d, site %d: memory holds minutes the map does not: %v", batched, step, site, got)
				}
			}
		}
		if got := r.DroppedCells(); got != uint64(ref.dropped) {
			t.Fatalf("batched %v: dropped %d events, the maps %d", batched, got, ref.dropped)
		}
	}
}

// Memory marks a batch's active users once a run of their events, at the
// latest: what marking them event by event leaves, also where a site's
// users reach their bound (MaxCells × RealtimeWindow).
func TestRealtimeActiveRunsMatchEvents(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 8))
	clock := rtNow
	opts := RealtimeOptions{Now: func() time.Time { return clock }, MaxCells: 10}
	r, ref := NewRealtime(opts), NewRealtime(opts)
	for step := range 300 {
		clock = clock.Add(time.Duration(rng.IntN(3)) * time.Minute)
		events := make([]protocol.Event, rng.IntN(200))
		for i := range events {
			e := &events[i]
			if i > 0 && rng.IntN(3) > 0 {
				*e = events[i-1] // runs of a user's events
			} else {
				*e = protocol.Event{Site: uint32(1 + rng.IntN(2)), Visitor: uint64(rng.IntN(700)), Name: "e"}
			}
			e.TimeMicros = clock.Add(-time.Duration(rng.IntN(120)) * time.Second).UnixMicro()
			e.EngageMs = int64(rng.IntN(2))
		}
		users := make([]uint64, len(events))
		for i := range events {
			users[i] = events[i].Visitor
		}
		r.recordMemory(events, users)
		// Event by event, as memory marked them before.
		now, nowSec := unixMinute(clock), clock.Unix()
		for i, k := range windowed(events, now) {
			ref.slot(k, 1)
			if Active(&events[i]) {
				rg := ref.sites[k.site]
				ref.pruneActive(rg, now)
				ref.markActive(rg, users[i], min(events[i].TimeMicros/1_000_000, nowSec))
			}
		}
		for site, rg := range ref.sites {
			if got := r.sites[site].active; !maps.Equal(got, rg.active) {
				t.Fatalf("step %d site %d: %d active users %v, event by event %d %v", step, site, len(got), got, len(rg.active), rg.active)
			}
		}
	}
	if n := len(r.sites[1].active); n != 10*RealtimeWindow {
		t.Fatalf("BUG: the test's site holds %d active users, short of the bound", n)
	}
}

// holds reports whether t holds c.
func (t *cellTable) holds(c *Cell) bool { return t.find(c, t.hash(c)) >= 0 }
