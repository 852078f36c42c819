package redis

import (
	"context"
	"maps"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/avila-analytics/avila/internal/testenv"
	"github.com/avila-analytics/avila/protocol"
)

// cellsByMinute is a window's cells by minute.
func cellsByMinute(w Window) map[int64]map[Cell]int64 {
	out := map[int64]map[Cell]int64{}
	for _, m := range w.Minutes {
		out[m.Minute] = m.Cells
	}
	return out
}

// sameCells fails t when got's cells differ from want's.
func sameCells(t *testing.T, what string, got, want Window) {
	t.Helper()
	g, w := cellsByMinute(got), cellsByMinute(want)
	if !maps.EqualFunc(g, w, maps.Equal) {
		t.Fatalf("%s: cells\n%v\nwant (event by event)\n%v", what, g, w)
	}
}

// TestRealtimeBatchCountsAsEventByEvent: the Redis store counts a batch's
// distinct cells once, for its memory and for Redis; both must hold what
// counting event by event holds (a memory-only store): with cells
// repeated in a batch, events of several minutes, an event whose user in
// this node's memory is not its user in Redis, a minute that reaches
// MaxCells in the middle of a batch (which cells it keeps depends on the
// events' order), a minute already full, and users' latest active events
// that reach their bound in the middle of a batch.
func TestRealtimeBatchCountsAsEventByEvent(t *testing.T) {
	const maxCells = 4
	now := func() time.Time { return rtNow }
	prefix := testenv.Prefix(t)
	a := NewRedisRealtime(client(t), RealtimeOptions{Prefix: prefix, Now: now, MaxCells: maxCells})
	b := NewRedisRealtime(client(t), RealtimeOptions{Prefix: prefix, Now: now, MaxCells: maxCells})
	// refB counts b's batches event by event, as b's memory must; refAll
	// every batch, as Redis (shared, its cells not bounded) must.
	refB := NewRealtime(RealtimeOptions{Now: now, MaxCells: maxCells})
	refAll := NewRealtime(RealtimeOptions{Now: now, MaxCells: 10_000})
	ctx := context.Background()
	ev := func(minutesAgo int, visitor uint64, path string, active bool) protocol.Event {
		e := at(minutesAgo, 3, visitor, "page_view")
		e.Path = path
		if !active {
			e.EngageMs = 0
		}
		return e
	}

	// On a: device 11's session 100 begins under its client key.
	first := []protocol.Event{pe(6, 11, 0, 100)}
	a.Record(ctx, first)
	refAll.Record(ctx, first)

	var batch []protocol.Event
	// A login in session 100 on b: b's memory has not seen the device
	// (user 91), Redis has (user 11).
	batch = append(batch, pe(5, 91, 11, 100))
	// Repeated cells across two minutes, interleaved.
	for range 3 {
		batch = append(batch, ev(4, 21, "/r", true), ev(3, 21, "/r", false), ev(4, 22, "/r", true))
	}
	// Minute 2 reaches MaxCells in the middle: cells 31, 32, 33, 34 are
	// kept; 35 (three events) and 36 are not, whichever is counted first.
	for _, v := range []uint64{31, 32, 31, 33, 34, 35, 35, 36, 35, 32} {
		batch = append(batch, ev(2, v, "/m", false))
	}
	// The users' latest active events reach their bound (MaxCells ×
	// RealtimeWindow) in the middle of the batch.
	for v := range uint64(maxCells*RealtimeWindow + 10) {
		batch = append(batch, ev(1, 1000+v, "/u", true))
	}
	// Minute 0 fills up in this batch...
	for v := range uint64(maxCells) {
		batch = append(batch, ev(0, 40+v, "/f", v%2 == 0))
	}
	b.Record(ctx, batch)
	refB.Record(ctx, batch)
	refAll.Record(ctx, batch)
	// ... and is full for the next: known cells count, new ones do not.
	full := []protocol.Event{ev(0, 40, "/f", true), ev(0, 50, "/f", true), ev(0, 41, "/f", false), ev(0, 50, "/f", true)}
	b.Record(ctx, full)
	refB.Record(ctx, full)
	refAll.Record(ctx, full)

	mw := b.mem.windowMemory(3, unixMinute(rtNow))
	rw, _ := refB.Window(ctx, 3)
	sameCells(t, "b's memory", mw, rw)
	if got, want := b.DroppedCells(), refB.DroppedCells(); got != want || want == 0 {
		t.Fatalf("dropped %d cells' events, want %d (not 0)", got, want)
	}
	if got, want := b.mem.sites[3].active, refB.sites[3].active; !maps.Equal(got, want) {
		for u, at := range want {
			if got[u] != at {
				t.Fatalf("b's memory: %d users' latest active events, want %d; user %x: %d, want %d", len(got), len(want), u, got[u], at)
			}
		}
		t.Fatalf("b's memory: %d users' latest active events, want %d", len(got), len(want))
	}
	if !slices.Contains(keysOf(mw), 91) {
		t.Fatalf("b's memory counts the login under %x, want 91 (it has not seen the device)", keysOf(mw))
	}

	w, err := b.Window(ctx, 3)
	if err != nil || w.Memory {
		t.Fatalf("Redis window: %v (memory %v)", err, w.Memory)
	}
	all, _ := refAll.Window(ctx, 3)
	sameCells(t, "Redis", w, all)
	if slices.Contains(keysOf(w), 91) {
		t.Fatalf("Redis counts the login under %x, want 11 (its session's user)", keysOf(w))
	}
	// Redis keeps the newest MaxCells × RealtimeWindow users: each has
	// its latest active event.
	zs, err := b.client.ZRangeWithScores(ctx, b.ActiveKey(3), 0, -1).Result()
	if err != nil || len(zs) == 0 {
		t.Fatalf("active users in Redis: %v, %v", zs, err)
	}
	for _, z := range zs {
		u, err := strconv.ParseUint(z.Member.(string), 16, 64)
		if err != nil {
			t.Fatal(err)
		}
		if want, ok := refAll.sites[3].active[u]; !ok || int64(z.Score) != want {
			t.Fatalf("Redis: user %x latest active at %v, want %d (%v)", u, z.Score, want, ok)
		}
	}
}
