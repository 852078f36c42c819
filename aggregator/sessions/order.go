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
	// keys and keysTo are the arrays sortRuns' radix sort moves the
	// runs' keys between; sorted holds the runs in the order it gives.
	keys, keysTo []runKey
	sorted       []run
}

// runKey is a run's site and device, and its index among the runs.
type runKey struct {
	device uint64
	site   uint32
	at     int32
}

// radixRunsFrom is the least number of runs sortRuns sorts by radix:
// below it, slices.SortFunc costs less than the radix sort's counts.
const radixRunsFrom = 512

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
	runs = sc.sortRuns(runs)
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

// sortRuns returns runs, made in batch order, in compareRuns' order: as
// slices.SortFunc gives it (in place) when they are few. Otherwise in
// sc's memory, sorted by radix, each pass a stable counting sort of the
// runs' keys by one byte: of the device, the lowest first, then of the
// site, a pass skipped when every run has the same byte there (a
// derivation's runs share their site). Stable, it leaves the runs of a
// device in batch order (start), which is also their time order unless a
// later run has earlier events: such a device's runs are then sorted by
// their first event, stably. Each event of interleaved traffic (one-event
// requests, as most of gtag.js's are) is a run of its own, and
// slices.SortFunc's comparisons of 40-byte runs cost several times the
// radix sort there (BenchmarkEventOrder).
func (sc *orderScratch) sortRuns(runs []run) []run {
	n := len(runs)
	if n < radixRunsFrom {
		slices.SortFunc(runs, compareRuns)
		return runs
	}
	if cap(sc.keys) < n {
		sc.keys, sc.keysTo = make([]runKey, n+n/4), make([]runKey, n+n/4)
	}
	keys, to := sc.keys[:n], sc.keysTo[:n]
	// The counts of each byte of the device (passes 0-7) and the site
	// (8-11), taken in one read.
	var counts [12][256]int32
	for i := range runs {
		r := &runs[i]
		keys[i] = runKey{device: r.device, site: r.site, at: int32(i)}
		for b := range 8 {
			counts[b][byte(r.device>>(8*b))]++
		}
		for b := range 4 {
			counts[8+b][byte(r.site>>(8*b))]++
		}
	}
	for pass := range counts {
		c := &counts[pass]
		byteOf := func(k *runKey) byte {
			if pass < 8 {
				return byte(k.device >> (8 * pass))
			}
			return byte(k.site >> (8 * (pass - 8)))
		}
		if c[byteOf(&keys[0])] == int32(n) {
			continue
		}
		var at int32
		for i, m := range c {
			c[i], at = at, at+m
		}
		for i := range keys {
			d := byteOf(&keys[i])
			to[c[d]] = keys[i]
			c[d]++
		}
		keys, to = to, keys
	}
	if cap(sc.sorted) < n {
		sc.sorted = make([]run, n+n/4)
	}
	sorted := sc.sorted[:n]
	for i := range keys {
		sorted[i] = runs[keys[i].at]
	}
	// A device's runs out of time order: sorted by their first event.
	for lo := 0; lo < n; {
		hi, inOrder := lo+1, true
		for ; hi < n && sorted[hi].site == sorted[lo].site && sorted[hi].device == sorted[lo].device; hi++ {
			inOrder = inOrder && sorted[hi-1].first <= sorted[hi].first
		}
		if !inOrder {
			slices.SortStableFunc(sorted[lo:hi], func(a, b run) int { return cmp.Compare(a.first, b.first) })
		}
		lo = hi
	}
	return sorted
}
