package queue

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/avila-analytics/avila/protocol"
)

func TestMain(m *testing.M) {
	// The crash test re-executes this binary as the process it kills.
	if dir := os.Getenv(crashChildEnv); dir != "" {
		crashChild(dir)
		os.Exit(0)
	}
	os.Exit(m.Run())
}

func openTest(t testing.TB, path string, max int64) *Queue {
	t.Helper()
	q, err := Open(Options{Path: path, MaxBytes: max})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = q.Close() })
	return q
}

// ev encodes a distinct event whose Visitor field carries id.
func ev(t testing.TB, id uint64) []byte {
	t.Helper()
	b, err := protocol.EncodeEvent(&protocol.Event{Site: 1, TimeMicros: int64(id), Name: "page_view", Visitor: id, Path: "/pricing"})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func evs(t testing.TB, ids ...uint64) [][]byte {
	out := make([][]byte, len(ids))
	for i, id := range ids {
		out[i] = ev(t, id)
	}
	return out
}

// segmentIDs decodes a segment and returns its event ids in order.
func segmentIDs(t testing.TB, q *Queue, seq uint64) []uint64 {
	t.Helper()
	wire, err := q.Segment(seq)
	if err != nil {
		t.Fatal(err)
	}
	b, err := protocol.DecodeBatch(wire)
	if err != nil {
		t.Fatal(err)
	}
	if b.AgentID != q.AgentID() || b.Seq != seq {
		t.Fatalf("segment %d decodes as %s/%d, want %s/%d", seq, b.AgentID, b.Seq, q.AgentID(), seq)
	}
	ids := make([]uint64, len(b.Events))
	for i, e := range b.Events {
		ids[i] = e.Visitor
	}
	return ids
}

func TestAppendSealKeepsOrder(t *testing.T) {
	q := openTest(t, filepath.Join(t.TempDir(), "queue.db"), 0)
	ctx := context.Background()
	for _, ids := range [][]uint64{{1, 2, 3}, {4}, {5, 6, 7, 8, 9, 10}} {
		if err := q.Append(ctx, evs(t, ids...)); err != nil {
			t.Fatal(err)
		}
	}
	select {
	case <-q.Appended():
	default:
		t.Fatal("Appended() gave no notice after commits")
	}
	if st := q.Stats(); st.Pending != 10 || st.Appended != 10 || st.Commits != 3 {
		t.Fatalf("stats after append = %+v", st)
	}
	f := func(max int, wantSeq uint64, want []uint64) {
		t.Helper()
		seq, ok, err := q.Seal(max)
		if err != nil || !ok || seq != wantSeq {
			t.Fatalf("Seal(%d) = %d, %v, %v; want seq %d", max, seq, ok, err, wantSeq)
		}
		if got := segmentIDs(t, q, seq); !equalIDs(got, want) {
			t.Fatalf("segment %d holds %v, want %v", seq, got, want)
		}
	}
	f(4, 1, []uint64{1, 2, 3, 4})
	f(100, 2, []uint64{5, 6, 7, 8, 9, 10})
	if _, ok, err := q.Seal(100); ok || err != nil {
		t.Fatalf("Seal with nothing pending = ok %v err %v", ok, err)
	}
	segs, err := q.Segments()
	if err != nil {
		t.Fatal(err)
	}
	if len(segs) != 2 || segs[0].Seq != 1 || segs[0].Events != 4 || segs[1].Seq != 2 || segs[1].Events != 6 || segs[0].Bytes == 0 {
		t.Fatalf("segments = %+v", segs)
	}
	if oldest, err := q.OldestSegments(1); err != nil || len(oldest) != 1 || oldest[0] != segs[0] {
		t.Fatalf("OldestSegments(1) = %+v, %v; want %+v", oldest, err, segs[0])
	}
	st := q.Stats()
	if st.Pending != 0 || st.PendingBytes != 0 || st.Segments != 2 || st.OldestSegment.IsZero() {
		t.Fatalf("stats after seal = %+v", st)
	}
}

func equalIDs(a, b []uint64) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func TestSeqAndContentSurviveReopen(t *testing.T) {
	path := filepath.Join(t.TempDir(), "queue.db")
	ctx := context.Background()
	q, err := Open(Options{Path: path})
	if err != nil {
		t.Fatal(err)
	}
	id := q.AgentID()
	if len(id) != 16 {
		t.Fatalf("agent id %q, want 16 characters", id)
	}
	if err := q.Append(ctx, evs(t, 1, 2, 3)); err != nil {
		t.Fatal(err)
	}
	if _, _, err := q.Seal(10); err != nil {
		t.Fatal(err)
	}
	wire1, _ := q.Segment(1)
	if err := q.Append(ctx, evs(t, 4)); err != nil {
		t.Fatal(err)
	}
	if err := q.Close(); err != nil {
		t.Fatal(err)
	}

	q = openTest(t, path, 0)
	if q.AgentID() != id {
		t.Fatalf("agent id changed across reopen: %s then %s", id, q.AgentID())
	}
	if st := q.Stats(); st.Pending != 1 || st.Segments != 1 || st.PendingBytes == 0 || st.SegmentBytes == 0 {
		t.Fatalf("accounting not rebuilt at open: %+v", st)
	}
	again, err := q.Segment(1)
	if err != nil || !bytes.Equal(again, wire1) {
		t.Fatalf("segment 1 changed across reopen (err %v)", err)
	}
	seq, _, err := q.Seal(10)
	if err != nil || seq != 2 {
		t.Fatalf("seal after reopen = %d, %v; want 2", seq, err)
	}
	// With every segment acknowledged the seq must still not restart.
	for _, s := range []uint64{1, 2} {
		if err := q.Ack(s); err != nil {
			t.Fatal(err)
		}
	}
	if err := q.Close(); err != nil {
		t.Fatal(err)
	}
	q = openTest(t, path, 0)
	if err := q.Append(ctx, evs(t, 5)); err != nil {
		t.Fatal(err)
	}
	if seq, _, err := q.Seal(10); err != nil || seq != 3 {
		t.Fatalf("seal after acking all and reopening = %d, %v; want 3", seq, err)
	}
}

func TestAckAndReject(t *testing.T) {
	path := filepath.Join(t.TempDir(), "queue.db")
	q := openTest(t, path, 0)
	ctx := context.Background()
	for i := uint64(1); i <= 3; i++ {
		if err := q.Append(ctx, evs(t, i)); err != nil {
			t.Fatal(err)
		}
		if _, _, err := q.Seal(1); err != nil {
			t.Fatal(err)
		}
	}
	wire2, _ := q.Segment(2)
	if err := q.Ack(1); err != nil {
		t.Fatal(err)
	}
	if err := q.Ack(1); !errors.Is(err, ErrNoSegment) {
		t.Fatalf("second Ack = %v, want ErrNoSegment", err)
	}
	if _, err := q.Segment(1); !errors.Is(err, ErrNoSegment) {
		t.Fatalf("Segment after Ack = %v, want ErrNoSegment", err)
	}
	if err := q.Reject(2, "version 9, this build speaks 1"); err != nil {
		t.Fatal(err)
	}
	if err := q.Reject(2, "again"); !errors.Is(err, ErrNoSegment) {
		t.Fatalf("second Reject = %v, want ErrNoSegment", err)
	}
	segs, _ := q.Segments()
	if len(segs) != 1 || segs[0].Seq != 3 {
		t.Fatalf("segments after ack+reject = %+v, want only 3", segs)
	}
	st := q.Stats()
	if st.Segments != 1 || st.Rejected != 1 || st.RejectedBytes == 0 {
		t.Fatalf("stats = %+v", st)
	}
	if err := q.Close(); err != nil {
		t.Fatal(err)
	}
	q = openTest(t, path, 0)
	reason, wire, err := q.Rejected(2)
	if err != nil || reason != "version 9, this build speaks 1" || !bytes.Equal(wire, wire2) {
		t.Fatalf("rejected segment 2 = %q, same bytes %v, err %v", reason, bytes.Equal(wire, wire2), err)
	}
	if st2 := q.Stats(); st2.Rejected != 1 || st2.RejectedBytes != st.RejectedBytes || st2.SegmentBytes != st.SegmentBytes {
		t.Fatalf("stats after reopen %+v, before %+v", st2, st)
	}
}

func TestMeta(t *testing.T) {
	path := filepath.Join(t.TempDir(), "queue.db")
	q := openTest(t, path, 0)
	if v, err := q.GetMeta("config"); v != nil || err != nil {
		t.Fatalf("absent meta = %q, %v", v, err)
	}
	if err := q.PutMeta("config", []byte("v1")); err != nil {
		t.Fatal(err)
	}
	if err := q.PutMeta("agent_id", []byte("x")); err == nil {
		t.Fatal("PutMeta overwrote the agent id")
	}
	_ = q.Close()
	q = openTest(t, path, 0)
	if v, err := q.GetMeta("config"); string(v) != "v1" || err != nil {
		t.Fatalf("meta after reopen = %q, %v", v, err)
	}
}

func TestOpenRefusesLockedAndCorruptFiles(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "queue.db")
	openTest(t, path, 0)
	start := time.Now()
	if _, err := Open(Options{Path: path}); err == nil || !strings.Contains(err.Error(), "locked") || !strings.Contains(err.Error(), path) {
		t.Fatalf("second Open = %v, want a lock error naming %s", err, path)
	}
	if waited := time.Since(start); waited > 10*time.Second {
		t.Fatalf("second Open took %v; it must fail fast", waited)
	}

	f := func(name string, content []byte) {
		t.Helper()
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, content, 0o600); err != nil {
			t.Fatal(err)
		}
		_, err := Open(Options{Path: p})
		if err == nil || !strings.Contains(err.Error(), p) || !strings.Contains(err.Error(), "corrupt") {
			t.Fatalf("%s: Open = %v, want a corruption error naming the file", name, err)
		}
		if got, _ := os.ReadFile(p); !bytes.Equal(got, content) {
			t.Fatalf("%s: Open changed the corrupt file", name)
		}
	}
	f("garbage.db", bytes.Repeat([]byte{0xab}, 16384))
	f("zeros.db", make([]byte, 16384))
}

