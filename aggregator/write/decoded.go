package write

import (
	"bytes"
	"hash/maphash"
	"math/bits"
	"slices"
	"sync"
	"time"

	"github.com/avila-analytics/avila/protocol"
)

// decodedMaxAge is how long decodedBatches keeps a batch's events: a
// batch this node staged is derived within a pass or two (Config.Every),
// unless another node holds its site's derivation (then never here).
const decodedMaxAge = 10 * time.Second

// decodedBatches holds the events of batches this Writer staged in their
// wire form (WriteWireBatch), which ingest decoded already, so the
// derivation that takes their staged rows copies them instead of decoding
// the payloads again (decoding is a tenth of the aggregator's CPU).
//
// The staged row stays the truth: an entry serves only a row whose
// payload is byte for byte the wire it was kept with (so decoding the row
// would give exactly its events), and it serves once. A row without one
// (another node staged it, this process restarted, the entry was refused
// when full or expired, or taken by a derivation that rolled back) is
// decoded as before. Entries are kept after their batch's stage committed
// and before the derivation is woken.
//
// Memory is bounded by max events (about 400 bytes each, plus their
// compressed wire), held or in arrays free for reuse (whose room may
// pass it by an eighth, roomFor): when full, new batches are not kept,
// so under a backlog the oldest batches, which derivations take first,
// stay; and none is kept until derivations have caught up with the
// staged rows (behind). A backlog lasting decodedMaxAge drops the free
// arrays too, until derivations catch up. Entries older than
// decodedMaxAge go when the next batch is kept, their arrays free for
// reuse. Safe for concurrent use.
type decodedBatches struct {
	seed maphash.Seed
	max  int

	mu     sync.Mutex
	byHash map[uint64][]*decodedBatch // by maphash of the wire
	order  []*decodedBatch            // in the order kept, for expiry
	events int                        // events held
	// free holds the cleared arrays of taken entries, for the next
	// batches kept to reuse instead of allocating as many (about 400
	// bytes an event) afresh; their capacity totals freeCap, and
	// events+freeCap stays within roomFor(max).
	free    [][]protocol.Event
	freeCap int
	// behind is set when a batch was not kept for want of room, and
	// cleared when a derivation finds the staged rows caught up
	// (caughtUp): until then, batches kept would be newer than rows not
	// kept, so derivations would reach them only after those, often after
	// they expired, and under a lasting backlog their copies would cost
	// memory and time for nothing.
	behind bool
	// behindSince is when behind was last set; once it lasted
	// decodedMaxAge, the free arrays are dropped and no more are kept
	// until derivations catch up (idle): under a lasting backlog they
	// would be live heap the collector marks, for no batch kept.
	behindSince time.Time
	idle        bool
}

// decodedBatch is one staged batch's wire and events.
type decodedBatch struct {
	hash   uint64
	wire   []byte
	events []protocol.Event
	at     time.Time
	gone   bool // taken or dropped
}

func newDecodedBatches(max int) *decodedBatches {
	return &decodedBatches{seed: maphash.MakeSeed(), max: max, byHash: make(map[uint64][]*decodedBatch)}
}

// keep holds copies of wire and events, the events DecodeBatch of wire
// gives (the caller's are reused once it returns), unless that would pass
// the bound.
func (c *decodedBatches) keep(wire []byte, events []protocol.Event, now time.Time) {
	if c.max <= 0 || len(events) == 0 {
		return
	}
	h := maphash.Bytes(c.seed, wire)
	c.mu.Lock()
	defer c.mu.Unlock()
	c.expire(now)
	if c.behind {
		if !c.idle && now.Sub(c.behindSince) >= decodedMaxAge {
			c.idle = true
			clear(c.free)
			c.free, c.freeCap = c.free[:0], 0
		}
		return
	}
	if c.events+len(events) > c.max {
		c.behind, c.behindSince = true, now
		return
	}
	b := &decodedBatch{hash: h, wire: bytes.Clone(wire), events: append(c.array(len(events)), events...), at: now}
	c.byHash[h] = append(c.byHash[h], b)
	c.order = append(c.order, b)
	c.events += len(events)
	for len(c.free) > 0 && c.events+c.freeCap > roomFor(c.max) {
		last := len(c.free) - 1
		c.freeCap -= cap(c.free[last])
		c.free[last] = nil
		c.free = c.free[:last]
	}
}

