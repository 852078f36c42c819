package redis

import (
	"context"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/avila-analytics/avila/internal/testenv"
	"github.com/avila-analytics/avila/protocol"
)

// TestRealtimeConcurrentNodesAddEveryCount: nodes recording batches into
// the same minutes at once add every count once: each cell holds what
// counting every batch in one store holds, and each minute's version
// counts every write to it. Lost or doubled increments fail it.
func TestRealtimeConcurrentNodesAddEveryCount(t *testing.T) {
	const nodes, rounds = 4, 5
	now := func() time.Time { return rtNow }
	prefix := testenv.Prefix(t)
	ref := NewRealtime(RealtimeOptions{Now: now, MaxCells: 100_000})
	var batches [][]protocol.Event
	for n := range nodes {
		var evs []protocol.Event
		for i := range 300 {
			e := at(i%3, 5, uint64(1+i%40), "page_view")
			e.Path = "/p" + strconv.Itoa((i+n)%7)
			evs = append(evs, e)
		}
		batches = append(batches, evs)
	}
	ctx := context.Background()
	for range rounds {
		for _, evs := range batches {
			ref.Record(ctx, evs)
		}
	}
	stores := make([]*RedisRealtime, nodes)
	for n := range stores {
		stores[n] = NewRedisRealtime(client(t), RealtimeOptions{Prefix: prefix, Now: now})
	}
	var wg sync.WaitGroup
	for n, s := range stores {
		wg.Go(func() {
			for range rounds {
				s.Record(ctx, batches[n])
			}
		})
	}
	wg.Wait()
	for n, s := range stores {
		if e := s.RedisErrors(); e != 0 {
			t.Fatalf("node %d: %d Redis errors", n, e)
		}
	}
	got, err := stores[0].Window(ctx, 5)
	if err != nil {
		t.Fatal(err)
	}
	want, err := ref.Window(ctx, 5)
	if err != nil {
		t.Fatal(err)
	}
	if len(got.Minutes) != 3 {
		t.Fatalf("%d minutes, want 3", len(got.Minutes))
	}
	sameCells(t, "concurrent nodes", got, want)
	c := client(t)
	for _, m := range got.Minutes {
		v, err := c.HGet(ctx, stores[0].EventsKey(5, m.Minute), versionField).Int64()
		if err != nil || v != nodes*rounds {
			t.Fatalf("version of minute %d: %d %v, want %d (one per batch)", m.Minute, v, err, nodes*rounds)
		}
	}
}
