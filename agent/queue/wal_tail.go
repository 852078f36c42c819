package queue

import (
	"runtime"
	"slices"
)

// The log's tail in memory: the plaintext of the newest committed records,
// kept by the committer, so Seal copies them into its batch instead of
// reading the log back and opening every record (a read of the file, a
// checksum and an AES-GCM open per event: about 2k instructions an event of
// the batched gtag.js path, a tenth of the agent's work per event). The log
// stays what makes an event durable and what Open replays: the tail is a
// copy of what was fdatasynced, never the only one, and is lost with the
// process without loss.
//
// The tail holds a run of consecutive ids, one chunk per committed group.
// A group is added only when its first id follows the tail's last (or the
// tail is empty) and the tail stays within its byte bound, so a Seal that
// falls behind (or a caller that stopped waiting, whose plaintext may be
// reused) leaves a gap: Seal reads the log up to the tail's first id, then
// copies from the tail. Records move out of the tail when they move into
// bbolt (Seal, a drain, a direct commit), under sealMu; so while Seal
// copies, no one recycles the chunks it copies from.

// defaultTailBytes bounds the plaintext the tail holds (Queue.tail.max):
// at the agent's default 2000 events a segment, a segment and a half of
// the batched path's events. Beyond it groups stay in the log only, until
// Seal has taken the tail.
const defaultTailBytes = 1 << 20

// walTail is the log's tail in memory; its fields are guarded by Queue.mu.
type walTail struct {
	max    int          // bound on held plaintext bytes; 0: the tail is off
	chunks []*tailChunk // consecutive ids, oldest first
	held   int          // plaintext bytes in chunks
	free   []*tailChunk // emptied chunks, for the committer to fill again
	// capacity of free's plaintext buffers
	freeBytes int
}

// tailChunk is the plaintext of one committed group's records: record i
// has id first+i, its plaintext is data[recs[i-1].end:recs[i].end] (from 0
// for the first), and the log's record after it starts at recs[i].logEnd.
// Records before taken are in bbolt already.
type tailChunk struct {
	first uint64
	data  []byte
	recs  []tailRec
	taken int
}

type tailRec struct {
	end    int
	logEnd int64
}

// lastID is the id of the tail's last record; 0 when it is empty.
func (t *walTail) lastID() uint64 {
	if len(t.chunks) == 0 {
		return 0
	}
	c := t.chunks[len(t.chunks)-1]
	return c.first + uint64(len(c.recs)) - 1
}

// firstID is the id of the tail's first record not in bbolt; 0 when it
// is empty.
func (t *walTail) firstID() uint64 {
	if len(t.chunks) == 0 {
		return 0
	}
	c := t.chunks[0]
	return c.first + uint64(c.taken)
}

// request states for the tail: the committer copies a request's plaintext
// only while its caller still waits, since a caller whose context ended
// may reuse it at once.
const (
	reqWaiting   int32 = iota
	reqCopying         // the committer is copying the plaintext
	reqCopied          // the committer no longer reads the caller's memory
	reqAbandoned       // the caller returned; its plaintext is not read
)

// abandon is called by an Append whose context ended: after it returns
// the committer never reads the request's plaintext.
func (r *request) abandon() {
	if r.state.CompareAndSwap(reqWaiting, reqAbandoned) {
		return
	}
	for r.state.Load() == reqCopying { // a copy of memory, no I/O: short
		runtime.Gosched()
	}
}

// stageTail copies the plaintext of a group's events into a chunk, before
// the group is written; nil when the tail is off, would outgrow its bound,
// or a caller of the group stopped waiting (the group then stays in the
// log only). The committer alone calls it.
func (q *Queue) stageTail(group []*request) *tailChunk {
	size, n := 0, 0
	for _, r := range group {
		for _, e := range r.plain {
			size += len(e)
		}
		n += len(r.plain)
	}
	q.mu.Lock()
	t := &q.tail
	if t.max == 0 || t.held+size > t.max {
		q.mu.Unlock()
		return nil
	}
	var c *tailChunk
	if k := len(t.free); k > 0 {
		c, t.free = t.free[k-1], t.free[:k-1]
		t.freeBytes -= cap(c.data)
	} else {
		c = &tailChunk{}
	}
	q.mu.Unlock()
	c.data, c.recs, c.taken = slices.Grow(c.data[:0], size), slices.Grow(c.recs[:0], n), 0
	for _, r := range group {
		if !r.state.CompareAndSwap(reqWaiting, reqCopying) {
			q.releaseChunk(c)
			return nil
		}
		for _, e := range r.plain {
			c.data = append(c.data, e...)
			c.recs = append(c.recs, tailRec{end: len(c.data)})
		}
		r.state.Store(reqCopied)
	}
	return c
}

