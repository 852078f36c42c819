package queue

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"slices"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/avila-analytics/avila/protocol"
)

// A segment record is a 12-byte header (sealed time in Unix microseconds,
// event count, both big-endian) followed by the wire batch exactly as it is
// sent, sealed with the segment's key as additional data. A rejected record is a 2-byte reason length, the reason, then the
// segment record.
const (
	segHeaderLen   = 12
	maxReasonBytes = 1024
)

// SegmentInfo describes one sealed, unacknowledged segment.
type SegmentInfo struct {
	Seq    uint64
	Bytes  int // wire payload size
	Events int
	Sealed time.Time
}

func seqKey(seq uint64) []byte {
	var k [8]byte
	binary.BigEndian.PutUint64(k[:], seq)
	return k[:]
}

// parseRecord returns a record's header and its still sealed wire batch.
func parseRecord(seq uint64, rec []byte) (SegmentInfo, []byte, error) {
	if len(rec) < segHeaderLen+sealOverhead {
		return SegmentInfo{}, nil, fmt.Errorf("BUG: segment %d record is %d bytes, shorter than its header", seq, len(rec))
	}
	info := SegmentInfo{
		Seq:    seq,
		Bytes:  len(rec) - segHeaderLen - sealOverhead,
		Events: int(binary.BigEndian.Uint32(rec[8:12])),
		Sealed: time.UnixMicro(int64(binary.BigEndian.Uint64(rec[:8]))),
	}
	return info, rec[segHeaderLen:], nil
}

