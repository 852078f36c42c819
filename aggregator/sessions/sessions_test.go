package sessions

import (
	"context"
	"testing"
	"time"

	"github.com/avila-analytics/avila/protocol"
	"github.com/google/go-cmp/cmp"
)

var t0 = time.Date(2026, 3, 5, 23, 40, 0, 0, time.UTC)

func ev(visitor uint64, at time.Duration, sid int64) protocol.Event {
	return protocol.Event{Site: 1, Visitor: visitor, TimeMicros: t0.Add(at).UnixMicro(), SessionID: sid, Name: "page_view"}
}

// ids returns the session id of each event.
func ids(as Assignment) []int64 {
	out := make([]int64, len(as.Of))
	for i, s := range as.Of {
		out[i] = as.Sessions[s].ID
	}
	return out
}

func TestAssignInactivity(t *testing.T) {
	sec := func(d time.Duration) int64 { return t0.Add(d).Unix() }
	f := func(name string, events []protocol.Event, want []int64) {
		t.Helper()
		as := Assign(events, nil)
		if diff := cmp.Diff(want, ids(as)); diff != "" {
			t.Errorf("%s: session ids (-want +got):\n%s", name, diff)
		}
		if again := Assign(events, nil); !cmp.Equal(ids(again), ids(as)) {
			t.Errorf("%s: not deterministic", name)
		}
	}
	f("29 minutes continue", []protocol.Event{ev(7, 0, 0), ev(7, 29*time.Minute, 0)}, []int64{sec(0), sec(0)})
	f("exactly 30 minutes continue", []protocol.Event{ev(7, 0, 0), ev(7, 30*time.Minute, 0)}, []int64{sec(0), sec(0)})
	f("31 minutes split", []protocol.Event{ev(7, 0, 0), ev(7, 31*time.Minute, 0)}, []int64{sec(0), sec(31 * time.Minute)})
	// t0 is 23:40 UTC: the session runs on past midnight, as in GA4.
	f("midnight does not split", []protocol.Event{ev(7, 0, 0), ev(7, 25*time.Minute, 0), ev(7, 50*time.Minute, 0)},
		[]int64{sec(0), sec(0), sec(0)})
	f("chained gaps under 30 minutes", []protocol.Event{ev(7, 0, 0), ev(7, 20*time.Minute, 0), ev(7, 40*time.Minute, 0), ev(7, 71*time.Minute, 0)},
		[]int64{sec(0), sec(0), sec(0), sec(71 * time.Minute)})
	f("out of order in a batch", []protocol.Event{ev(7, 31*time.Minute, 0), ev(7, 0, 0)}, []int64{sec(31 * time.Minute), sec(0)})
	f("visitors apart", []protocol.Event{ev(7, 0, 0), ev(8, time.Minute, 0)}, []int64{sec(0), sec(time.Minute)})
	f("sid keeps a session across gaps", []protocol.Event{ev(7, 0, 555), ev(7, 2*time.Hour, 555), ev(7, 2*time.Hour+time.Minute, 556)},
		[]int64{555, 555, 556})
}

func TestAssignContinuesCommitted(t *testing.T) {
	k := Key{1, 7}
	committed := Session{ID: 100, Start: t0.Add(-time.Hour).UnixMicro(), Last: t0.Add(-10 * time.Minute).UnixMicro(), FirstSource: 42}
	as := Assign([]protocol.Event{ev(7, 0, 0), ev(7, 45*time.Minute, 0)}, map[Key][]Session{k: {committed}})
	if len(as.Sessions) != 2 {
		t.Fatalf("sessions %+v, want the committed one continued and a new one", as.Sessions)
	}
	old, nw := as.Sessions[as.Of[0]], as.Sessions[as.Of[1]]
	if !old.Existing || old.ID != 100 || old.Start != committed.Start || old.Last != t0.UnixMicro() {
		t.Errorf("continued session %+v", old)
	}
	if nw.Existing || !nw.Prior || nw.FirstSource != 42 || nw.ID != t0.Add(45*time.Minute).Unix() {
		t.Errorf("new session %+v: want a returning visitor's, first source 42", nw)
	}
	// A sid already committed joins its row; a committed session nobody
	// joins is not in the assignment.
	as = Assign([]protocol.Event{ev(7, 3*time.Hour, 100)}, map[Key][]Session{k: {committed, {ID: 99, Start: 1, Last: 2}}})
	if len(as.Sessions) != 1 || !as.Sessions[0].Existing || as.Sessions[0].ID != 100 {
		t.Errorf("sid 100: %+v", as.Sessions)
	}
}

