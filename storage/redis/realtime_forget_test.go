package redis

import (
	"context"
	"testing"
	"time"

	"github.com/avila-analytics/avila/internal/testenv"
	"github.com/avila-analytics/avila/protocol"
)

// TestRealtimeForget: an erased visitor leaves the realtime window, in
// Redis (seen by another node) and in memory; the others stay.
func TestRealtimeForget(t *testing.T) {
	ctx := context.Background()
	c := client(t)
	prefix := testenv.Prefix(t)
	now := func() time.Time { return rtNow }
	a := NewRedisRealtime(c, RealtimeOptions{Prefix: prefix, Now: now})
	b := NewRedisRealtime(c, RealtimeOptions{Prefix: prefix, Now: now})
	a.Record(ctx, []protocol.Event{at(0, 7, 1, "page_view"), at(0, 7, 2, "page_view"), at(3, 7, 1, "click"), at(5, 7, 3, "click"), at(0, 8, 1, "page_view")})
	if w, _ := b.Window(ctx, 7); w.ActiveUsers(time.UTC) != 3 {
		t.Fatalf("before: %d users, want 3", w.ActiveUsers(time.UTC))
	}
	if err := a.Forget(ctx, 7, []uint64{1}); err != nil {
		t.Fatal(err)
	}
	for name, r := range map[string]realtimeStore{"other node (redis)": b, "this node": a} {
		w, err := r.Window(ctx, 7)
		if err != nil {
			t.Fatal(err)
		}
		events, _ := total(w)
		if w.ActiveUsers(time.UTC) != 2 || events != 2 {
			t.Fatalf("%s after forgetting visitor 1: %d users, %d events; want 2 and 2", name, w.ActiveUsers(time.UTC), events)
		}
		for _, m := range w.Minutes {
			for cell := range m.Cells {
				if cell.Visitor == 1 {
					t.Fatalf("%s: visitor 1 still in minute %d", name, m.Minute)
				}
			}
		}
	}
	if w, _ := b.Window(ctx, 8); w.ActiveUsers(time.UTC) != 1 {
		t.Fatalf("another site lost its visitor: %d users", w.ActiveUsers(time.UTC))
	}
	// Without Redis, memory alone.
	m := NewRealtime(RealtimeOptions{Now: now})
	m.Record(ctx, []protocol.Event{at(0, 7, 1, "page_view"), at(1, 7, 2, "page_view")})
	if err := m.Forget(ctx, 7, []uint64{1}); err != nil {
		t.Fatal(err)
	}
	if w, _ := m.Window(ctx, 7); w.ActiveUsers(time.UTC) != 1 {
		t.Fatalf("memory only: %d users after forgetting, want 1", w.ActiveUsers(time.UTC))
	}
}
