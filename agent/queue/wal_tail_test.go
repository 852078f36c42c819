package queue

import (
	"context"
	"errors"
	"math/rand/v2"
	"path/filepath"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/avila-analytics/avila/protocol"
)

// Seal gives the same segments whether it copies the log's records from
// the tail in memory, reads them all from the log, or mixes both because
// the tail's bound left gaps: the same events in each segment, in order,
// and the same pending events and bytes. (Segments' bytes are not
// compared: each queue's agent id, in every batch's head, compresses
// differently.) A small log is drained and restarted along the way, and
// the queues are closed and crashed and opened again.
func TestTailSealsAsTheLog(t *testing.T) {
	dir := t.TempDir()
	rec := len(ev(t, 1))
	tails := []int{0, 3 * rec, 40 * rec, defaultTailBytes} // off, tight (gaps), loose, default
	qs := make([]*Queue, len(tails))
	open := func(i int) {
		q, err := Open(Options{Path: filepath.Join(dir, string(rune('a'+i))+".db"), WALBytes: 4 << 10})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = q.Close() })
		q.tail.max = tails[i]
		qs[i] = q
	}
	for i := range qs {
		open(i)
	}
	rng := rand.New(rand.NewPCG(1, 2))
	next := uint64(1)
	for round := range 300 {
		n := 1 + rng.IntN(6)
		if rng.IntN(40) == 0 {
			n = 60 // larger than the log: committed to bbolt directly
		}
		events := evs(t, span(next, next+uint64(n)-1)...)
		next += uint64(n)
		seal := 0
		if rng.IntN(3) > 0 {
			seal = 1 + rng.IntN(16)
		}
		restart := rng.IntN(40)
		for i, q := range qs {
			if err := q.Append(context.Background(), events); err != nil {
				t.Fatalf("round %d, tail %d: append: %v", round, tails[i], err)
			}
			if seal > 0 {
				if _, _, err := q.Seal(seal); err != nil {
					t.Fatalf("round %d, tail %d: seal: %v", round, tails[i], err)
				}
			}
			switch restart {
			case 0:
				q.crash(t)
				open(i)
			case 1:
				if err := q.Close(); err != nil {
					t.Fatal(err)
				}
				open(i)
			}
		}
		want := qs[0].Stats()
		for i, q := range qs[1:] {
			if got := q.Stats(); got.Pending != want.Pending || got.PendingBytes != want.PendingBytes ||
				got.Segments != want.Segments {
				t.Fatalf("round %d, tail %d: stats %+v, without a tail %+v", round, tails[i+1], got, want)
			}
		}
	}
	want := sealedInOrder(t, qs[0])
	if !equalIDs(want, span(1, next-1)) {
		t.Fatalf("without a tail: sealed %d events, want 1..%d in order", len(want), next-1)
	}
	for i, q := range qs[1:] {
		if got := sealedInOrder(t, q); !equalIDs(got, want) {
			t.Fatalf("tail %d: sealed %v, without a tail %v", tails[i+1], head(got), head(want))
		}
		segs, err := q.Segments()
		if err != nil {
			t.Fatal(err)
		}
		for _, s := range segs {
			if got, want := segmentIDs(t, q, s.Seq), segmentIDs(t, qs[0], s.Seq); !equalIDs(got, want) {
				t.Fatalf("tail %d: segment %d holds %v, without a tail %v", tails[i+1], s.Seq, head(got), head(want))
			}
		}
	}
}

// With the tail on and Seal keeping up, Seal never reads the log, and a
// segment's events decode exactly as appended.
func TestTailSparesLogReads(t *testing.T) {
	q := openTest(t, filepath.Join(t.TempDir(), "queue.db"), 0)
	var want []protocol.Event
	for id := uint64(1); id <= 50; id++ {
		e := protocol.Event{Site: 1, TimeMicros: int64(id), Name: "scroll", Visitor: id, Path: "/docs",
			NumParams: map[string]float64{"percent_scrolled": 90}}
		b, err := protocol.EncodeEvent(&e)
		if err != nil {
			t.Fatal(err)
		}
		if err := q.Append(context.Background(), [][]byte{b}); err != nil {
			t.Fatal(err)
		}
		want = append(want, e)
	}
	seq, ok, err := q.Seal(100)
	if err != nil || !ok {
		t.Fatalf("seal: %v %v", ok, err)
	}
	if c := cap(q.sealBufs.wal); c != 0 {
		t.Fatalf("Seal read the log into %d bytes; want the tail copied", c)
	}
	wire, err := q.Segment(seq)
	if err != nil {
		t.Fatal(err)
	}
	b, err := protocol.DecodeBatch(wire)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(want, b.Events); diff != "" {
		t.Fatalf("segment's events (-appended +sealed):\n%s", diff)
	}
	q.mu.Lock()
	defer q.mu.Unlock()
	if len(q.tail.chunks) != 0 || q.tail.held != 0 {
		t.Fatalf("after sealing everything the tail holds %d chunks, %d bytes", len(q.tail.chunks), q.tail.held)
	}
}

// An Append whose context ends before its group is committed returns at
// once, and its caller may reuse the events' memory: the tail never copies
// it, so the segment holds the events as appended (from the log), not what
// the caller wrote over them.
func TestTailSkipsAbandonedAppend(t *testing.T) {
	q := openTest(t, filepath.Join(t.TempDir(), "queue.db"), 0)
	hold, held := make(chan struct{}), make(chan struct{}, 1)
	q.failAt = func(fp failpoint) error {
		if fp == fpLogWritten {
			select {
			case held <- struct{}{}:
				<-hold // the first commit waits until the second Append gave up
			default:
			}
		}
		return nil
	}
	first := make(chan error, 1)
	go func() { first <- q.Append(context.Background(), evs(t, 1)) }()
	<-held
	ctx, cancel := context.WithCancel(context.Background())
	second := evs(t, 2)
	done := make(chan error, 1)
	go func() { done <- q.Append(ctx, second) }()
	for q.queued() == 0 {
		time.Sleep(time.Millisecond)
	}
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatalf("abandoned Append = %v, want context.Canceled", err)
	}
	overwritten := ev(t, 99)
	copy(second[0], overwritten) // the caller reuses its buffer
	close(hold)
	if err := <-first; err != nil {
		t.Fatal(err)
	}
	appendEach(t, q, 3) // committed after the abandoned one: not in the tail either
	wantSealed(t, q, span(1, 3))
}

// queued is the number of Appends waiting for the next commit.
func (q *Queue) queued() int {
	q.mu.Lock()
	defer q.mu.Unlock()
	return len(q.waiting)
}
