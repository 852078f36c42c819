package queue

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"math"
	"os"
	"path/filepath"
	"slices"

	bolt "go.etcd.io/bbolt"
)

// The write-ahead log is where Append's group commit makes events durable:
// one write and one fdatasync per group into a file of fixed size, zeroed
// when created, so the sync flushes data blocks only (a bbolt commit writes
// pages and a meta page with two fdatasyncs, several times the CPU and
// latency). Seal moves logged events straight into segments; what it has not
// taken when the log is full is moved to the pending bucket, and the log
// starts again at offset 0.
//
// A record is a 16-byte header then its value: value length (uint32), CRC-32C
// of id and value (uint32), id (uint64), all big-endian. The value is the
// sealed event, exactly as the pending bucket would hold it, and the id is
// its pending key: ids grow by one per record for the life of the queue.
// The pending bucket's sequence is the last id moved into bbolt (by Seal or
// into pending) in the same transaction as the move, so at Open the records
// with a greater id are exactly the logged events not yet in bbolt.
//
// Close moves what the log holds into the pending bucket, so after a clean
// stop queue.db alone holds every event.
//
// Reading stops at the first record that is not the next id with a matching
// checksum: the file's zeroes, a record a crash cut short, or what is left
// of an earlier pass over the file, whose ids are all smaller (the log
// restarts at offset 0 only when every record in it is in bbolt).
const (
	walHeaderLen = 16
	// DefaultWALBytes is the log's size when Options.WALBytes is 0: room
	// for several segments' events, so Seal usually takes them before the
	// log is full.
	DefaultWALBytes = 8 << 20
)

var walCRC = crc32.MakeTable(crc32.Castagnoli)

// WALPath is the write-ahead log of the queue at path: queue.db → queue.wal.
func WALPath(path string) string {
	return path[:len(path)-len(filepath.Ext(path))] + ".wal"
}

// wal is the log's state. The committer goroutine alone writes the file and
// owns writeOff and nextID; the offsets and ids shared with Seal are guarded
// by Queue.mu.
type wal struct {
	f    walFile
	size int64

	readMax  int64  // walReadMax
	drainMax int64  // walDrainMax
	plainMax int    // walPlainMax
	writeOff int64  // where the next group goes
	nextID   uint64 // id of the next record
	buf      []byte // the group being written, reused

	// Guarded by Queue.mu. Records in [consumedOff, committedOff) hold
	// ids consumedID+1 .. committedID: durable, not yet in bbolt.
	committedOff, consumedOff int64
	committedID, consumedID   uint64
	plain                     walPlain // the plaintext of records in that range, some or all
}

// openWAL opens or creates the log and moves every record it holds that is
// not in bbolt yet into the pending bucket. torn counts records a crash cut
// short (never acknowledged: their fdatasync did not return).
func (q *Queue) openWAL(size int64) (replayed, torn int, err error) {
	path := WALPath(q.path)
	data, err := q.walDisk.ReadFile(path)
	switch {
	case errors.Is(err, os.ErrNotExist):
		data = nil
	case err != nil:
		return 0, 0, fmt.Errorf("read write-ahead log: %w", err)
	}
	var last uint64
	err = q.db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketPending)
		last = b.Sequence()
		b.FillPercent = 1.0
		var perr error
		torn = scanWAL(data, func(id uint64, val []byte) bool {
			if id <= last {
				return true // in bbolt already
			}
			if perr = b.Put(seqKey(id), val); perr != nil {
				return false
			}
			last = id
			replayed++
			return true
		})
		if perr != nil {
			return fmt.Errorf("replay write-ahead log: %w", perr)
		}
		if replayed == 0 {
			return nil
		}
		return b.SetSequence(last)
	})
	if err != nil {
		return 0, 0, err
	}
	if int64(len(data)) != size {
		// New, or made with another size: everything in it is in bbolt now.
		if err := q.walDisk.Create(path, size); err != nil {
			return 0, 0, fmt.Errorf("create write-ahead log: %w", err)
		}
	}
	f, err := q.walDisk.Open(path)
	if err != nil {
		return 0, 0, fmt.Errorf("open write-ahead log: %w", err)
	}
	q.wal = wal{f: f, size: size, readMax: walReadMax, drainMax: walDrainMax, plainMax: walPlainMax, nextID: last + 1, committedID: last, consumedID: last}
	return replayed, torn, nil
}

// scanWAL calls fn for each record from the start of data while ids are
// consecutive and checksums match, until fn returns false. torn is 1 when
// the record after the last good one has the next id but is cut short or
// fails its checksum.
func scanWAL(data []byte, fn func(id uint64, val []byte) bool) (torn int) {
	var want uint64 // 0: any id starts the run
	for off := 0; off+walHeaderLen <= len(data); {
		n := int(binary.BigEndian.Uint32(data[off:]))
		sum := binary.BigEndian.Uint32(data[off+4:])
		id := binary.BigEndian.Uint64(data[off+8:])
		if id == 0 || (want != 0 && id != want) {
			return 0
		}
		end := off + walHeaderLen + n
		if n == 0 || end > len(data) || crc32.Checksum(data[off+8:end], walCRC) != sum {
			if want != 0 {
				return 1
			}
			return 0
		}
		if !fn(id, data[off+walHeaderLen:end]) {
			return 0
		}
		want, off = id+1, end
	}
	return 0
}

