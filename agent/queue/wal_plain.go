package queue

import "unsafe"

// The log keeps the plaintext of the records it wrote last in memory
// (walPlain), so that Seal takes the events this process logged without
// reading the file back and decrypting each: it copies their plaintext,
// which is byte for byte what decrypting the record gives, since Append
// copies an event's plaintext when it seals it. What is not held there
// (events of an earlier process, of a group that did not fit, or moved to
// the pending bucket) Seal reads from the file as before. The file stays
// the only durable copy; the memory one goes with the process.
//
// The held records are consecutive ids first .. first+n-1, logged and
// fdatasynced, not yet in bbolt: Seal and a drain drop what they move to
// bbolt (consumed), so none is held when the log starts again at offset 0. Their bytes are only ever appended after
// the live ones, never overwritten while held: Seal copies them outside
// Queue.mu, and drops them only after (consumed), under sealMu as well.

// walPlainMax is what walPlain holds at most, in bytes of plaintext and
// of plainRec: more than a segment's events, so Seal finds them there
// unless it falls behind, while the agent's heap grows by no more.
// wal.plainMax holds it; tests lower it.
const walPlainMax = 2 << 20

// walPlain holds the plaintext of recently logged records, guarded by
// Queue.mu (and, for dropping records, sealMu).
type walPlain struct {
	first uint64 // id of recs[head]
	buf   []byte // the records' plaintext, one after another
	recs  []plainRec
	head  int    // recs[:head] are dropped
	taken uint64 // records Seal took from here, for tests
}

// plainRec is one held record: its plaintext buf[start:end], its sealed
// value's length and the log offset after it.
type plainRec struct {
	start, end int
	sealed     int
	walEnd     int64
}

const plainRecBytes = int(unsafe.Sizeof(plainRec{}))

// held is how many records are held.
func (p *walPlain) held() int { return len(p.recs) - p.head }

// add holds the plaintext of a group just logged: its records have ids
// from id on and start at log offset off. A group that does not follow
// the held records, or does not fit in limit bytes, is not held (Seal
// reads it from the file). Called by the committer with Queue.mu held.
func (p *walPlain) add(group []*request, id uint64, off int64, limit int) {
	if p.held() == 0 {
		p.reset()
		p.first = id
	} else if p.first+uint64(p.held()) != id {
		return
	}
	plain, recs := len(p.buf), len(p.recs)
	for _, r := range group {
		plain, recs = plain+len(r.plain), recs+len(r.events)
	}
	if plain+recs*plainRecBytes > limit {
		return
	}
	p.buf = growTo(p.buf, plain, limit)
	p.recs = growTo(p.recs, recs, limit/plainRecBytes)
	for _, r := range group {
		base, start := len(p.buf), len(p.buf)
		p.buf = append(p.buf, r.plain...)
		for i, e := range r.events {
			off += walHeaderLen + int64(len(e))
			end := base + r.plainEnds[i]
			p.recs = append(p.recs, plainRec{start: start, end: end, sealed: len(e), walEnd: off})
			start = end
		}
	}
}

// growTo returns s with room for n elements, doubling its capacity (at
// least 4096 elements, at most limit, and n when more) when it has not:
// append grows a large slice by a quarter at a time, which allocated
// several times the copy's bound while it filled.
func growTo[T any](s []T, n, limit int) []T {
	if n <= cap(s) {
		return s
	}
	grown := make([]T, len(s), max(n, min(limit, max(2*cap(s), 4096))))
	copy(grown, s)
	return grown
}

// drop forgets the held records with ids up to id.
func (p *walPlain) drop(id uint64) {
	if p.held() == 0 || id < p.first {
		return
	}
	n := id - p.first + 1
	if n >= uint64(p.held()) {
		p.reset()
		return
	}
	p.head += int(n)
	p.first = id + 1
}

// reset forgets every held record, keeping the buffers.
func (p *walPlain) reset() {
	p.buf, p.recs, p.head = p.buf[:0], p.recs[:0], 0
}

// release forgets every held record and lets the buffers go.
func (p *walPlain) release() {
	*p = walPlain{taken: p.taken}
}

// plainRun is a run of held records Seal takes: their plaintext is
// buf[recs[0].start:recs[len-1].end] (runs of records are contiguous).
type plainRun struct {
	buf  []byte
	recs []plainRec
}

// run returns up to n held records from id on, no further than id last:
// none when id is not held. Called with Queue.mu held; the run stays
// valid, outside the lock, until those records are dropped.
func (p *walPlain) run(id, last uint64, n int) plainRun {
	if p.held() == 0 || id < p.first || id > last {
		return plainRun{}
	}
	i := p.head + int(id-p.first)
	if i >= len(p.recs) {
		return plainRun{}
	}
	end := min(len(p.recs), i+n, i+int(last-id)+1)
	return plainRun{buf: p.buf, recs: p.recs[i:end:end]}
}