// caughtUp tells c that a derivation took every row staged of its site:
// batches kept from now on are the next ones derivations take.
func (c *decodedBatches) caughtUp() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.behind, c.idle = false, false
}

// array returns an empty array with room for n events (mu held): the
// smallest free one with room for n and at most an eighth more, else a
// new one of arrayCap(n).
func (c *decodedBatches) array(n int) []protocol.Event {
	best, most := -1, n+n/8
	for i, a := range c.free {
		if cap(a) >= n && cap(a) <= most && (best < 0 || cap(a) < cap(c.free[best])) {
			best = i
		}
	}
	if best >= 0 {
		a := c.free[best]
		c.freeCap -= cap(a)
		c.free = slices.Delete(c.free, best, best+1)
		return a
	}
	return make([]protocol.Event, 0, arrayCap(n))
}

// roomFor is the room in events arrays held and free may have when
// max events are kept: an array may have room for an eighth more than
// its batch (arrayCap).
func roomFor(max int) int { return max + max/8 }

// arrayCap is the capacity of an array made for n events: n rounded up
// to a multiple of an eighth of the largest power of two not above it,
// so at most an eighth more, and batches of about the same size (an
// agent's segments are sealed at a count or a time) reuse each other's
// arrays.
func arrayCap(n int) int {
	if n < 16 {
		return n
	}
	step := 1 << (bits.Len(uint(n)) - 4)
	return (n + step - 1) &^ (step - 1)
}

// recycle gives back the array of events take returned, once the caller
// no longer uses them, for keep to reuse.
func (c *decodedBatches) recycle(events []protocol.Event) {
	clear(events[:cap(events)]) // the array keeps no strings or maps alive
	c.mu.Lock()
	defer c.mu.Unlock()
	c.release(events)
}

// release adds a cleared array to the free ones, within the bound (mu
// held).
func (c *decodedBatches) release(events []protocol.Event) {
	if c.idle || c.events+c.freeCap+cap(events) > roomFor(c.max) {
		return
	}
	c.free = append(c.free, events[:0])
	c.freeCap += cap(events)
}

// expire drops the entries kept before now-decodedMaxAge and forgets taken
// ones at the head of the order.
func (c *decodedBatches) expire(now time.Time) {
	i := 0
	for ; i < len(c.order); i++ {
		b := c.order[i]
		if !b.gone && now.Sub(b.at) < decodedMaxAge {
			break
		}
		if !b.gone {
			c.remove(b)
			clear(b.events[:cap(b.events)])
			c.release(b.events)
			b.events = nil
		}
	}
	clear(c.order[:i])
	c.order = c.order[i:]
}

// remove takes b out of byHash and the count (mu held).
func (c *decodedBatches) remove(b *decodedBatch) {
	b.gone = true
	c.events -= len(b.events)
	list := slices.DeleteFunc(c.byHash[b.hash], func(x *decodedBatch) bool { return x == b })
	if len(list) == 0 {
		delete(c.byHash, b.hash)
	} else {
		c.byHash[b.hash] = list
	}
}

// take returns the events kept with a wire equal to payload, and forgets
// them; ok is false when there are none. The caller may give their array
// back with recycle.
func (c *decodedBatches) take(payload []byte) (events []protocol.Event, ok bool) {
	if c.max <= 0 {
		return nil, false
	}
	h := maphash.Bytes(c.seed, payload)
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, b := range c.byHash[h] {
		if bytes.Equal(b.wire, payload) {
			c.remove(b)
			// order keeps b until the entries kept before it go: its
			// array is the caller's now, and held by b it would stay
			// live, uncounted, behind an entry never taken (a row that
			// a derivation took from PostgreSQL before its batch was
			// kept) for up to decodedMaxAge.
			events = b.events
			b.events, b.wire = nil, nil
			return events, true
		}
	}
	return nil, false
}
