package queue

import (
	"context"
	"errors"
	"runtime"
	"slices"

	berrors "go.etcd.io/bbolt/errors"
)

// keyOverhead is what the budget charges per stored entry beside its value:
// the 8-byte big-endian key.
const keyOverhead = 8

// request is one Append waiting for a commit. done is buffered so the
// committer never blocks on a caller that stopped waiting.
type request struct {
	events [][]byte // sealed, as logged: slices of buf
	bytes  int64
	done   chan error
	buf    []byte // the sealed events, one after another
	nonce  []byte // their nonces
	// The events' plaintext, one after another, and where each ends:
	// copied from the caller's slices, which it may reuse once Append
	// returned, even while the committer still reads the request (when
	// ctx ended first). See walPlain.
	plain     []byte
	plainEnds []int
}

// Append stores events (each encoded with protocol.EncodeEvent) durably and
// encrypted: it returns nil only after the write-ahead log holding them was
// fdatasynced (see wal.go). The events of one call commit together or not at all, after those of
// every Append that returned before this call began. The slices must not be
// modified until Append returns.
//
// Concurrent callers share commits: one goroutine commits everything queued
// so far; arrivals during that commit queue, and the next commit takes all
// of them. There is no delay to gather more: under load the fsync itself is
// the gathering window (see committer).
//
// ErrFull: the disk budget is used up; nothing was stored. If ctx ends first
// the events may or may not be stored (the commit is not undone), and
// ctx.Err() is returned; the caller must not report them as accepted.
func (q *Queue) Append(ctx context.Context, events [][]byte) error {
	if len(events) == 0 {
		return nil
	}
	// Sealing here, in the caller's goroutine, keeps the encryption out of
	// the commit: concurrent callers encrypt in parallel while one commits.
	// The request's sealed events share one buffer, and their nonces are
	// taken at once (one lock of the nonce source); nothing writes to them
	// until the request, answered, is reused.
	size := 0
	for _, e := range events {
		size += sealOverhead + len(e)
	}
	r := q.takeRequest()
	r.nonce = slices.Grow(r.nonce[:0], len(events)*nonceBytes)[:len(events)*nonceBytes]
	q.seal.nonces.fill(r.nonce)
	buf := slices.Grow(r.buf[:0], size)
	plain := slices.Grow(r.plain[:0], size-len(events)*sealOverhead)
	for i, e := range events {
		start := len(buf)
		buf = q.seal.sealNonce(buf, r.nonce[i*nonceBytes:], e, aadPending)
		r.events = append(r.events, buf[start:len(buf):len(buf)])
		r.bytes += int64(len(buf)-start) + keyOverhead
		plain = append(plain, e...)
		r.plainEnds = append(r.plainEnds, len(plain))
	}
	r.buf, r.plain = buf, plain
	q.mu.Lock()
	if q.closed {
		q.mu.Unlock()
		q.putRequest(r)
		return ErrClosed
	}
	// Admission counts bytes already admitted but not yet committed, so the
	// committed total can never pass the budget.
	if q.acct.used()+q.reserved+r.bytes > q.max {
		q.mu.Unlock()
		q.putRequest(r)
		return ErrFull
	}
	q.reserved += r.bytes
	q.waiting = append(q.waiting, r)
	wake := !q.committing
	q.committing = true
	q.mu.Unlock()
	if wake {
		select {
		case q.kick <- struct{}{}:
		default: // a kick is already pending
		}
	}
	select {
	case err := <-r.done:
		// The committer answers last: it holds r no more.
		q.putRequest(r)
		return err
	case <-ctx.Done():
		// The committer may still read r: it is left to the collector.
		return ctx.Err()
	}
}

// maxFreeRequests bounds the answered requests kept for reuse: about one
// per connection of a busy agent, each holding a POST's sealed events
// (about 6 KB for 20 gtag.js events).
const maxFreeRequests = 64

