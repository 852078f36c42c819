package queue

import (
	"bytes"
	"context"
	"encoding/binary"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

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

func span(from, to uint64) []uint64 {
	var ids []uint64
	for id := from; id <= to; id++ {
		ids = append(ids, id)
	}
	return ids
}

// Events only in the log when the queue closes are pending again at the
// next Open, in order, after those sealed before.
func TestLoggedEventsSurviveReopen(t *testing.T) {
	path := filepath.Join(t.TempDir(), "queue.db")
	q := openTest(t, path, 0)
	appendEach(t, q, span(1, 5)...)
	if _, _, err := q.Seal(3); err != nil {
		t.Fatal(err)
	}
	appendEach(t, q, span(6, 9)...)
	if err := q.Close(); err != nil {
		t.Fatal(err)
	}
	q = openTest(t, path, 0)
	if st := q.Stats(); st.Pending != 6 || st.Segments != 1 {
		t.Fatalf("after reopen: %d pending, %d segments; want 6 and 1", st.Pending, st.Segments)
	}
	if got := sealedInOrder(t, q); !equalIDs(got, span(1, 9)) {
		t.Fatalf("sealed after reopen: %v", got)
	}
	// Reading the log again finds nothing new: what was replayed is in bbolt.
	if err := q.Close(); err != nil {
		t.Fatal(err)
	}
	q = openTest(t, path, 0)
	if st := q.Stats(); st.Pending != 0 {
		t.Fatalf("second reopen: %d pending, want 0", st.Pending)
	}
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
		if round%4 == 3 {
			if err := q.Close(); err != nil {
				t.Fatal(err)
			}
			q = open()
		}
	}
	if got := sealedInOrder(t, q); !equalIDs(got, span(1, next-1)) {
		t.Fatalf("sealed %v, want 1..%d", got, next-1)
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
	if err := q.Close(); err != nil {
		t.Fatal(err)
	}
	q = openTest(t, path, 0)
	if got := sealedInOrder(t, q); !equalIDs(got, span(1, 41)) {
		t.Fatalf("sealed %v, want 1..41", got)
	}
}

// A record cut short by a crash ends the log: the records before it are
// replayed, it and anything after it are not, and the log says so.
func TestTornLogRecord(t *testing.T) {
	path := filepath.Join(t.TempDir(), "queue.db")
	q := openTest(t, path, 0)
	appendEach(t, q, span(1, 6)...)
	if err := q.Close(); err != nil {
		t.Fatal(err)
	}
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
	if got := sealedInOrder(t, q); !equalIDs(got, span(1, 4)) {
		t.Fatalf("sealed %v, want 1..4", got)
	}
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