// publishTail adds a staged chunk (nil: none) whose records, from first,
// were committed at log offset off, if it follows the tail; else it
// recycles the chunk. Called with q.mu held, as the commit is recorded.
func (q *Queue) publishTail(c *tailChunk, first uint64, off int64) {
	if c == nil {
		return
	}
	t := &q.tail
	if len(t.chunks) > 0 && t.lastID()+1 != first || t.held+len(c.data) > t.max {
		t.recycle(c)
		return
	}
	c.first = first
	start := 0
	for i := range c.recs {
		r := &c.recs[i]
		off += walHeaderLen + sealOverhead + int64(r.end-start)
		r.logEnd, start = off, r.end
	}
	t.chunks = append(t.chunks, c)
	t.held += len(c.data)
}

// releaseChunk returns a staged chunk that was not published.
func (q *Queue) releaseChunk(c *tailChunk) {
	if c == nil {
		return
	}
	q.mu.Lock()
	q.tail.recycle(c)
	q.mu.Unlock()
}

// recycle keeps an emptied chunk for a later group, so a committed group
// usually costs no allocation: up to the tail's bound in bytes (as many
// groups as are committed between two Seals, at most freeChunks).
func (t *walTail) recycle(c *tailChunk) {
	if len(t.free) < freeChunks && t.freeBytes+cap(c.data) <= t.max {
		t.free = append(t.free, c)
		t.freeBytes += cap(c.data)
	}
}

// freeChunks bounds the emptied chunks the tail keeps.
const freeChunks = 4096

// dropTail removes the tail's records up to id, which are in bbolt now.
// Called with q.mu and sealMu held.
func (t *walTail) dropTail(id uint64) {
	k := 0
	for _, c := range t.chunks {
		last := c.first + uint64(len(c.recs)) - 1
		if last > id {
			if id >= c.first+uint64(c.taken) {
				c.taken = int(id - c.first + 1)
			}
			break
		}
		t.held -= len(c.data)
		t.recycle(c)
		k++
	}
	n := copy(t.chunks, t.chunks[k:])
	clear(t.chunks[n:])
	t.chunks = t.chunks[:n]
}

// tailSpan is a run of records of one chunk that Seal copies.
type tailSpan struct {
	data   []byte // their plaintext, one after another
	n      int    // records
	logEnd int64  // log offset after the last
}

// tailSpans returns the tail's records from id next to at most id last,
// at most limit of them, as runs of chunks; gap is the number of records
// from next that are not in the tail (all of them when it holds none): Seal
// reads those from the log first. The caller holds sealMu, so the chunks
// stay as they are until it calls consumed.
func (q *Queue) tailSpans(next, last uint64, limit int, spans []tailSpan) (_ []tailSpan, gap uint64) {
	q.mu.Lock()
	defer q.mu.Unlock()
	t := &q.tail
	first, tailLast := t.firstID(), t.lastID()
	switch {
	case first == 0 || first > last || next > tailLast:
		return spans, last - next + 1
	case first > next:
		return spans, first - next
	}
	for _, c := range t.chunks {
		if limit == 0 {
			break
		}
		cLast := c.first + uint64(len(c.recs)) - 1
		if cLast < next {
			continue
		}
		if c.first > last {
			break
		}
		i := int(next - c.first) // first record to copy
		j := len(c.recs)         // after the last
		if cLast > last {
			j -= int(cLast - last)
		}
		j = min(j, i+limit)
		start := 0
		if i > 0 {
			start = c.recs[i-1].end
		}
		spans = append(spans, tailSpan{data: c.data[start:c.recs[j-1].end], n: j - i, logEnd: c.recs[j-1].logEnd})
		limit -= j - i
		next += uint64(j - i)
	}
	return spans, 0
}
