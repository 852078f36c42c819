package queue

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime/debug"
	"sync"
	"testing"
	"time"

	"github.com/avila-analytics/avila/protocol"
)

// sealAll seals everything pending and returns how often each id occurs
// across all unacknowledged segments.
func sealAll(t testing.TB, q *Queue) map[uint64]int {
	t.Helper()
	for {
		_, ok, err := q.Seal(1000)
		if err != nil {
			t.Fatal(err)
		}
		if !ok {
			break
		}
	}
	segs, err := q.Segments()
	if err != nil {
		t.Fatal(err)
	}
	seen := map[uint64]int{}
	for _, s := range segs {
		for _, id := range segmentIDs(t, q, s.Seq) {
			seen[id]++
		}
	}
	return seen
}

func TestConcurrentAppendSharesCommits(t *testing.T) {
	q := openTest(t, filepath.Join(t.TempDir(), "queue.db"), 0)
	const workers, perWorker = 64, 60
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range perWorker {
				// 1 to 3 events per call, ids unique across workers.
				base := uint64(w*1_000_000 + i*10)
				ids := []uint64{base}
				for j := 1; j <= i%3; j++ {
					ids = append(ids, base+uint64(j))
				}
				if err := q.Append(context.Background(), evs(t, ids...)); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	want := 0
	for i := range perWorker {
		want += 1 + i%3
	}
	want *= workers
	st := q.Stats()
	if st.Appended != uint64(want) || st.Pending != int64(want) {
		t.Fatalf("appended %d, pending %d; want %d", st.Appended, st.Pending, want)
	}
	// Without group commit every Append is its own transaction.
	if st.Commits >= workers*perWorker {
		t.Fatalf("%d commits for %d concurrent Appends: commits are not shared", st.Commits, workers*perWorker)
	}
	seen := sealAll(t, q)
	if len(seen) != want {
		t.Fatalf("%d distinct ids in segments, want %d", len(seen), want)
	}
	for id, n := range seen {
		if n != 1 {
			t.Fatalf("id %d stored %d times", id, n)
		}
	}
	t.Logf("%d appends in %d commits", workers*perWorker, st.Commits)
}

func TestAppendRefusedWhenFull(t *testing.T) {
	q := openTest(t, filepath.Join(t.TempDir(), "queue.db"), 4096)
	ctx := context.Background()
	var stored []uint64
	for id := uint64(1); ; id++ {
		err := q.Append(ctx, evs(t, id))
		if errors.Is(err, ErrFull) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		stored = append(stored, id)
	}
	st := q.Stats()
	if st.UsedBytes > 4096 || len(stored) == 0 {
		t.Fatalf("used %d bytes of 4096 with %d events", st.UsedBytes, len(stored))
	}
	// A call too large for the remaining room stores none of its events.
	if err := q.Append(ctx, evs(t, 9001, 9002)); !errors.Is(err, ErrFull) {
		t.Fatalf("Append when full = %v, want ErrFull", err)
	}
	if got := q.Stats().Pending; got != int64(len(stored)) {
		t.Fatalf("pending %d after refused Append, want %d", got, len(stored))
	}
	// Shipping frees the budget.
	seq, _, err := q.Seal(1000)
	if err != nil {
		t.Fatal(err)
	}
	if err := q.Ack(seq); err != nil {
		t.Fatal(err)
	}
	if err := q.Append(ctx, evs(t, 9001, 9002)); err != nil {
		t.Fatalf("Append after ack freed space = %v", err)
	}
}

// The file must stay bounded through many fill / seal / ack cycles: the
// budget refuses events and bbolt reuses freed pages.
func TestFileSizeBounded(t *testing.T) {
	const max = 1 << 20
	path := filepath.Join(t.TempDir(), "queue.db")
	q := openTest(t, path, max)
	ctx := context.Background()
	ev, err := protocol.EncodeEvent(&protocol.Event{Site: 1, Name: "page_view", Path: "/a/fairly/long/path/to/make/events/bigger", Title: "A page title of some length"})
	if err != nil {
		t.Fatal(err)
	}
	batch := make([][]byte, 40)
	for i := range batch {
		batch[i] = ev
	}
	var largest int64
	for round := range 8 {
		full := false
		for !full {
			switch err := q.Append(ctx, batch); {
			case errors.Is(err, ErrFull):
				full = true
			case err != nil:
				t.Fatal(err)
			}
		}
		// Half the rounds ship only part of the backlog, so live data and
		// free pages interleave.
		for {
			seq, ok, err := q.Seal(5000)
			if err != nil {
				t.Fatal(err)
			}
			if !ok {
				break
			}
			if round%2 == 0 || seq%2 == 0 {
				if err := q.Ack(seq); err != nil {
					t.Fatal(err)
				}
			}
		}
		if round%2 == 1 {
			segs, _ := q.Segments()
			for _, s := range segs {
				_ = q.Ack(s.Seq)
			}
		}
		fi, err := os.Stat(path)
		if err != nil {
			t.Fatal(err)
		}
		largest = max64(largest, fi.Size())
	}
	// bbolt pages are rarely full after deletes and writes copy on write;
	// three times the budget plus its initial allocation is a firm bound.
	if bound := int64(3*max + 1<<20); largest > bound {
		t.Fatalf("queue file grew to %d bytes with a %d byte budget (bound %d)", largest, max, bound)
	}
	t.Logf("largest file %d bytes for a %d byte budget", largest, max)
}

func max64(a, b int64) int64 {
	if a > b {
		return a
	}
	return b
}

// BenchmarkAppend measures fsynced Appends of one event from many
// concurrent callers (32 per CPU), as the HTTP handlers issue them, while a
// sealer takes segments of 5000 events as the shipper does. cpu_us/op is
// the process's CPU time per Append (0 where the platform does not say).
func BenchmarkAppend(b *testing.B) {
	q := openTest(b, filepath.Join(b.TempDir(), "queue.db"), 1<<34)
	ev, err := protocol.EncodeEvent(&protocol.Event{Site: 1, Name: "page_view", Visitor: 42, Path: "/blog/ga4-wire-format",
		Title: "The GA4 wire format | Bench Example blog", Referrer: "www.google.com", Browser: "Chrome", OS: "Windows", Country: "DE"})
	if err != nil {
		b.Fatal(err)
	}
	stop, sealerDone := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(sealerDone)
		for {
			select {
			case <-stop:
				return
			case <-q.Appended():
				for q.Pending() >= 5000 {
					if _, _, err := q.Seal(5000); err != nil {
						b.Error(err)
						return
					}
				}
			}
		}
	}()
	b.SetParallelism(32)
	b.SetBytes(int64(len(ev)))
	cpu0 := processCPU()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		events := [][]byte{ev}
		for pb.Next() {
			if err := q.Append(context.Background(), events); err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.StopTimer()
	close(stop)
	<-sealerDone
	st := q.Stats()
	b.ReportMetric(float64(st.Appended)/float64(st.Commits), "appends/commit")
	b.ReportMetric(float64(processCPU()-cpu0)/1e3/float64(b.N), "cpu_us/op")
}

// BenchmarkSeal measures Seal alone: each op seals a segment of 2000
// logged events (what the agent seals every 200 ms at 10,000 events a
// second), appended beforehand in requests of 20 with the clock stopped,
// under the agent's GC settings (agent.DefaultGCPercent,
// agent.DefaultMemoryLimit). B/op is what each segment allocates.
func BenchmarkSeal(b *testing.B) {
	defer debug.SetGCPercent(debug.SetGCPercent(400))
	defer debug.SetMemoryLimit(debug.SetMemoryLimit(24 << 20))
	q := openTest(b, filepath.Join(b.TempDir(), "queue.db"), 1<<34)
	events := make([][]byte, 20)
	for i := range events {
		ev, err := protocol.EncodeEvent(&protocol.Event{Site: 1, Name: "page_view", Visitor: 42 + uint64(i), Path: fmt.Sprintf("/blog/post-%d", i),
			Title: "The GA4 wire format | Bench Example blog", Referrer: "www.google.com", Browser: "Chrome", OS: "Windows", Country: "DE",
			Params: map[string]string{"section": "blog", "author": "someone"}})
		if err != nil {
			b.Fatal(err)
		}
		events[i] = ev
	}
	const perSeal = 2000
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		b.StopTimer()
		for range perSeal / len(events) {
			if err := q.Append(ctx, events); err != nil {
				b.Fatal(err)
			}
		}
		b.StartTimer()
		seq, ok, err := q.Seal(perSeal)
		if err != nil || !ok {
			b.Fatalf("seal: ok %v, %v", ok, err)
		}
		b.StopTimer()
		if err := q.Ack(seq); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
	}
}

