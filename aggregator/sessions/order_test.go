package sessions

import (
	"cmp"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/avila-analytics/avila/protocol"
)

// orderScratch.of gives the order a stable sort by site, device and time gives:
// for batches in runs of a device, with runs of a device apart, touching
// at equal times in either batch order, or overlapping, and across sites
// and client keys.
func TestEventOrderIsStableSort(t *testing.T) {
	want := func(events []protocol.Event) []int32 {
		order := make([]int32, len(events))
		for i := range order {
			order[i] = int32(i)
		}
		slices.SortStableFunc(order, func(a, b int32) int {
			ea, eb := &events[a], &events[b]
			return cmp.Or(cmp.Compare(ea.Site, eb.Site), cmp.Compare(Device(ea), Device(eb)), cmp.Compare(ea.TimeMicros, eb.TimeMicros))
		})
		return order
	}
	f := func(name string, events []protocol.Event) {
		t.Helper()
		got := new(orderScratch).of(events)
		if w := want(events); !slices.Equal(got, w) {
			t.Errorf("%s: order %v, want %v", name, got, w)
		}
	}
	e := func(site uint32, visitor, client uint64, at int64) protocol.Event {
		return protocol.Event{Site: site, Visitor: visitor, Client: client, TimeMicros: at}
	}
	f("empty", nil)
	f("runs apart", []protocol.Event{e(1, 7, 0, 1), e(1, 7, 0, 2), e(1, 8, 0, 1), e(1, 7, 0, 3), e(1, 8, 0, 2)})
	f("runs overlapping", []protocol.Event{e(1, 7, 0, 1), e(1, 7, 0, 5), e(1, 8, 0, 1), e(1, 7, 0, 3), e(1, 7, 0, 6)})
	f("later run earlier", []protocol.Event{e(1, 7, 0, 5), e(1, 7, 0, 6), e(1, 8, 0, 1), e(1, 7, 0, 1), e(1, 7, 0, 2)})
	f("equal times in batch order", []protocol.Event{e(1, 7, 0, 1), e(1, 7, 0, 2), e(1, 8, 0, 1), e(1, 7, 0, 2), e(1, 7, 0, 3)})
	f("equal times, later run first", []protocol.Event{e(1, 7, 0, 2), e(1, 7, 0, 3), e(1, 8, 0, 1), e(1, 7, 0, 1), e(1, 7, 0, 2)})
	f("sites", []protocol.Event{e(2, 7, 0, 1), e(1, 7, 0, 2), e(2, 7, 0, 3), e(1, 7, 0, 1)})
	f("client key", []protocol.Event{e(1, 99, 7, 2), e(1, 7, 0, 1), e(1, 99, 7, 3), e(1, 7, 0, 4)})
	rng := rand.New(rand.NewPCG(1, 2))
	// Rounds of fewer runs than radixRunsFrom and of more (sortRuns'
	// radix sort), with devices of a few values or of any (whose every
	// byte differs), one site or several.
	for round := range 700 {
		n, newRun, devices, sites := rng.IntN(400), 4, uint64(6), 2
		if round >= 500 {
			n, newRun = radixRunsFrom+rng.IntN(3*radixRunsFrom), 1+rng.IntN(2)
			if round%2 == 0 {
				devices = 0
			}
			if round%3 == 0 {
				sites = 1
			}
		}
		device := func() uint64 {
			if devices == 0 {
				return rng.Uint64()
			}
			return uint64(rng.IntN(int(devices)))
		}
		events := make([]protocol.Event, n)
		at := int64(0)
		for i := range events {
			if i == 0 || rng.IntN(newRun) == 0 { // a new run's device
				events[i] = e(uint32(1+rng.IntN(sites)), device(), 0, 0)
				if rng.IntN(5) == 0 {
					events[i].Client = device()
				}
			} else {
				events[i] = events[i-1]
			}
			at += int64(rng.IntN(3)) - int64(rng.IntN(2)) // mostly forward, with ties and steps back
			events[i].TimeMicros = at
		}
		f("random", events)
	}
}
