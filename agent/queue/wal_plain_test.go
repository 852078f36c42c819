package queue

import (
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/klauspost/compress/zstd"

	"github.com/avila-analytics/avila/protocol"
)

// sealLedger is what a test appended, and checks the segments sealed from
// it: each holds, after its head, appended events byte for byte, every
// event in exactly one segment, the events of one Append together and in
// order, and Appends of one round after those of the rounds before.
type sealLedger struct {
	reqs    [][][]byte // each Append's events
	rounds  []int      // the round of each Append
	byFirst map[string]int
	started []bool
	cur, ev int // the Append being matched and its next event; cur -1: none
	round   int // of the last Append started
	sealed  int
}

func newSealLedger() *sealLedger { return &sealLedger{byFirst: map[string]int{}, cur: -1} }

func (l *sealLedger) add(round int, events [][]byte) {
	l.byFirst[string(events[0])] = len(l.reqs)
	l.reqs, l.rounds, l.started = append(l.reqs, events), append(l.rounds, round), append(l.started, false)
}

// check reads segment seq of q and matches its events against the ledger.
func (l *sealLedger) check(t *testing.T, q *Queue, seq uint64, sealed time.Time) {
	t.Helper()
	wire, err := q.Segment(seq)
	if err != nil {
		t.Fatal(err)
	}
	plain, err := zdecTest.DecodeAll(wire, nil)
	if err != nil {
		t.Fatalf("segment %d: %v", seq, err)
	}
	infos, err := q.OldestSegments(0)
	if err != nil {
		t.Fatal(err)
	}
	n := -1
	for _, info := range infos {
		if info.Seq == seq {
			n = info.Events
		}
	}
	head := protocol.AppendBatchHead(nil, q.AgentID(), seq, sealed.UnixMicro(), n)
	if !bytes.HasPrefix(plain, head) {
		t.Fatalf("segment %d does not start with its head", seq)
	}
	rest := plain[len(head):]
	for i := range n {
		if l.cur < 0 {
			found := -1
			for first, r := range l.byFirst {
				if strings.HasPrefix(string(rest), first) {
					found = r
					break
				}
			}
			if found < 0 || l.started[found] {
				t.Fatalf("segment %d event %d of %d (sealed %d before) is no Append's first event, or one sealed before", seq, i, n, l.sealed)
			}
			if l.rounds[found] < l.round {
				t.Fatalf("segment %d: an Append of round %d sealed after one of round %d", seq, l.rounds[found], l.round)
			}
			l.cur, l.ev, l.round, l.started[found] = found, 0, l.rounds[found], true
		}
		want := l.reqs[l.cur][l.ev]
		if !bytes.HasPrefix(rest, want) {
			t.Fatalf("segment %d event %d: got other bytes than event %d of Append %d", seq, i, l.ev, l.cur)
		}
		rest = rest[len(want):]
		l.sealed++
		if l.ev++; l.ev == len(l.reqs[l.cur]) {
			l.cur = -1
		}
	}
	if len(rest) != 0 {
		t.Fatalf("segment %d: %d bytes after its %d events", seq, len(rest), n)
	}
}

var zdecTest, _ = zstd.NewReader(nil)

// Seal takes logged events from the log's memory copy (walPlain) when it
// holds them and from the file otherwise, and the segments are the same:
// over random Appends (alone and concurrent), Seals of random sizes,
// clean restarts and crashes, with a log small enough to fill, drain
// into the pending bucket and start again at offset 0, and a memory copy
// from none to one that overflows often to one that holds everything,
// every event is sealed exactly once, byte for byte, in order.
func TestSealFromMemoryCopy(t *testing.T) {
	for _, tc := range []struct {
		name     string
		plainMax int
		walBytes int64
	}{
		{"none", 0, 16 << 10},
		{"overflowing", 3 << 10, 16 << 10},
		{"small log", walPlainMax, 6 << 10},
		{"roomy", walPlainMax, 1 << 20},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rng := rand.New(rand.NewPCG(uint64(len(tc.name)), uint64(tc.plainMax)))
			now := time.Date(2026, 12, 7, 3, 0, 0, 0, time.UTC)
			path := filepath.Join(t.TempDir(), "queue.db")
			open := func() *Queue {
				t.Helper()
				q, err := Open(Options{Path: path, WALBytes: tc.walBytes, Now: func() time.Time { return now }})
				if err != nil {
					t.Fatal(err)
				}
				q.wal.plainMax = tc.plainMax
				return q
			}
			q := open()
			l := newSealLedger()
			var taken uint64
			id := 0
			event := func() []byte {
				id++
				b, err := protocol.EncodeEvent(&protocol.Event{Site: 1, Name: "page_view", Visitor: uint64(id),
					Path: fmt.Sprintf("/p/%d/%s", id, strings.Repeat("x", rng.IntN(300)))})
				if err != nil {
					t.Fatal(err)
				}
				return b
			}
			seal := func(max int) bool {
				t.Helper()
				q.mu.Lock()
				before := q.wal.plain.taken
				pending := q.acct.pending
				q.mu.Unlock()
				seq, ok, err := q.Seal(max)
				if err != nil {
					t.Fatal(err)
				}
				if !ok {
					return false
				}
				l.check(t, q, seq, now)
				q.mu.Lock()
				got := q.wal.plain.taken - before
				q.mu.Unlock()
				if int64(got) > pending {
					t.Fatalf("%d events taken from memory, %d pending", got, pending)
				}
				if err := q.Ack(seq); err != nil {
					t.Fatal(err)
				}
				return true
			}
			for round := range 400 {
				switch k := rng.IntN(20); {
				case k < 10:
					events := make([][]byte, 1+rng.IntN(12))
					for i := range events {
						events[i] = event()
					}
					l.add(round, events)
					if err := q.Append(context.Background(), events); err != nil {
						t.Fatal(err)
					}
				case k < 13: // concurrent Appends: one logged group of several
					reqs := make([][][]byte, 2+rng.IntN(6))
					for i := range reqs {
						reqs[i] = [][]byte{event(), event()}
						l.add(round, reqs[i])
					}
					var wg sync.WaitGroup
					for _, events := range reqs {
						wg.Go(func() {
							if err := q.Append(context.Background(), events); err != nil {
								t.Error(err)
							}
						})
					}
					wg.Wait()
				case k < 18:
					seal(1 + rng.IntN(40))
				case k < 19:
					if err := q.Close(); err != nil {
						t.Fatal(err)
					}
					taken += q.wal.plain.taken
					q = open()
				default:
					q.crash(t)
					taken += q.wal.plain.taken
					q = open()
				}
			}
			for seal(1 + rng.IntN(40)) {
			}
			taken += q.wal.plain.taken
			if err := q.Close(); err != nil {
				t.Fatal(err)
			}
			for r, ok := range l.started {
				if !ok {
					t.Fatalf("Append %d of %d never sealed", r, len(l.reqs))
				}
			}
			t.Logf("%d events sealed, %d of them from the memory copy", l.sealed, taken)
			switch {
			case tc.plainMax == 0 && taken != 0:
				t.Fatalf("%d events taken from a memory copy of no bytes", taken)
			case tc.plainMax > 0 && taken == 0:
				t.Fatal("no event was taken from the memory copy")
			case tc.plainMax > 0 && tc.plainMax < walPlainMax && taken == uint64(l.sealed):
				t.Fatal("every event was taken from an overflowing memory copy")
			}
		})
	}
}