// maxFreeRequestBytes bounds the sealed events a kept request may hold,
// so one unusually large Append does not pin its size.
const maxFreeRequestBytes = 64 << 10

// takeRequest returns an empty request, one an earlier Append answered
// when there is one: its buffers and answer channel cost no allocation,
// and the collector, which under the agent's memory limit runs as often
// as the heap grows, has less to do. Kept on the queue rather than in a
// sync.Pool, which every second collection empties.
func (q *Queue) takeRequest() *request {
	q.freeMu.Lock()
	if n := len(q.free); n > 0 {
		r := q.free[n-1]
		q.free[n-1] = nil
		q.free = q.free[:n-1]
		q.freeMu.Unlock()
		return r
	}
	q.freeMu.Unlock()
	return &request{done: make(chan error, 1)}
}

// putRequest keeps r for a later Append once no one reads it (answered,
// or never queued).
func (q *Queue) putRequest(r *request) {
	if cap(r.buf) > maxFreeRequestBytes || cap(r.plain) > maxFreeRequestBytes {
		return
	}
	clear(r.events)
	r.events, r.bytes, r.plainEnds = r.events[:0], 0, r.plainEnds[:0]
	q.freeMu.Lock()
	if len(q.free) < maxFreeRequests {
		q.free = append(q.free, r)
	}
	q.freeMu.Unlock()
}

// committer commits what Appends queue, one group at a time, until Close.
// One long-lived goroutine rather than one per commit: a fresh goroutine
// would grow (copy) its stack for every commit that drains the log into
// bbolt.
//
// After each commit it yields once, so the callers it just answered run
// before it takes the next group: on a busy CPU they answer their requests
// and the next ones arrive, and one write and fdatasync serves them all.
// With nothing else runnable the yield returns at once: no timer, no delay.
// So on a busy CPU each commit (one write, one fdatasync) carries more
// events, and an Append costs less CPU (BenchmarkAppend measures both).
func (q *Queue) committer() {
	defer close(q.committerDone)
	for {
		select {
		case <-q.kick:
		case <-q.stop:
			return
		}
		for q.commitWaiting() {
			runtime.Gosched()
		}
	}
}

// commitWaiting commits every queued request in one transaction and
// answers them; false when there was nothing to commit (then committing is
// cleared, so the next Append kicks the committer again).
func (q *Queue) commitWaiting() bool {
	q.mu.Lock()
	group := q.waiting
	if len(group) == 0 || q.closed {
		q.waiting = nil
		q.committing = false
		q.mu.Unlock()
		return false
	}
	q.waiting, q.spare = q.spare, nil
	q.mu.Unlock()

	err := q.logGroup(group)
	if err == nil {
		err = q.fail(fpLogSynced)
	}
	var events, bytes int64
	for _, r := range group {
		events += int64(len(r.events))
		bytes += r.bytes
	}
	q.mu.Lock()
	q.reserved -= bytes
	if err == nil {
		q.acct.pending += events
		q.acct.pendingBytes += bytes
		q.acct.commits++
		q.acct.appended += uint64(events)
	}
	q.mu.Unlock()

	for _, r := range group {
		r.done <- err
	}
	// Answered, the requests go back to their Appends: the array keeps
	// none of them.
	clear(group)
	if cap(group) <= maxSpareGroup {
		q.spare = group[:0]
	}
	if err == nil {
		select {
		case q.signal <- struct{}{}:
		default:
		}
	}
	return true
}

// maxSpareGroup bounds the group array kept for the next commit (see
// Queue.spare): one a burst of many more concurrent Appends grew is let go.
const maxSpareGroup = 1024

// isMaxSize reports whether err is bbolt refusing to grow the file past
// its size limit.
func isMaxSize(err error) bool { return errors.Is(err, berrors.ErrMaxSizeReached) }

// Appended receives after a commit added pending events. It has room for one
// notice, so a single consumer (the shipper's sealer) never misses that
// something is pending, however many commits happened meanwhile.
func (q *Queue) Appended() <-chan struct{} { return q.signal }
