package redis

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/avila-analytics/avila/internal/testenv"
	"github.com/avila-analytics/avila/protocol"
)

// pe is a persistent visitor's event (see at): visitor is the user_id's
// key when client is set, else the client id's.
func pe(minutesAgo int, visitor, client uint64, sid int64) protocol.Event {
	e := at(minutesAgo, 3, visitor, "page_view")
	e.Client, e.SessionID, e.Flags = client, sid, protocol.FlagPersistent
	return e
}

// keysOf is the visitor keys a window's cells count under.
func keysOf(w Window) []uint64 {
	var out []uint64
	for _, m := range w.Minutes {
		for c := range m.Cells {
			if !slices.Contains(out, c.Visitor) {
				out = append(out, c.Visitor)
			}
		}
	}
	slices.Sort(out)
	return out
}

// TestRealtimeSessionUsers holds both stores to the reports' rule: an
// event counts under its session's user, the key the session's first
// event carried (aggregator/sessions). Keys: clients 1x, users 9x.
func TestRealtimeSessionUsers(t *testing.T) {
	for name, open := range realtimeStores() {
		t.Run(name, func(t *testing.T) {
			ctx := context.Background()
			r := open(t)
			check := func(what string, want ...uint64) {
				t.Helper()
				w, err := r.Window(ctx, 3)
				if err != nil {
					t.Fatal(err)
				}
				if got := keysOf(w); !slices.Equal(got, want) {
					t.Fatalf("%s: users %x, want %x", what, got, want)
				}
				if w.ActiveUsers(time.UTC) != int64(len(want)) {
					t.Fatalf("%s: %d active users, want %d", what, w.ActiveUsers(time.UTC), len(want))
				}
				if err := r.Forget(ctx, 3, want); err != nil {
					t.Fatal(err)
				}
			}
			// A login mid-session: the anonymous session's user, in one
			// batch or two.
			r.Record(ctx, []protocol.Event{pe(3, 91, 11, 100), pe(5, 11, 0, 100)})
			check("login mid-session, one batch", 11)
			r.Record(ctx, []protocol.Event{pe(5, 12, 0, 200)})
			r.Record(ctx, []protocol.Event{pe(3, 92, 12, 200), pe(2, 92, 12, 0)})
			check("login mid-session, then an event without a session id", 12)
			// Sessions that begin logged in on two devices: the user_id's key.
			r.Record(ctx, []protocol.Event{pe(5, 93, 13, 300), pe(4, 93, 14, 301)})
			check("two devices logged in", 93)
			// A Measurement Protocol event with the browser's client_id and
			// session_id joins a session that began logged in; a logout
			// mid-session too.
			r.Record(ctx, []protocol.Event{pe(5, 94, 15, 400)})
			r.Record(ctx, []protocol.Event{pe(4, 15, 0, 400), pe(3, 15, 0, 0)})
			check("MP joining a logged-in session", 94)
			// A new session id begins a session under its own key; a late
			// event of the earlier session counts under its own key.
			r.Record(ctx, []protocol.Event{pe(9, 16, 0, 500), pe(4, 95, 16, 600), pe(2, 16, 0, 600), pe(8, 95, 16, 500)})
			check("a new session, and a late one of the earlier", 16, 95)
			// A late event of the device's previous session, logged in,
			// counts under that session's user, in a later batch.
			r.Record(ctx, []protocol.Event{pe(9, 20, 0, 510)})
			r.Record(ctx, []protocol.Event{pe(4, 20, 0, 610)})
			r.Record(ctx, []protocol.Event{pe(8, 98, 20, 510)})
			check("a late event of the previous session", 20)
			// A late event of a session older than the one before the
			// current counts under its session's user, not the key it
			// carries.
			r.Record(ctx, []protocol.Event{pe(12, 21, 0, 520)})
			r.Record(ctx, []protocol.Event{pe(10, 21, 0, 530)})
			r.Record(ctx, []protocol.Event{pe(8, 21, 0, 540)})
			r.Record(ctx, []protocol.Event{pe(11, 99, 21, 520)})
			check("a late event of an older session", 21)
			// A late event of a session the device has not seen counts
			// under its own key, and the session's next events under it.
			r.Record(ctx, []protocol.Event{pe(8, 23, 0, 560)})
			r.Record(ctx, []protocol.Event{pe(10, 89, 23, 550), pe(9, 23, 0, 550)})
			check("a late session not seen before", 23, 89)
			// A device remembers maxPastSessions sessions before its
			// current one: a late event of an older one counts under its
			// own key.
			for i := range maxPastSessions + 2 {
				r.Record(ctx, []protocol.Event{pe(20-i, 22, 0, int64(900+i))})
			}
			r.Record(ctx, []protocol.Event{pe(19, 92, 22, 901), pe(19, 90, 22, 900)})
			check("the sessions a device remembers", 22, 90)
			// Without a session id, 30 minutes of inactivity end a session.
			r.Record(ctx, []protocol.Event{pe(29, 17, 0, 0)})
			late := pe(0, 96, 17, 0)
			late.TimeMicros = rtNow.Add(-29*time.Minute + 31*time.Minute).UnixMicro()
			r.Record(ctx, []protocol.Event{late})
			check("an event 31 minutes after the last", 17, 96)
			// A daily cookieless id is its own user.
			cookieless := at(1, 3, 18, "page_view")
			cookieless.SessionID = 700
			r.Record(ctx, []protocol.Event{cookieless})
			check("cookieless", 18)
			// After an erasure of a session's user its device begins again.
			r.Record(ctx, []protocol.Event{pe(5, 19, 0, 800)})
			if err := r.Forget(ctx, 3, []uint64{19}); err != nil {
				t.Fatal(err)
			}
			r.Record(ctx, []protocol.Event{pe(4, 97, 19, 800)})
			check("after an erasure", 97)
		})
	}
}

// TestRealtimeSessionUsersAcrossNodes: a session's batches staged on two
// nodes count one user in Redis, its first key.
func TestRealtimeSessionUsersAcrossNodes(t *testing.T) {
	now := func() time.Time { return rtNow }
	prefix := testenv.Prefix(t)
	a := NewRedisRealtime(client(t), RealtimeOptions{Prefix: prefix, Now: now})
	b := NewRedisRealtime(client(t), RealtimeOptions{Prefix: prefix, Now: now})
	ctx := context.Background()
	a.Record(ctx, []protocol.Event{pe(5, 11, 0, 100)})
	b.Record(ctx, []protocol.Event{pe(3, 91, 11, 100)})
	w, err := a.Window(ctx, 3)
	if err != nil {
		t.Fatal(err)
	}
	if got := keysOf(w); w.Memory || !slices.Equal(got, []uint64{11}) || w.ActiveUsers(time.UTC) != 1 {
		t.Fatalf("users %x (%d active, memory %v), want 11 from Redis", got, w.ActiveUsers(time.UTC), w.Memory)
	}
}