// An Append whose ctx ends before its commit returns at once, and its
// caller may reuse the events' slices while they are logged: the memory
// copy Seal takes them from holds them as they were, as the log does.
func TestSealFromMemoryCopyAfterCallerReused(t *testing.T) {
	now := time.Date(2026, 12, 7, 3, 0, 0, 0, time.UTC)
	q, err := Open(Options{Path: filepath.Join(t.TempDir(), "queue.db"), Now: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = q.Close() })
	l := newSealLedger()
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	var appended int64
	for round := range 50 {
		events := evs(t, uint64(2*round+1), uint64(2*round+2))
		keep := [][]byte{bytes.Clone(events[0]), bytes.Clone(events[1])}
		l.add(round, keep)
		if err := q.Append(ctx, events); err != nil && err != context.Canceled {
			t.Fatal(err)
		}
		for _, e := range events {
			for i := range e {
				e[i] = 0xc1 // never used in MessagePack
			}
		}
		appended += 2
		deadline := time.Now().Add(10 * time.Second)
		for q.Pending() < appended {
			if time.Now().After(deadline) {
				t.Fatalf("%d events committed after 10s, want %d", q.Pending(), appended)
			}
			time.Sleep(time.Millisecond)
		}
	}
	seq, ok, err := q.Seal(1000)
	if err != nil || !ok {
		t.Fatalf("seal: %v %v", ok, err)
	}
	l.check(t, q, seq, now)
	if l.sealed != int(appended) || q.wal.plain.taken != uint64(appended) {
		t.Fatalf("%d events sealed, %d from memory, want %d from memory", l.sealed, q.wal.plain.taken, appended)
	}
}

// The memory copy holds at most its bound, only runs of consecutive ids
// that follow what it holds, and forgets what is dropped.
func TestWALPlainBounds(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	const max = 4 << 10
	var p walPlain
	var id, dropped uint64 = 1, 0
	var off int64
	for range 5000 {
		if rng.IntN(3) == 0 {
			if held := uint64(p.held()); held > 0 {
				upTo := p.first + uint64(rng.IntN(int(held)))
				p.drop(upTo)
				dropped = upTo
			}
			continue
		}
		group := make([]*request, 1+rng.IntN(3))
		n := 0
		for i := range group {
			r := &request{}
			for range 1 + rng.IntN(8) {
				e := bytes.Repeat([]byte{byte(id) + byte(n)}, 1+rng.IntN(200))
				r.plain = append(r.plain, e...)
				r.plainEnds = append(r.plainEnds, len(r.plain))
				r.events = append(r.events, make([]byte, len(e)+sealOverhead))
				n++
			}
			group[i] = r
		}
		before, first := p.held(), p.first
		p.add(group, id, off, max)
		if got := len(p.buf) + len(p.recs)*plainRecBytes; got > max {
			t.Fatalf("holds %d bytes, bound %d", got, max)
		}
		if before > 0 && p.held() > before && first+uint64(before) != id {
			t.Fatalf("held ids %d.. then added %d, not the next", first, id)
		}
		if p.held() > 0 && p.first <= dropped {
			t.Fatalf("holds id %d, dropped up to %d", p.first, dropped)
		}
		for k := range p.held() {
			rec := p.recs[p.head+k]
			got := p.buf[rec.start:rec.end]
			if byte(p.first+uint64(k)) != got[0] {
				t.Fatalf("record %d holds the bytes of another", p.first+uint64(k))
			}
		}
		for _, r := range group {
			for _, e := range r.events {
				off += walHeaderLen + int64(len(e))
			}
		}
		id += uint64(n)
		if rng.IntN(50) == 0 { // a record not held: the next group does not follow
			id++
		}
	}
}