// Seal moves up to maxEvents pending events, oldest first, into a new
// segment with the next seq and returns it; ok is false when nothing is
// pending. Pending events are those of the pending bucket, then those only
// in the write-ahead log, whose ids are all greater. Removing the events
// and storing the segment happen in one transaction, which also advances
// the pending bucket's sequence past the logged events taken, so every event
// is in exactly one place at any instant.
//
// The wire batch is encoded before that transaction, outside bbolt's writer
// lock, so Appends keep committing meanwhile. That is safe because sealMu
// makes Seal the only writer of the segment sequence and of pending deletes.
func (q *Queue) Seal(maxEvents int) (seq uint64, ok bool, err error) {
	if maxEvents <= 0 {
		return 0, false, fmt.Errorf("queue: seal: max events %d must be > 0", maxEvents)
	}
	q.sealMu.Lock()
	defer q.sealMu.Unlock()

	// The events' plaintext is decrypted straight into the batch, after
	// room for its head, which is written once the events are counted; the
	// log is read in pieces of wal.readMax into another buffer; the batch
	// is compressed and sealed into two more. All are kept from seal to
	// seal (sealMu guards them): a segment is about a megabyte before
	// compression, and allocating that afresh each time made the collector
	// run far more often under load, and the runtime return the freed
	// pages to the kernel to stay under the agent's memory limit (madvise,
	// with a TLB shootdown on every CPU the process ran on). A sync.Pool
	// did not keep them: it is emptied by every second collection, and the
	// agent collects several times a second under load. A Seal that finds
	// nothing lets them go, so an idle agent holds none.
	bufs := &q.sealBufs
	sealed := q.now()
	bufs.head = protocol.AppendBatchHead(bufs.head[:0], q.agentID, math.MaxUint64, math.MinInt64, math.MaxUint32)
	headMax := len(bufs.head) // the longest head this agent's batches can have
	batch := slices.Grow(bufs.batch[:0], headMax)[:headMax]
	var keys [][]byte
	var events int
	var evBytes int64
	err = q.db.View(func(tx *bolt.Tx) error {
		c := tx.Bucket(bucketPending).Cursor()
		for k, v := c.First(); k != nil && len(keys) < maxEvents; k, v = c.Next() {
			var err error
			if batch, err = q.seal.openAppend(batch, v, aadPending); err != nil {
				return fmt.Errorf("pending event %d: %w", binary.BigEndian.Uint64(k), err)
			}
			keys = append(keys, append([]byte(nil), k...))
			events++
			evBytes += int64(len(k) + len(v))
		}
		seq = tx.Bucket(bucketSegments).Sequence() + 1
		return nil
	})
	if err != nil {
		bufs.batch = batch
		return 0, false, q.wrap("seal: read pending", err)
	}
	// The log's records not in bbolt yet, from where the last Seal stopped
	// to what was committed when this one began: those whose plaintext
	// the log holds in memory copied from there (see walPlain), the
	// others read from the file piece by piece and decrypted.
	var walLast uint64 // id of the last logged event taken; 0: none
	var walEnd int64
	q.mu.Lock()
	from, to, next, last := q.wal.consumedOff, q.wal.committedOff, q.wal.consumedID+1, q.wal.committedID
	q.mu.Unlock()
	for events < maxEvents && from < to {
		limit := maxEvents - events
		q.mu.Lock()
		p := &q.wal.plain
		run := p.run(next, last, limit)
		p.taken += uint64(len(run.recs))
		if p.held() > 0 && p.first > next {
			limit = min(limit, int(p.first-next)) // the file holds those before
		}
		q.mu.Unlock()
		if n := len(run.recs); n > 0 {
			if r := run.recs[0]; r.walEnd-walHeaderLen-int64(r.sealed) != from {
				bufs.batch = batch
				return 0, false, fmt.Errorf("BUG: queue: seal: logged event %d held in memory at offset %d, not %d",
					next, r.walEnd-walHeaderLen-int64(r.sealed), from)
			}
			batch = append(batch, run.buf[run.recs[0].start:run.recs[n-1].end]...)
			for _, r := range run.recs {
				evBytes += int64(keyOverhead + r.sealed)
			}
			events += n
			walLast, walEnd = next+uint64(n)-1, run.recs[n-1].walEnd
			from, next = walEnd, walLast+1
			continue
		}
		end, err := q.walRead(from, to, next, limit, q.wal.readMax, &bufs.wal)
		if err != nil {
			bufs.batch = batch
			return 0, false, q.wrap("seal: read write-ahead log", err)
		}
		ids := bufs.wal.ids
		for i, v := range bufs.wal.vals {
			if batch, err = q.seal.openAppend(batch, v, aadPending); err != nil {
				bufs.batch = batch
				return 0, false, q.wrap("seal", fmt.Errorf("logged event %d: %w", ids[i], err))
			}
			events++
			evBytes += int64(keyOverhead + len(v))
		}
		walLast, walEnd = ids[len(ids)-1], end
		from, next = end, walLast+1
	}
	bufs.batch = batch
	if events == 0 {
		*bufs = sealBufs{}
		q.mu.Lock()
		if q.wal.plain.held() == 0 {
			q.wal.plain.release()
		}
		q.mu.Unlock()
		return 0, false, nil
	}
	head := protocol.AppendBatchHead(bufs.head[:0], q.agentID, seq, sealed.UnixMicro(), events)
	bufs.head = head
	start := headMax - len(head)
	copy(batch[start:], head)
	wire := protocol.CompressSealedBatch(bufs.wire[:0], batch[start:])
	bufs.wire = wire
	// bbolt copies a value into its pages when the transaction commits, so
	// the record's buffer is free again once Update returned.
	rec := slices.Grow(bufs.rec[:0], segHeaderLen+sealOverhead+len(wire))[:segHeaderLen]
	binary.BigEndian.PutUint64(rec[:8], uint64(sealed.UnixMicro()))
	binary.BigEndian.PutUint32(rec[8:12], uint32(events))
	rec = q.seal.sealAppend(rec, wire, seqKey(seq))
	bufs.rec = rec

	err = q.db.Update(func(tx *bolt.Tx) error {
		segs := tx.Bucket(bucketSegments)
		got, err := segs.NextSequence()
		if err != nil {
			return err
		}
		if got != seq {
			return fmt.Errorf("BUG: segment seq %d assigned, %d encoded", got, seq)
		}
		segs.FillPercent = 1.0 // seqs only grow
		if err := segs.Put(seqKey(seq), rec); err != nil {
			return err
		}
		pending := tx.Bucket(bucketPending)
		for _, k := range keys {
			if err := pending.Delete(k); err != nil {
				return err
			}
		}
		if walLast != 0 {
			if err := pending.SetSequence(walLast); err != nil {
				return err
			}
		}
		return q.fail(fpSealing)
	})
	if err != nil {
		return 0, false, q.wrap(fmt.Sprintf("seal segment %d", seq), err)
	}
	if err := q.fail(fpSealed); err != nil {
		return 0, false, q.wrap(fmt.Sprintf("seal segment %d", seq), err)
	}
	if walLast != 0 {
		q.consumed(walLast, walEnd)
	}
	q.mu.Lock()
	q.acct.pending -= int64(events)
	q.acct.pendingBytes -= evBytes
	q.acct.segments++
	q.acct.segmentBytes += int64(keyOverhead + len(rec))
	q.mu.Unlock()
	q.maybeReleaseMapped()
	return seq, true, nil
}

// sealBufs are the buffers Seal builds a segment in (Queue.sealBufs):
// the batch's head, the log as read (with its records' ids and values),
// the batch (events decrypted after room for the head), its compressed
// form and the sealed record.
type sealBufs struct {
	head, batch, wire, rec []byte
	wal                    walPiece
}

// Segments lists sealed, unacknowledged segments in seq order.
func (q *Queue) Segments() ([]SegmentInfo, error) { return q.OldestSegments(0) }