// appendRecord adds one record to buf.
func appendRecord(buf []byte, id uint64, val []byte) []byte {
	start := len(buf)
	buf = binary.BigEndian.AppendUint32(buf, uint32(len(val)))
	buf = binary.BigEndian.AppendUint32(buf, 0)
	buf = binary.BigEndian.AppendUint64(buf, id)
	buf = append(buf, val...)
	binary.BigEndian.PutUint32(buf[start+4:], crc32.Checksum(buf[start+8:], walCRC))
	return buf
}

// logGroup writes the group's events to the log with one fdatasync. Called
// by the committer only. A group larger than the whole log goes to bbolt
// directly.
func (q *Queue) logGroup(group []*request) error {
	w := &q.wal
	need := int64(0)
	for _, r := range group {
		for _, e := range r.events {
			need += walHeaderLen + int64(len(e))
		}
	}
	if need > w.size {
		return q.commitDirect(group)
	}
	q.mu.Lock()
	empty := w.consumedID == w.committedID
	q.mu.Unlock()
	switch {
	case empty && w.writeOff > 0:
		q.restartWAL() // everything is in bbolt: keep the file's hot part small
	case w.writeOff+need > w.size:
		if err := q.drainWAL(); err != nil {
			return err
		}
		q.restartWAL()
	}
	buf, id := w.buf[:0], w.nextID
	for _, r := range group {
		for _, e := range r.events {
			buf = appendRecord(buf, id, e)
			id++
		}
	}
	w.buf = buf
	if _, err := w.f.WriteAt(buf, w.writeOff); err != nil {
		return fmt.Errorf("queue: write-ahead log: write %d bytes at %d: %w", len(buf), w.writeOff, err)
	}
	if err := q.fail(fpLogWritten); err != nil {
		return err
	}
	if err := w.f.Datasync(); err != nil {
		return fmt.Errorf("queue: write-ahead log: fdatasync: %w", err)
	}
	q.mu.Lock()
	w.plain.add(group, w.nextID, w.writeOff, w.plainMax)
	w.writeOff += int64(len(buf))
	w.nextID = id
	w.committedOff, w.committedID = w.writeOff, id-1
	q.mu.Unlock()
	if len(buf) > 1<<20 {
		w.buf = nil // a rare huge group does not stay in memory
	}
	return nil
}

// restartWAL makes the next group start at offset 0. Only when every
// record is in bbolt: what the file still holds is then never read again.
func (q *Queue) restartWAL() {
	w := &q.wal
	w.writeOff = 0
	q.mu.Lock()
	w.committedOff, w.consumedOff = 0, 0
	q.mu.Unlock()
}

// walReadMax bounds what Seal reads of the log at once: it reads a
// segment's records piece by piece, decrypting each piece into the batch
// before it reads the next, so the log costs Seal no more memory than
// this, however far behind it is. wal.readMax holds it; tests lower it.
const walReadMax = 256 << 10

// walDrainMax bounds what one transaction of a drain moves into the
// pending bucket; wal.drainMax holds it, tests lower it.
const walDrainMax = 1 << 20

// walPiece is what one walRead returns: the records' ids and values, the
// values pointing into data, the log as read. A caller that reads piece
// after piece (Seal, a drain) passes the same walPiece each time, so its
// three arrays are grown once rather than for every piece.
type walPiece struct {
	ids  []uint64
	vals [][]byte
	data []byte
}

