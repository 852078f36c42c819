package sessions

import (
	"cmp"
	"slices"
	"sync"

	"github.com/avila-analytics/avila/protocol"
)

// run is a stretch of a batch's events, in batch order, of one device in
// time order: a request's events, or a visitor's while no other's came.
type run struct {
	site        uint32
	device      uint64
	first, last int64 // TimeMicros of its first and last event
	start, end  int32 // its events' indexes: [start, end)
}

func compareRuns(a, b run) int {
	return cmp.Or(cmp.Compare(a.site, b.site), cmp.Compare(a.device, b.device), cmp.Compare(a.first, b.first), cmp.Compare(a.start, b.start))
}

// orderScratch is the memory of an events order (of), reused across calls (a
// derivation's is hundreds of kilobytes, which a new allocation clears).
type orderScratch struct {
	order []int32
	runs  []run
}

var orderScratches = sync.Pool{New: func() any { return new(orderScratch) }}

// of returns the indexes of events in a stable order by site, device
// (Device) and time, as a stable sort would give them, in sc's memory:
// order is sc's until its next use.
//
// Events mostly come as runs of one device in time order (a request's
// events), and the runs of a device mostly follow each other in time:
// ordering the runs, not the events, gives the order, when no two runs of a
// device overlap in time. Otherwise the events are sorted.
func (sc *orderScratch) of(events []protocol.Event) (order []int32) {
	n := len(events)
	if cap(sc.order) < n {
		sc.order = make([]int32, n+n/4)
	}
	order = sc.order[:n]
	runs := sc.runs[:0]
	for i := range events {
		e := &events[i]
		d := Device(e)
		if l := len(runs) - 1; l >= 0 && runs[l].site == e.Site && runs[l].device == d && runs[l].last <= e.TimeMicros {
			runs[l].last, runs[l].end = e.TimeMicros, int32(i+1)
			continue
		}
		runs = append(runs, run{site: e.Site, device: d, first: e.TimeMicros, last: e.TimeMicros, start: int32(i), end: int32(i + 1)})
	}
	sc.runs = runs
	slices.SortFunc(runs, compareRuns)
	apart := true
	for i := 1; i < len(runs) && apart; i++ {
		p, r := &runs[i-1], &runs[i]
		// Equal times keep batch order: a run's events after an earlier
		// run's of the same time.
		apart = p.site != r.site || p.device != r.device || p.last < r.first || (p.last == r.first && p.start < r.start)
	}
	if !apart {
		for i := range order {
			order[i] = int32(i)
		}
		slices.SortStableFunc(order, func(a, b int32) int {
			ea, eb := &events[a], &events[b]
			return cmp.Or(cmp.Compare(ea.Site, eb.Site), cmp.Compare(Device(ea), Device(eb)), cmp.Compare(ea.TimeMicros, eb.TimeMicros))
		})
		return order
	}
	at := 0
	for _, r := range runs {
		for i := r.start; i < r.end; i++ {
			order[at] = i
			at++
		}
	}
	return order
}