// OldestSegments lists at most limit (all when limit <= 0) sealed,
// unacknowledged segments, oldest first: a shipper with a long backlog reads
// only what it is about to send.
func (q *Queue) OldestSegments(limit int) ([]SegmentInfo, error) {
	var out []SegmentInfo
	err := q.db.View(func(tx *bolt.Tx) error {
		c := tx.Bucket(bucketSegments).Cursor()
		for k, v := c.First(); k != nil && (limit <= 0 || len(out) < limit); k, v = c.Next() {
			info, _, err := parseRecord(binary.BigEndian.Uint64(k), v)
			if err != nil {
				return err
			}
			out = append(out, info)
		}
		return nil
	})
	if err != nil {
		return nil, q.wrap("list segments", err)
	}
	return out, nil
}

// Segment returns the wire payload of a sealed, unacknowledged segment: the
// same bytes every time, across restarts.
func (q *Queue) Segment(seq uint64) ([]byte, error) {
	var wire []byte
	err := q.db.View(func(tx *bolt.Tx) error {
		rec := tx.Bucket(bucketSegments).Get(seqKey(seq))
		if rec == nil {
			return ErrNoSegment
		}
		_, w, err := parseRecord(seq, rec)
		if err != nil {
			return err
		}
		wire, err = q.seal.open(w, seqKey(seq))
		return err
	})
	if err != nil {
		return nil, q.wrap(fmt.Sprintf("read segment %d", seq), err)
	}
	return wire, nil
}

// Ack deletes a segment the aggregator acknowledged as stored.
func (q *Queue) Ack(seq uint64) error {
	var size int64
	err := q.db.Update(func(tx *bolt.Tx) error {
		segs := tx.Bucket(bucketSegments)
		rec := segs.Get(seqKey(seq))
		if rec == nil {
			return ErrNoSegment
		}
		size = int64(keyOverhead + len(rec))
		if err := segs.Delete(seqKey(seq)); err != nil {
			return err
		}
		return q.fail(fpAcking)
	})
	if err != nil {
		return q.wrap(fmt.Sprintf("ack segment %d", seq), err)
	}
	q.mu.Lock()
	q.acct.segments--
	q.acct.segmentBytes -= size
	q.mu.Unlock()
	q.maybeReleaseMapped()
	return nil
}

// releaseEvery is how often, at most, the queue file's pages leave the
// agent's memory map (after a Seal or an Ack: sealing reads the pending
// events, sending reads the segments).
const releaseEvery = 250 * time.Millisecond

// maybeReleaseMapped runs releaseMapped if releaseEvery passed since the
// last run; a failure is logged, as nothing depends on it.
func (q *Queue) maybeReleaseMapped() {
	now, last := q.now().UnixNano(), q.released.Load()
	if now-last < releaseEvery.Nanoseconds() || !q.released.CompareAndSwap(last, now) {
		return
	}
	if err := q.releaseMapped(); err != nil {
		q.log.Warn("queue: could not release the queue file's pages from memory", "err", err)
	}
}

// Reject sets a segment aside, with the aggregator's reason, in the rejected
// bucket: it is never resent, and stays (counted against the budget) until
// an operator deals with it.
func (q *Queue) Reject(seq uint64, reason string) error {
	if len(reason) > maxReasonBytes {
		reason = reason[:maxReasonBytes]
	}
	var size, rejSize int64
	err := q.db.Update(func(tx *bolt.Tx) error {
		segs := tx.Bucket(bucketSegments)
		rec := segs.Get(seqKey(seq))
		if rec == nil {
			return ErrNoSegment
		}
		size = int64(keyOverhead + len(rec))
		val := make([]byte, 2, 2+len(reason)+len(rec))
		binary.BigEndian.PutUint16(val, uint16(len(reason)))
		val = append(append(val, reason...), rec...)
		rejSize = int64(keyOverhead + len(val))
		if err := tx.Bucket(bucketRejected).Put(seqKey(seq), val); err != nil {
			return err
		}
		return segs.Delete(seqKey(seq))
	})
	if err != nil {
		return q.wrap(fmt.Sprintf("reject segment %d", seq), err)
	}
	q.mu.Lock()
	q.acct.segments--
	q.acct.segmentBytes -= size
	q.acct.rejected++
	q.acct.rejectedBytes += rejSize
	q.mu.Unlock()
	return nil
}

// Rejected returns the reason and wire payload of a rejected segment.
func (q *Queue) Rejected(seq uint64) (reason string, wire []byte, err error) {
	err = q.db.View(func(tx *bolt.Tx) error {
		val := tx.Bucket(bucketRejected).Get(seqKey(seq))
		if val == nil {
			return ErrNoSegment
		}
		if len(val) < 2 || len(val) < 2+int(binary.BigEndian.Uint16(val)) {
			return errors.New("BUG: rejected record shorter than its reason")
		}
		n := 2 + int(binary.BigEndian.Uint16(val))
		reason = string(val[2:n])
		_, w, err := parseRecord(seq, val[n:])
		if err != nil {
			return err
		}
		wire, err = q.seal.open(w, seqKey(seq))
		return err
	})
	if err != nil {
		return "", nil, q.wrap(fmt.Sprintf("read rejected segment %d", seq), err)
	}
	return reason, wire, nil
}