func TestCacheCovers(t *testing.T) {
	latest := Session{ID: 100, Start: t0.UnixMicro(), Last: t0.Add(time.Minute).UnixMicro()}
	if !CacheCovers(latest, 0, t0.Add(-29*time.Minute).UnixMicro()) || CacheCovers(latest, 0, t0.Add(-31*time.Minute).UnixMicro()) {
		t.Error("inactivity: an event older than the latest session's reach needs the database")
	}
	if !CacheCovers(latest, 100, 0) || !CacheCovers(latest, 101, 0) || CacheCovers(latest, 99, 0) {
		t.Error("sid: an earlier sid needs the database")
	}
}

func TestMemoryExpiresAndKeepsLater(t *testing.T) {
	now := t0
	m := NewMemory(2, func() time.Time { return now })
	ctx := context.Background()
	k := Key{1, 7}
	_ = m.Put(ctx, map[Key]Session{k: {ID: 2, Start: 20}})
	_ = m.Put(ctx, map[Key]Session{k: {ID: 1, Start: 10}})
	got, _ := m.Get(ctx, []Key{k})
	if got[k].ID != 2 {
		t.Errorf("got %+v, want the later session kept", got[k])
	}
	now = now.Add(Timeout)
	if got, _ := m.Get(ctx, []Key{k}); len(got) != 0 {
		t.Errorf("after the timeout: %+v", got)
	}
	for v := range uint64(5) { // more than max: bounded
		_ = m.Put(ctx, map[Key]Session{{1, v}: {ID: 1}})
	}
	if len(m.m) > 2 {
		t.Errorf("%d entries, max 2", len(m.m))
	}
}

func TestAssignFirstSourceWithinBatch(t *testing.T) {
	as := Assign([]protocol.Event{ev(7, 0, 0), ev(7, time.Hour, 0), ev(7, 2*time.Hour, 0)}, nil)
	if len(as.Sessions) != 3 {
		t.Fatalf("%d sessions, want 3", len(as.Sessions))
	}
	first := as.Of[0]
	if s := as.Sessions[first]; s.Prior || s.FirstSourceOf != -1 {
		t.Errorf("first session %+v: no prior, source its own", s)
	}
	for _, i := range []int{1, 2} {
		if s := as.Sessions[as.Of[i]]; !s.Prior || s.FirstSourceOf != first {
			t.Errorf("session of event %d: %+v, want its first source from session %d", i, s, first)
		}
	}
	// Sessions begun more than Lookback before are neither continued nor
	// a reason to call the visitor returning.
	old := Session{ID: 1, Start: t0.Add(-25 * time.Hour).UnixMicro(), Last: t0.Add(-time.Minute).UnixMicro(), FirstSource: 9}
	as = Assign([]protocol.Event{ev(7, 0, 0)}, map[Key][]Session{{1, 7}: {old}})
	if s := as.Sessions[0]; s.Existing || s.Prior {
		t.Errorf("after a session older than Lookback: %+v", s)
	}
}

// A login in the middle of a session: the events after it carry the
// user_id's key as visitor and the device's client key; they join the
// session begun under the client key, in the same derivation or a later
// one, and a Measurement Protocol event with the client id and session id
// joins it too.
func TestAssignAcrossLogin(t *testing.T) {
	const device, user = 7, 99
	login := func(at time.Duration) protocol.Event {
		e := ev(user, at, 555)
		e.Client = device
		return e
	}
	mp := ev(device, 20*time.Minute, 555)
	mp.Name = "purchase"
	events := []protocol.Event{ev(device, 0, 555), login(2 * time.Minute), login(3 * time.Minute), mp}
	as := Assign(events, nil)
	if len(as.Sessions) != 1 || as.Sessions[0].Visitor != device || len(as.Sessions[0].Events) != 4 {
		t.Fatalf("one derivation: %+v, want one session of the device's key holding all 4 events", as.Sessions)
	}
	// Later: the session is stored under the device's key.
	stored := Session{ID: 555, Start: t0.UnixMicro(), Last: t0.Add(time.Minute).UnixMicro()}
	as = Assign([]protocol.Event{login(5 * time.Minute)}, map[Key][]Session{{1, device}: {stored}})
	if len(as.Sessions) != 1 || !as.Sessions[0].Existing || as.Sessions[0].Visitor != device {
		t.Fatalf("later derivation: %+v, want the stored session of the device", as.Sessions)
	}
	// A session begun signed in stays the user's, whichever device key
	// later events carry.
	as = Assign([]protocol.Event{login(0), login(time.Minute)}, nil)
	if len(as.Sessions) != 1 || as.Sessions[0].Visitor != user {
		t.Fatalf("signed in from the start: %+v, want one session of the user's key", as.Sessions)
	}
}