// walRead reads into p up to limit (all when limit <= 0) logged records
// from offset from, whose first has id first, up to offset to, and
// returns the offset after the last one read. With maxBytes > 0 it reads
// at most that many bytes (more only for a single larger record), so it
// may read fewer.
// The caller holds sealMu, so no one else consumes meanwhile, and Close
// does not close the file under it. What p held before is replaced; its
// values are valid until p is passed to walRead again.
func (q *Queue) walRead(from, to int64, first uint64, limit int, maxBytes int64, p *walPiece) (end int64, err error) {
	w := &q.wal
	clear(p.vals) // no stale slice of data outlives the read
	p.ids, p.vals = p.ids[:0], p.vals[:0]
	if from == to {
		return from, nil
	}
	size := to - from
	if maxBytes > 0 {
		size = min(size, maxBytes)
	}
	for {
		data := slices.Grow(p.data[:0], int(size))[:size]
		p.data = data
		if _, err := w.f.ReadAt(data, from); err != nil && !errors.Is(err, io.EOF) {
			return 0, fmt.Errorf("read write-ahead log at %d: %w", from, err)
		}
		off := 0
		ids, vals := p.ids, p.vals
		scanWAL(data, func(id uint64, val []byte) bool {
			if id != first+uint64(len(ids)) {
				return false
			}
			ids, vals = append(ids, id), append(vals, val)
			off += walHeaderLen + len(val)
			return limit <= 0 || len(ids) < limit
		})
		p.ids, p.vals = ids, vals
		whole := size == to-from
		switch {
		case off == 0 && !whole:
			// The first record is longer than readMax: read just it (its
			// header first, if even that was cut).
			need := int64(walHeaderLen)
			if len(data) >= walHeaderLen {
				need += int64(binary.BigEndian.Uint32(data))
			}
			size = min(to-from, max(need, size+1)) // grows every round
			continue
		case off == 0 || (whole && off < len(data) && (limit <= 0 || len(ids) < limit)):
			return 0, fmt.Errorf("BUG: write-ahead log at %d does not hold records %d.. as committed",
				from+int64(off), first+uint64(len(ids)))
		}
		return from + int64(off), nil
	}
}

// consumed records that records up to id, ending at off, are in bbolt,
// and forgets their plaintext. The caller holds sealMu.
func (q *Queue) consumed(id uint64, off int64) {
	q.mu.Lock()
	q.wal.consumedID, q.wal.consumedOff = id, off
	q.wal.plain.drop(id)
	q.mu.Unlock()
}

// drainWAL moves every logged record Seal has not taken into the pending
// bucket, so the log can start again.
func (q *Queue) drainWAL() error {
	q.sealMu.Lock()
	defer q.sealMu.Unlock()
	return q.drainWALLocked()
}

func (q *Queue) drainWALLocked() error {
	q.mu.Lock()
	from, to, next := q.wal.consumedOff, q.wal.committedOff, q.wal.consumedID+1
	q.mu.Unlock()
	// In pieces of walDrainMax, each its own transaction: bbolt holds a
	// transaction's values, and the pages it writes, in memory until it
	// commits, so a whole log (WALBytes) at once cost the agent several
	// times that in heap. A log drained when it is full holds what Seal
	// has not taken yet, usually less than one piece.
	var p walPiece // one buffer for the pieces of this drain alone
	for from < to {
		end, err := q.walRead(from, to, next, math.MaxInt, q.wal.drainMax, &p)
		if err != nil {
			return q.walErr("drain", err)
		}
		err = q.db.Update(func(tx *bolt.Tx) error {
			b := tx.Bucket(bucketPending)
			b.FillPercent = 1.0
			for i, id := range p.ids {
				if err := b.Put(seqKey(id), p.vals[i]); err != nil {
					return err
				}
			}
			return b.SetSequence(p.ids[len(p.ids)-1])
		})
		if err != nil {
			return q.walErr("drain", err)
		}
		if err := q.fail(fpDrained); err != nil {
			return err
		}
		last := p.ids[len(p.ids)-1]
		q.consumed(last, end)
		from, next = end, last+1
	}
	return nil
}

// commitDirect stores a group too large for the log straight into the
// pending bucket, after what the log holds, in one fsynced transaction.
func (q *Queue) commitDirect(group []*request) error {
	q.sealMu.Lock()
	defer q.sealMu.Unlock()
	if err := q.drainWALLocked(); err != nil {
		return err
	}
	id := q.wal.nextID
	err := q.db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketPending)
		b.FillPercent = 1.0
		for _, r := range group {
			for _, e := range r.events {
				if err := b.Put(seqKey(id), e); err != nil {
					return fmt.Errorf("put event %d: %w", id, err)
				}
				id++
			}
		}
		return b.SetSequence(id - 1)
	})
	if err != nil {
		return q.walErr("commit", err)
	}
	q.wal.nextID = id
	q.mu.Lock()
	q.wal.committedID, q.wal.consumedID = id-1, id-1
	q.wal.plain.drop(id - 1)
	q.mu.Unlock()
	return nil
}

// walErr wraps err, mapping bbolt's size limit to ErrFull.
func (q *Queue) walErr(op string, err error) error {
	switch {
	case err == nil:
		return nil
	case isMaxSize(err):
		q.log.Error("queue file reached its size limit; refusing events until shipping frees space", "path", q.path, "err", err)
		return ErrFull
	}
	return q.wrap(op, err)
}

// createZeroed writes a new file of size zero bytes at path durably (see
// writeFileSync), replacing a file already there.
func createZeroed(path string, size int64) error {
	return writeFileSync(path, true, func(f *os.File) error {
		zero := make([]byte, min(size, 1<<20))
		for off := int64(0); off < size; off += int64(len(zero)) {
			if _, err := f.Write(zero[:min(int64(len(zero)), size-off)]); err != nil {
				return err
			}
		}
		return nil
	})
}
