package redis

import (
	"slices"
	"sync"
	"time"

	"github.com/avila-analytics/avila/protocol"
)

// batchCounts is what RedisRealtime.Record adds of a batch, each event
// looked at once (count): per site and minute the distinct cells with
// their events, per site the users with an active event and the Unix
// second of the latest. Memory (addCounts) and Redis (recordRedis) both
// add it, so a batch costs one cell and one small-map write per event,
// and each store one write per distinct cell.
type batchCounts struct {
	minutes []minuteCounts
	active  []siteActive
	// sites has each site with an event in the window once, in the order
	// of their first events.
	sites []uint32
	// redis is recordRedis's arguments, kept for their room.
	redis redisArgs
}

// minuteCounts are a site minute's distinct cells and their events.
type minuteCounts struct {
	siteMinute
	cells map[Cell]int64
}

// siteActive are a site's users with an active event, and the Unix
// second of the latest.
type siteActive struct {
	site  uint32
	users map[uint64]int64
}

// batchPool holds batchCounts to count into: their maps keep their room
// from batch to batch.
var batchPool = sync.Pool{New: func() any { return new(batchCounts) }}

// count counts events into b (emptied first) as Record does in the window
// ending at t, each event i under users[i]: events older than the window
// are left out, and events stamped after t count at t.
func (b *batchCounts) count(events []protocol.Event, users []uint64, t time.Time) {
	now, nowSec := unixMinute(t), t.Unix()
	b.minutes, b.active, b.sites = b.minutes[:0], b.active[:0], b.sites[:0]
	var last siteMinute
	var cells map[Cell]int64 // last's: a batch's events mostly share their site and minute
	var sa *siteActive       // the last active event's site
	for i, k := range windowed(events, now) {
		if cells == nil || k != last {
			last, cells = k, b.minute(k, len(events)-i)
		}
		c := cellOf(&events[i], users[i])
		cells[c]++
		if !c.Active {
			continue
		}
		if sa == nil || sa.site != k.site {
			sa = b.siteActive(k.site)
		}
		at := min(events[i].TimeMicros/1_000_000, nowSec)
		if prev, ok := sa.users[c.Visitor]; !ok || at > prev {
			sa.users[c.Visitor] = at
		}
	}
}

// minute is the cells of k, made with room for size cells if new.
func (b *batchCounts) minute(k siteMinute, size int) map[Cell]int64 {
	for i := range b.minutes {
		if b.minutes[i].siteMinute == k {
			return b.minutes[i].cells
		}
	}
	if !slices.Contains(b.sites, k.site) {
		b.sites = append(b.sites, k.site)
	}
	b.minutes = slices.Grow(b.minutes, 1)
	b.minutes = b.minutes[:len(b.minutes)+1] // maybe an earlier batch's, emptied
	m := &b.minutes[len(b.minutes)-1]
	m.siteMinute = k
	if m.cells == nil {
		m.cells = make(map[Cell]int64, size)
	} else {
		clear(m.cells)
	}
	return m.cells
}

// siteActive is the active users of site.
func (b *batchCounts) siteActive(site uint32) *siteActive {
	for i := range b.active {
		if b.active[i].site == site {
			return &b.active[i]
		}
	}
	b.active = slices.Grow(b.active, 1)
	b.active = b.active[:len(b.active)+1] // maybe an earlier batch's, emptied
	a := &b.active[len(b.active)-1]
	a.site = site
	if a.users == nil {
		a.users = map[uint64]int64{}
	} else {
		clear(a.users)
	}
	return a
}

// addCounts adds b, the counts of events (each event i under users[i])
// in the window ending at t, to memory: one map write per distinct cell
// and user. It keeps what counting event by event (recordMemory) keeps:
// when a minute's distinct cells fill it up to MaxCells only in part,
// which of them it keeps depends on the events' order, so those minutes
// (one a minute at most) and the sites whose active users fill their
// bound in part are counted event by event.
func (r *Realtime) addCounts(b *batchCounts, events []protocol.Event, users []uint64, t time.Time) {
	now, nowSec := unixMinute(t), t.Unix()
	var dropped int64
	r.mu.Lock()
	for i := range b.minutes {
		m := &b.minutes[i]
		sl := r.slot(m.siteMinute, len(m.cells))
		if held := sl.cells.len(); held+len(m.cells) <= r.opts.MaxCells || held >= r.opts.MaxCells {
			// Room for them all, or for none.
			for c, n := range m.cells {
				if !sl.count(&c, n, r.opts.MaxCells) {
					dropped += n
				}
			}
			continue
		}
		for j, k := range windowed(events, now) {
			if k != m.siteMinute {
				continue
			}
			c := cellOf(&events[j], users[j])
			if !sl.count(&c, 1, r.opts.MaxCells) {
				dropped++
			}
		}
	}
	limit := r.opts.MaxCells * RealtimeWindow
	for _, sa := range b.active {
		rg := r.sites[sa.site]
		r.pruneActive(rg, now)
		if n := len(rg.active); n+len(sa.users) <= limit || n >= limit {
			for u, at := range sa.users {
				r.markActive(rg, u, at)
			}
			continue
		}
		for j, k := range windowed(events, now) {
			if k.site == sa.site && Active(&events[j]) {
				r.markActive(rg, users[j], min(events[j].TimeMicros/1_000_000, nowSec))
			}
		}
	}
	r.mu.Unlock()
	r.countDropped(dropped)
}