// Visitor id 0 is an id like any other: its stored session is continued.
func TestAssignVisitorZero(t *testing.T) {
	stored := Session{ID: 5, Start: t0.UnixMicro(), Last: t0.UnixMicro()}
	as := Assign([]protocol.Event{ev(0, time.Minute, 0)}, map[Key][]Session{{1, 0}: {stored}})
	if len(as.Sessions) != 1 || !as.Sessions[0].Existing || as.Sessions[0].ID != 5 {
		t.Fatalf("%+v, want the stored session of visitor 0 continued", as.Sessions)
	}
}

// Each session's Events are its events in time order; the lists share one
// array, yet events appended to one (a caller's derived events, more than
// the room kept) never reach another's.
func TestAssignEventLists(t *testing.T) {
	events := []protocol.Event{ev(7, 2*time.Minute, 0), ev(8, time.Minute, 0), ev(7, 0, 0), ev(9, 0, 0), ev(8, 0, 0)}
	known := map[Key][]Session{{Site: 1, Visitor: 9}: {{ID: 5, Start: t0.Add(-time.Minute).UnixMicro(), Last: t0.UnixMicro()}}}
	as := Assign(events, known)
	lists := func() map[uint64][]int {
		out := map[uint64][]int{}
		for _, s := range as.Sessions {
			out[s.Visitor] = s.Events
		}
		return out
	}
	want := map[uint64][]int{7: {2, 0}, 8: {4, 1}, 9: {3}}
	if diff := cmp.Diff(want, lists()); diff != "" {
		t.Fatalf("events (-want +got):\n%s", diff)
	}
	for i := range as.Sessions {
		if s := &as.Sessions[i]; s.Visitor == 7 || s.Visitor == 9 {
			s.Events = append(s.Events, 100, 101, 102)
		}
	}
	want[7], want[9] = []int{2, 0, 100, 101, 102}, []int{3, 100, 101, 102}
	if diff := cmp.Diff(want, lists()); diff != "" {
		t.Fatalf("events after appending to two sessions (-want +got):\n%s", diff)
	}
}

// TestMemoryLatestAgreesWithGet: Latest finds what Get finds, expired
// and unknown visitors alike.
func TestMemoryLatestAgreesWithGet(t *testing.T) {
	now := time.Unix(1_750_000_000, 0)
	m := NewMemory(0, func() time.Time { return now })
	ctx := context.Background()
	_ = m.Put(ctx, map[Key]Session{{Site: 1, Visitor: 1}: {ID: 10, Start: 1, Last: 2, FirstSource: 5}, {Site: 1, Visitor: 2}: {ID: 20}, {Site: 2, Visitor: 3}: {ID: 30}})
	now = now.Add(Timeout / 2)
	_ = m.Put(ctx, map[Key]Session{{Site: 1, Visitor: 4}: {ID: 40}})
	now = now.Add(Timeout / 2) // the first three expire
	_ = m.Put(ctx, map[Key]Session{{Site: 1, Visitor: 1}: {ID: 11, Start: 3, Last: 4}})
	visitors := []uint64{1, 2, 3, 4, 5}
	keys := make([]Key, len(visitors))
	for i, v := range visitors {
		keys[i] = Key{Site: 1, Visitor: v}
	}
	want, _ := m.Get(ctx, keys)
	got, found := make([]Session, len(visitors)), make([]bool, len(visitors))
	for i := range got {
		got[i], found[i] = Session{ID: 99}, true // left by an earlier call
	}
	m.Latest(1, visitors, got, found)
	for i, k := range keys {
		w, ok := want[k]
		if found[i] != ok || got[i] != w {
			t.Errorf("visitor %d: Latest = %+v, %v; Get = %+v, %v", k.Visitor, got[i], found[i], w, ok)
		}
	}
}
