package write

import (
	"math/rand/v2"
	"reflect"
	"testing"

	"github.com/avila-analytics/avila/aggregator/sessions"
	"github.com/avila-analytics/avila/protocol"
)

// TestVisitorRunsEqualLookups: assignScratch's eventVisitors and
// coverSessions, which take a run of one visitor's events through one
// look-up, give what a look-up per event gives (one scratch serving every
// seed, as a Writer's chunks one after another), over runs of random length, interleaved
// visitors, signed-in devices (clients, some of them another event's
// visitor), session ids and times inside and outside what the memory's
// latest sessions cover, and visitors the memory does not hold.
func TestVisitorRunsEqualLookups(t *testing.T) {
	var sc assignScratch
	for seed := range uint64(20) {
		rng := rand.New(rand.NewPCG(seed, 41))
		events := make([]protocol.Event, 2000)
		var cur protocol.Event
		for i := range events {
			if i == 0 || rng.IntN(8) == 0 {
				cur = protocol.Event{Visitor: 1 + rng.Uint64N(60)}
				if rng.IntN(10) == 0 {
					cur.Client = 1 + rng.Uint64N(80)
				}
			}
			e := cur
			e.TimeMicros = 1_000_000_000 + rng.Int64N(4_000_000_000)
			if rng.IntN(3) != 0 {
				e.SessionID = 1 + rng.Int64N(100)
			}
			events[i] = e
		}
		cached := map[uint64]sessions.Session{}
		for v := uint64(1); v <= 60; v++ {
			if rng.IntN(4) != 0 {
				cached[v] = sessions.Session{ID: 1 + rng.Int64N(100), Start: 1_000_000_000 + rng.Int64N(4_000_000_000)}
			}
		}

		// A look-up per event, as assignSessions made them.
		seen := map[uint64]bool{}
		var wantVisitors []uint64
		lo, hi := events[0].TimeMicros, events[0].TimeMicros
		for i := range events {
			e := &events[i]
			if !seen[e.Visitor] {
				seen[e.Visitor] = true
				wantVisitors = append(wantVisitors, e.Visitor)
			}
			if e.Client != 0 && !seen[e.Client] {
				seen[e.Client] = true
				wantVisitors = append(wantVisitors, e.Client)
			}
			lo, hi = min(lo, e.TimeMicros), max(hi, e.TimeMicros)
		}
		want := map[uint64]bool{}
		for v := range cached {
			want[v] = true
		}
		for i := range events {
			e := &events[i]
			if e.Client != 0 {
				want[e.Visitor], want[e.Client] = false, false
				continue
			}
			if want[e.Visitor] && !sessions.CacheCovers(cached[e.Visitor], e.SessionID, e.TimeMicros) {
				want[e.Visitor] = false
			}
		}

		gotLo, gotHi := sc.eventVisitors(events)
		visitors := sc.visitors
		if !reflect.DeepEqual(visitors, wantVisitors) || gotLo != lo || gotHi != hi {
			t.Fatalf("seed %d: visitors %v from %d to %d, want %v from %d to %d", seed, visitors, gotLo, gotHi, wantVisitors, lo, hi)
		}
		for i := range events {
			if visitors[sc.place[i]] != events[i].Visitor {
				t.Fatalf("seed %d: event %d placed at visitor %d, want %d", seed, i, visitors[sc.place[i]], events[i].Visitor)
			}
		}
		sc.cached, sc.covered = grownTo(sc.cached, len(visitors)), grownTo(sc.covered, len(visitors))
		for j, v := range visitors {
			sc.cached[j], sc.covered[j] = cached[v]
		}
		sc.coverSessions(events)
		for j, v := range visitors {
			if sc.covered[j] != want[v] {
				t.Fatalf("seed %d: visitor %d covered %v, want %v", seed, v, sc.covered[j], want[v])
			}
		}
	}
}