func TestClosedQueue(t *testing.T) {
	q := openTest(t, filepath.Join(t.TempDir(), "queue.db"), 0)
	if err := q.Close(); err != nil {
		t.Fatal(err)
	}
	if err := q.Append(context.Background(), evs(t, 1)); !errors.Is(err, ErrClosed) {
		t.Fatalf("Append after Close = %v, want ErrClosed", err)
	}
	if _, _, err := q.Seal(10); !errors.Is(err, ErrClosed) {
		t.Fatalf("Seal after Close = %v, want ErrClosed", err)
	}
	if err := q.Close(); err != nil {
		t.Fatalf("second Close = %v", err)
	}
}

// Each queue runs one committer goroutine; Close ends it, also when Appends
// are still arriving, and every Append returns.
func TestCloseStopsCommitter(t *testing.T) {
	before := runtime.NumGoroutine()
	for range 10 {
		q, err := Open(Options{Path: filepath.Join(t.TempDir(), "queue.db")})
		if err != nil {
			t.Fatal(err)
		}
		var wg sync.WaitGroup
		for w := range 8 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := range 50 {
					err := q.Append(context.Background(), evs(t, uint64(w*100+i)))
					if errors.Is(err, ErrClosed) {
						return
					}
					if err != nil {
						t.Error(err)
						return
					}
				}
			}()
		}
		for wait := time.Now().Add(5 * time.Second); q.Stats().Commits == 0 && time.Now().Before(wait); {
			time.Sleep(time.Millisecond) // Close once some commits happened
		}
		if err := q.Close(); err != nil {
			t.Fatal(err)
		}
		wg.Wait()
	}
	deadline := time.Now().Add(5 * time.Second)
	for runtime.NumGoroutine() > before {
		if time.Now().After(deadline) {
			t.Fatalf("%d goroutines after closing every queue, %d before", runtime.NumGoroutine(), before)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
