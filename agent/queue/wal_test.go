package queue

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
)

// crash stops q the way SIGKILL leaves its files: the committer ends and
// the files close, but nothing logged is moved into bbolt (the page cache
// outlives a killed process, so what was written stays written).
func (q *Queue) crash(t *testing.T) {
	t.Helper()
	q.mu.Lock()
	q.closed = true
	q.mu.Unlock()
	close(q.stop)
	<-q.committerDone
	if err := q.closeFiles(); err != nil {
		t.Fatal(err)
	}
}

// appendEach appends the ids one Append (and so one logged group) each.
func appendEach(t *testing.T, q *Queue, ids ...uint64) {
	t.Helper()
	for _, id := range ids {
		if err := q.Append(context.Background(), evs(t, id)); err != nil {
			t.Fatal(err)
		}
	}
}

// sealedInOrder seals everything pending and returns the ids of every
// unacknowledged segment in seq order.
func sealedInOrder(t *testing.T, q *Queue) []uint64 {
	t.Helper()
	sealAll(t, q)
	segs, err := q.Segments()
	if err != nil {
		t.Fatal(err)
	}
	var ids []uint64
	for _, s := range segs {
		ids = append(ids, segmentIDs(t, q, s.Seq)...)
	}
	return ids
}

// wantSealed seals everything pending and fails unless the unacknowledged
// segments hold exactly want, in order.
func wantSealed(t *testing.T, q *Queue, want []uint64) {
	t.Helper()
	if got := sealedInOrder(t, q); !equalIDs(got, want) {
		t.Fatalf("sealed %v, want %v", got, want)
	}
}

func span(from, to uint64) []uint64 {
	var ids []uint64
	for id := from; id <= to; id++ {
		ids = append(ids, id)
	}
	return ids
}

// Events only in the log when the agent dies are pending again at the next
// Open, in order, after those sealed before.
func TestLoggedEventsSurviveCrash(t *testing.T) {
	path := filepath.Join(t.TempDir(), "queue.db")
	q := openTest(t, path, 0)
	appendEach(t, q, span(1, 5)...)
	if _, _, err := q.Seal(3); err != nil {
		t.Fatal(err)
	}
	appendEach(t, q, span(6, 9)...)
	q.crash(t)
	q = openTest(t, path, 0)
	if st := q.Stats(); st.Pending != 6 || st.Segments != 1 {
		t.Fatalf("after reopen: %d pending, %d segments; want 6 and 1", st.Pending, st.Segments)
	}
	wantSealed(t, q, span(1, 9))
	// Reading the log again finds nothing new: what was replayed is in bbolt.
	q.crash(t)
	q = openTest(t, path, 0)
	if st := q.Stats(); st.Pending != 0 {
		t.Fatalf("second reopen: %d pending, want 0", st.Pending)
	}
}

// After Close, queue.db alone holds every event: an agent stopped cleanly
// can be started by a version that knows no log.
func TestCloseLeavesEveryEventInTheQueueFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "queue.db")
	q := openTest(t, path, 0)
	appendEach(t, q, span(1, 7)...)
	if _, _, err := q.Seal(2); err != nil {
		t.Fatal(err)
	}
	appendEach(t, q, 8)
	if err := q.Close(); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(WALPath(path)); err != nil {
		t.Fatal(err)
	}
	q = openTest(t, path, 0)
	wantSealed(t, q, span(1, 8))
}

// A small log fills up many times: it is drained into bbolt and starts
// again, Seal takes from both, and nothing is lost, repeated or reordered,
// also across reopens.
func TestLogStartsAgainWhenFull(t *testing.T) {
	path := filepath.Join(t.TempDir(), "queue.db")
	open := func() *Queue {
		q, err := Open(Options{Path: path, WALBytes: 1 << 10})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = q.Close() })
		return q
	}
	q := open()
	next := uint64(1)
	for round := range 12 {
		for range 7 + round*3 {
			appendEach(t, q, next)
			next++
		}
		if round%3 == 1 {
			if _, _, err := q.Seal(5); err != nil {
				t.Fatal(err)
			}
		}
		switch round % 8 {
		case 3:
			q.crash(t)
			q = open()
		case 7:
			if err := q.Close(); err != nil {
				t.Fatal(err)
			}
			q = open()
		}
	}
	wantSealed(t, q, span(1, next-1))
}