// Answered Appends' requests are reused by later ones (takeRequest): many
// concurrent Appends of varied sizes, each reusing what another left, store
// every event once, unchanged, and nothing of an earlier request.
func TestAppendReusedRequestsCarryNothingOver(t *testing.T) {
	q := openTest(t, filepath.Join(t.TempDir(), "queue.db"), 0)
	ctx := context.Background()
	const writers, appends = 8, 40
	// idsOf are the ids of writer w's Append a: 1 to 23 events.
	idsOf := func(w, a int) []uint64 {
		ids := make([]uint64, 1+(w*7+a*13)%23)
		for i := range ids {
			ids[i] = uint64(w*1_000_000 + a*1000 + i + 1)
		}
		return ids
	}
	var wg sync.WaitGroup
	for w := range writers {
		wg.Go(func() {
			for a := range appends {
				if err := q.Append(ctx, evs(t, idsOf(w, a)...)); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	want := map[uint64]bool{}
	for w := range writers {
		for a := range appends {
			for _, id := range idsOf(w, a) {
				want[id] = true
			}
		}
	}
	if st := q.Stats(); st.Pending != int64(len(want)) {
		t.Fatalf("pending = %d, want %d", st.Pending, len(want))
	}
	got := sealAll(t, q)
	for id := range want {
		if got[id] != 1 {
			t.Errorf("event %d stored %d times, want once", id, got[id])
		}
	}
	if len(got) != len(want) {
		t.Fatalf("stored %d distinct events, want %d", len(got), len(want))
	}
	q.freeMu.Lock()
	kept := len(q.free)
	q.freeMu.Unlock()
	if kept == 0 || kept > maxFreeRequests {
		t.Fatalf("%d requests kept for reuse, want 1 to %d", kept, maxFreeRequests)
	}
}

// A commit keeps its group's array for the next one (Queue.spare), emptied:
// Appends one after another allocate nothing once warm, and the array kept
// holds none of the requests it carried.
func TestCommitKeepsGroupArray(t *testing.T) {
	q := openTest(t, filepath.Join(t.TempDir(), "queue.db"), 0)
	ctx := context.Background()
	events := evs(t, 1, 2, 3)
	appendOnce := func() {
		if err := q.Append(ctx, events); err != nil {
			t.Fatal(err)
		}
	}
	for range 10 {
		appendOnce()
	}
	if n := testing.AllocsPerRun(200, appendOnce); n != 0 {
		t.Fatalf("an Append allocated %v times, want 0", n)
	}
	// The committer went idle after the last answer; under mu it is done
	// with spare.
	deadline := time.Now().Add(10 * time.Second)
	for {
		q.mu.Lock()
		idle := !q.committing
		q.mu.Unlock()
		if idle {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("committer did not go idle")
		}
		time.Sleep(time.Millisecond)
	}
	q.mu.Lock()
	spare := q.spare
	q.mu.Unlock()
	if cap(spare) == 0 {
		t.Fatal("no group array kept for the next commit")
	}
	for i, r := range spare[:cap(spare)] {
		if r != nil {
			t.Fatalf("kept group array holds a request at %d", i)
		}
	}
}
