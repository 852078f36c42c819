package write

import (
	"bytes"
	"hash/maphash"
	"slices"
	"sync"
	"time"

	"github.com/avila-analytics/avila/protocol"
)

// decodedMaxAge is how long decodedBatches keeps a batch's events: a
// batch this node staged is derived within a pass or two (Config.Every),
// unless another node holds its site's derivation (then never here).
const decodedMaxAge = 10 * time.Second

// decodedBatches holds the batches this Writer staged in their wire form
// (WriteWireBatch), which ingest decoded already, so the derivation that
// takes their staged rows copies their events instead of decoding the
// payloads again (decoding is a tenth of the aggregator's CPU).
//
// The staged row stays the truth: an entry serves only a row whose
// payload is byte for byte the wire it was kept with (so decoding the row
// would give exactly its events), and it serves once. A row without one
// (another node staged it, this process restarted, the entry was refused
// when full or expired, or taken by a derivation that rolled back) is
// decoded as before. Entries are kept after their batch's stage committed
// and before the derivation is woken.
//
// It also lends ingest the batches it decodes into (get): an entry holds
// the batch ingest decoded itself, not a copy, and a batch goes back to
// the free ones (put) once neither its entry (until the derivation that
// took it copied its events, or it expired) nor ingest (Writer.Release)
// holds it, so a batch's array is never decoded into while its events are
// in use. Its events are about 400 bytes each: a fresh array per batch
// is memory the runtime must clear, collect and fault in again, and a
// copy of them per batch kept as much again.
//
// Memory is bounded by max events (those of the batches kept, and the
// room of the free ones; plus the kept batches' compressed wire and the
// room their arrays have past their events; the batches lent to ingest
// are bounded by the batches it handles at once): when full, new batches are not kept, so
// under a backlog the oldest batches, which derivations take first, stay;
// and none is kept until derivations have caught up with the staged rows
// (behind). Entries older than decodedMaxAge go when the next batch is
// kept. Safe for concurrent use.
type decodedBatches struct {
	seed maphash.Seed
	max  int

	mu     sync.Mutex
	byHash map[uint64][]*decodedBatch // by maphash of the wire
	order  []*decodedBatch            // in the order kept, for expiry
	events int                        // events of the batches kept
	// holds counts, for each batch kept and not yet put back, its holders
	// beside the entry's: ingest's (until Release), and the entry's
	// (until taken and recycled, or dropped). A batch never kept has none.
	holds map[*protocol.Batch]int
	// free holds batches no one holds, for ingest to decode into next;
	// their arrays' room totals freeCap, and events+freeCap stays within
	// max.
	free    []*protocol.Batch
	freeCap int
	// behind is set when a batch was not kept for want of room, and
	// cleared when a derivation finds the staged rows caught up
	// (caughtUp): until then, batches kept would be newer than rows not
	// kept, so derivations would reach them only after those, often after
	// they expired, and under a lasting backlog they would hold memory
	// for nothing.
	behind bool
}

// decodedBatch is one staged batch's wire and decoded batch.
type decodedBatch struct {
	hash  uint64
	wire  []byte
	batch *protocol.Batch
	at    time.Time
	gone  bool // taken or dropped
}

func newDecodedBatches(max int) *decodedBatches {
	return &decodedBatches{seed: maphash.MakeSeed(), max: max, byHash: make(map[uint64][]*decodedBatch),
		holds: make(map[*protocol.Batch]int)}
}

// get returns a batch for ingest to decode into (protocol.DecodeBatchInto,
// which overwrites it whole), one put back when there is one. The caller
// gives it back with release once done with its events.
func (c *decodedBatches) get() *protocol.Batch {
	c.mu.Lock()
	defer c.mu.Unlock()
	if n := len(c.free); n > 0 {
		b := c.free[n-1]
		c.free[n-1] = nil
		c.free = c.free[:n-1]
		c.freeCap -= cap(b.Events)
		return b
	}
	return new(protocol.Batch)
}