// Seal reads the log in bounded pieces until it has its segment's events:
// a piece that ends inside a record, or holds less than a record, costs
// one more read, never an event, and the buffer the log is read into stays
// the size of a piece (or of one record, when that is larger), not of the
// segment.
func TestSealReadsLogInPieces(t *testing.T) {
	q := openTest(t, filepath.Join(t.TempDir(), "queue.db"), 0)
	appendEach(t, q, span(1, 17)...)
	rec := int64(walHeaderLen + len(ev(t, 1)) + sealOverhead)
	for _, tc := range []struct {
		readMax int64
		want    []uint64
		bufMax  int64 // bound on the read buffer's capacity
	}{
		{10, span(1, 5), 2 * rec},                 // less than a header: one record a read
		{rec / 2, span(6, 10), 2 * rec},           // less than a record: the same
		{2*rec + rec/2, span(11, 15), 3 * rec},    // two and a half records: two a read
		{100 * rec, span(16, 17), 100*rec + 1024}, // what is left
	} {
		q.wal.readMax = tc.readMax
		q.sealBufs.wal = walPiece{}
		seq, ok, err := q.Seal(5)
		if err != nil || !ok {
			t.Fatalf("seal with readMax %d: %v %v", tc.readMax, ok, err)
		}
		if got := segmentIDs(t, q, seq); !equalIDs(got, tc.want) {
			t.Fatalf("readMax %d sealed %v, want %v", tc.readMax, got, tc.want)
		}
		if c := int64(cap(q.sealBufs.wal.data)); c > tc.bufMax {
			t.Fatalf("readMax %d: the log was read into %d bytes, want at most %d", tc.readMax, c, tc.bufMax)
		}
	}
}

// A group larger than the whole log is stored in bbolt directly, after the
// events the log holds.
func TestGroupLargerThanLog(t *testing.T) {
	path := filepath.Join(t.TempDir(), "queue.db")
	q, err := Open(Options{Path: path, WALBytes: 1 << 10})
	if err != nil {
		t.Fatal(err)
	}
	appendEach(t, q, 1, 2)
	if err := q.Append(context.Background(), evs(t, span(3, 40)...)); err != nil {
		t.Fatal(err)
	}
	appendEach(t, q, 41)
	q.crash(t)
	q = openTest(t, path, 0)
	wantSealed(t, q, span(1, 41))
}

// A record cut short by a crash ends the log: the records before it are
// replayed, it and anything after it are not, and the log says so.
func TestTornLogRecord(t *testing.T) {
	path := filepath.Join(t.TempDir(), "queue.db")
	q := openTest(t, path, 0)
	appendEach(t, q, span(1, 6)...)
	q.crash(t)
	// Find the fifth record and break one byte of its value.
	f, err := os.OpenFile(WALPath(path), os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	var off int64
	for range 4 {
		var hdr [walHeaderLen]byte
		if _, err := f.ReadAt(hdr[:], off); err != nil {
			t.Fatal(err)
		}
		off += walHeaderLen + int64(binary.BigEndian.Uint32(hdr[:]))
	}
	if _, err := f.WriteAt([]byte{0xff}, off+walHeaderLen+3); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	var logs bytes.Buffer
	q, err = Open(Options{Path: path, Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = q.Close() })
	wantSealed(t, q, span(1, 4))
	if !strings.Contains(logs.String(), "cut short") || !strings.Contains(logs.String(), "records=1") {
		t.Fatalf("the torn record was not reported:\n%s", logs.String())
	}
}

func TestScanWAL(t *testing.T) {
	rec := func(buf []byte, id uint64) []byte { return appendRecord(buf, id, []byte("value")) }
	f := func(data []byte, wantIDs []uint64, wantTorn int) {
		t.Helper()
		var ids []uint64
		torn := scanWAL(data, func(id uint64, _ []byte) bool { ids = append(ids, id); return true })
		if !equalIDs(ids, wantIDs) || torn != wantTorn {
			t.Fatalf("scan: ids %v torn %d, want %v and %d", ids, torn, wantIDs, wantTorn)
		}
	}
	good := rec(rec(rec(nil, 7), 8), 9)
	f(nil, nil, 0)
	f(make([]byte, 64), nil, 0)
	f(good, []uint64{7, 8, 9}, 0)
	f(append(append([]byte(nil), good...), make([]byte, 40)...), []uint64{7, 8, 9}, 0)
	// What an earlier pass left after the current records: smaller ids.
	f(rec(rec(append([]byte(nil), good...), 3), 4), []uint64{7, 8, 9}, 0)
	f(good[:len(good)-2], []uint64{7, 8}, 1)
	bad := append([]byte(nil), good...)
	bad[len(bad)-1] ^= 1
	f(bad, []uint64{7, 8}, 1)
	f(rec(append([]byte(nil), good...), 11), []uint64{7, 8, 9}, 0) // a gap ends the run
}

// A drain moves the log into bbolt in pieces of drainMax, one transaction
// each, so its memory does not grow with the log; every event arrives
// once, in order, also when the queue crashes after a piece.
func TestDrainInPieces(t *testing.T) {
	path := filepath.Join(t.TempDir(), "queue.db")
	q := openTest(t, path, 0)
	rec := int64(walHeaderLen + len(ev(t, 1)) + sealOverhead)
	q.wal.drainMax = 2*rec + rec/2 // two records a piece
	var pieces atomic.Int64
	q.failAt = func(fp failpoint) error {
		if fp == fpDrained {
			pieces.Add(1)
		}
		return nil
	}
	appendEach(t, q, span(1, 7)...)
	if err := q.drainWAL(); err != nil {
		t.Fatal(err)
	}
	if n := pieces.Load(); n != 4 {
		t.Fatalf("7 records drained in %d pieces, want 4 of at most 2", n)
	}
	appendEach(t, q, span(8, 12)...)
	q.failAt = func(fp failpoint) error {
		if fp == fpDrained {
			return errors.New("crash after the first piece")
		}
		return nil
	}
	if err := q.drainWAL(); err == nil {
		t.Fatal("drain went on past the failpoint")
	}
	q.crash(t)
	q = openTest(t, path, 0)
	wantSealed(t, q, span(1, 12))
}

// Reading the log piece after piece into one walPiece, as Seal and a
// drain do, grows its arrays once: a read of no more records than before
// allocates nothing.
func TestWALReadReusesPiece(t *testing.T) {
	q := openTest(t, filepath.Join(t.TempDir(), "queue.db"), 0)
	appendEach(t, q, span(1, 40)...)
	q.mu.Lock()
	from, to, first := q.wal.consumedOff, q.wal.committedOff, q.wal.consumedID+1
	q.mu.Unlock()
	var p walPiece
	read := func() {
		if _, err := q.walRead(from, to, first, 0, 0, &p); err != nil {
			t.Fatal(err)
		}
	}
	read()
	if len(p.ids) != 40 || len(p.vals) != 40 || p.ids[0] != first || p.ids[39] != first+39 {
		t.Fatalf("read ids %v, want 40 from %d", p.ids, first)
	}
	if allocs := testing.AllocsPerRun(20, read); allocs != 0 {
		t.Fatalf("reading into a piece read before allocates %v times, want 0", allocs)
	}
	if len(p.ids) != 40 {
		t.Fatalf("read again %d ids, want 40", len(p.ids))
	}
}