// release drops a hold on b: ingest's, given by get (or its caller's, for
// a batch it made), or an entry's taken (recycle) or dropped. Without
// holders left b goes back to the free ones.
func (c *decodedBatches) release(b *protocol.Batch) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.unhold(b)
}

// recycle gives back the batch take returned, once the caller no longer
// uses its events.
func (c *decodedBatches) recycle(b *protocol.Batch) { c.release(b) }

// unhold is release with mu held.
func (c *decodedBatches) unhold(b *protocol.Batch) {
	if n := c.holds[b]; n > 1 {
		c.holds[b] = n - 1
		return
	}
	delete(c.holds, b)
	if c.events+c.freeCap+cap(b.Events) > c.max {
		return
	}
	// The events stay until the batch decodes another (which clears
	// what it reuses): the pool of ingest's batches held them as well.
	c.free = append(c.free, b)
	c.freeCap += cap(b.Events)
}

// trim drops the free batches, when traffic stopped.
func (c *decodedBatches) trim() {
	c.mu.Lock()
	defer c.mu.Unlock()
	clear(c.free)
	c.free, c.freeCap = c.free[:0], 0
}

// keep holds b, ingest's decoding of wire (its events are those
// DecodeBatch of wire gives), and a copy of wire, unless that would pass
// the bound. b is not changed until the derivation that takes it and the
// caller (release) are done with it.
func (c *decodedBatches) keep(wire []byte, b *protocol.Batch, now time.Time) {
	if c.max <= 0 || len(b.Events) == 0 {
		return
	}
	h := maphash.Bytes(c.seed, wire)
	c.mu.Lock()
	defer c.mu.Unlock()
	c.expire(now)
	if c.behind {
		return
	}
	if c.events+len(b.Events) > c.max {
		c.behind = true
		return
	}
	e := &decodedBatch{hash: h, wire: bytes.Clone(wire), batch: b, at: now}
	c.byHash[h] = append(c.byHash[h], e)
	c.order = append(c.order, e)
	c.events += len(b.Events)
	c.holds[b] = max(c.holds[b], 1) + 1 // the entry's, beside the caller's
	for len(c.free) > 0 && c.events+c.freeCap > c.max {
		last := len(c.free) - 1
		c.freeCap -= cap(c.free[last].Events)
		c.free[last] = nil
		c.free = c.free[:last]
	}
}

// caughtUp tells c that a derivation took every row staged of its site:
// batches kept from now on are the next ones derivations take.
func (c *decodedBatches) caughtUp() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.behind = false
}

// expire drops the entries kept before now-decodedMaxAge and forgets taken
// ones at the head of the order.
func (c *decodedBatches) expire(now time.Time) {
	i := 0
	for ; i < len(c.order); i++ {
		e := c.order[i]
		if !e.gone && now.Sub(e.at) < decodedMaxAge {
			break
		}
		if !e.gone {
			c.remove(e)
			c.unhold(e.batch)
		}
	}
	clear(c.order[:i])
	c.order = c.order[i:]
}

// remove takes e out of byHash and the count (mu held).
func (c *decodedBatches) remove(e *decodedBatch) {
	e.gone = true
	c.events -= len(e.batch.Events)
	list := slices.DeleteFunc(c.byHash[e.hash], func(x *decodedBatch) bool { return x == e })
	if len(list) == 0 {
		delete(c.byHash, e.hash)
	} else {
		c.byHash[e.hash] = list
	}
}

// take returns the batch kept with a wire equal to payload, and forgets
// it; ok is false when there is none. The caller reads its events, not
// changing them, and gives it back with recycle.
func (c *decodedBatches) take(payload []byte) (b *protocol.Batch, ok bool) {
	if c.max <= 0 {
		return nil, false
	}
	h := maphash.Bytes(c.seed, payload)
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, e := range c.byHash[h] {
		if bytes.Equal(e.wire, payload) {
			c.remove(e)
			return e.batch, true
		}
	}
	return nil, false
}
