package redis

import (
	"context"
	"maps"
	"slices"
	"strconv"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"
	"github.com/vmihailenco/msgpack/v5"

	"github.com/avila-analytics/avila/internal/testenv"
	"github.com/avila-analytics/avila/protocol"
)

var rtNow = time.Date(2026, 12, 2, 12, 0, 30, 0, time.UTC)

// at is an event of an active user (it carries engagement time).
func at(minutesAgo int, site uint32, visitor uint64, name string) protocol.Event {
	return protocol.Event{Site: site, TimeMicros: rtNow.Add(-time.Duration(minutesAgo) * time.Minute).UnixMicro(),
		Name: name, Visitor: visitor, Country: "DE", Path: "/a?x=1", EngageMs: 50}
}

// TestRealtimeActiveUsers: the window's users are its active users by
// GA4's rule (engaged session, first visit or engagement time), the rule
// reports count activeUsers by; other visitors' events still count.
func TestRealtimeActiveUsers(t *testing.T) {
	r := NewRealtime(RealtimeOptions{Now: func() time.Time { return rtNow }})
	quiet := at(0, 1, 1, "page_view")
	quiet.EngageMs = 0
	first, engaged := quiet, quiet
	first.Visitor, first.Flags = 2, protocol.FlagFirstVisit
	engaged.Visitor, engaged.Flags = 3, protocol.FlagEngaged
	later := at(1, 1, 1, "scroll") // visitor 1 engages a minute before
	r.Record(context.Background(), []protocol.Event{quiet, first, engaged, at(0, 1, 4, "click")})
	w, err := r.Window(context.Background(), 1)
	if err != nil {
		t.Fatal(err)
	}
	if events, _ := total(w); events != 4 || w.ActiveUsers(time.UTC) != 3 {
		t.Fatalf("%d events of %d active users, want 4 of 3 (visitor 1 has no active event)", events, w.ActiveUsers(time.UTC))
	}
	r.Record(context.Background(), []protocol.Event{later})
	if w, _ = r.Window(context.Background(), 1); w.ActiveUsers(time.UTC) != 4 {
		t.Fatalf("%d active users after visitor 1 engaged, want 4", w.ActiveUsers(time.UTC))
	}
	// A cell written before cells carried Active (six fields) reads as
	// not active.
	old, err := msgpack.Marshal([]any{"page_view", "DE", "", "", "/a", uint64(7)})
	if err != nil {
		t.Fatal(err)
	}
	cells, _, err := decodeCells(map[string]string{string(old): "2"})
	if err != nil || len(cells) != 1 || cells[Cell{EventName: "page_view", Country: "DE", Screen: "/a", Visitor: 7}] != 2 {
		t.Fatalf("old cell: %v %v", cells, err)
	}
}

func client(t *testing.T) goredis.UniversalClient {
	t.Helper()
	c, err := Open(context.Background(), Options{URL: testenv.RedisURL(t)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// total sums a window's events and distinct visitors from its cells.
func total(w Window) (events int64, minutes []int64) {
	for _, m := range w.Minutes {
		minutes = append(minutes, w.Now-m.Minute)
		for _, n := range m.Cells {
			events += n
		}
	}
	return events, minutes
}

func TestRealtimeKeysCarryPrefixAndTTL(t *testing.T) {
	c := client(t)
	prefix := testenv.Prefix(t)
	r := NewRedisRealtime(c, RealtimeOptions{Prefix: prefix, Now: func() time.Time { return rtNow }})
	r.Record(context.Background(), []protocol.Event{at(0, 7, 1, "page_view"), at(0, 7, 2, "page_view"), at(2, 7, 1, "click")})
	// SCAN, not KEYS: one KEYS over a shared server's keys can outlast the
	// client's command timeout.
	var keys []string
	it := c.Scan(context.Background(), 0, prefix+"*", 1000).Iterator()
	for it.Next(context.Background()) {
		keys = append(keys, it.Val())
	}
	if err := it.Err(); err != nil {
		t.Fatal(err)
	}
	minute := rtNow.Unix() / 60
	want := map[string]time.Duration{prefix + "realtime:active:{7}": activeKept} // the users' latest active events live a day
	for _, m := range []int64{minute, minute - 2} {
		want[prefix+"realtime:users:7:"+strconv.FormatInt(m, 10)] = realtimeTTL
		want[prefix+"realtime:events:7:"+strconv.FormatInt(m, 10)] = realtimeTTL
	}
	if len(keys) != len(want) {
		t.Fatalf("keys %v, want %v", keys, want)
	}
	for _, k := range keys {
		if want[k] == 0 {
			t.Fatalf("unexpected key %s (want %v)", k, want)
		}
		ttl, err := c.TTL(context.Background(), k).Result()
		if err != nil || ttl <= want[k]-5*time.Minute || ttl > want[k] {
			t.Fatalf("TTL of %s: %v %v, want in (%v, %v]", k, ttl, err, want[k]-5*time.Minute, want[k])
		}
	}
	if n, err := c.PFCount(context.Background(), prefix+"realtime:users:7:"+strconv.FormatInt(minute, 10)).Result(); err != nil || n != 2 {
		t.Fatalf("visitors this minute: %d %v, want 2", n, err)
	}
}

// TestRealtimeSharedAcrossNodes: what one node records, another reads, and
// its watchers hear of it through pub/sub.
func TestRealtimeSharedAcrossNodes(t *testing.T) {
	c := client(t)
	prefix := testenv.Prefix(t)
	now := func() time.Time { return rtNow }
	a := NewRedisRealtime(c, RealtimeOptions{Prefix: prefix, Now: now})
	b := NewRedisRealtime(client(t), RealtimeOptions{Prefix: prefix, Now: now})
	heard := make(chan uint32, 10)
	b.Watch(func(site uint32) { heard <- site })
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan struct{})
	go func() { b.Run(ctx); close(done) }()
	// Subscribing is asynchronous: record until b hears it.
	deadline := time.Now().Add(10 * time.Second)
	for got := false; !got; {
		a.Record(context.Background(), []protocol.Event{at(1, 9, 1, "page_view")})
		select {
		case site := <-heard:
			if site != 9 {
				t.Fatalf("heard site %d, want 9", site)
			}
			got = true
		case <-time.After(100 * time.Millisecond):
			if time.Now().After(deadline) {
				t.Fatal("node b never heard of node a's commit")
			}
		}
	}
	w, err := b.Window(context.Background(), 9)
	if err != nil {
		t.Fatal(err)
	}
	if events, minutes := total(w); w.Memory || events < 1 || w.ActiveUsers(time.UTC) != 1 || len(minutes) != 1 || minutes[0] != 1 {
		t.Fatalf("node b reads %+v (events %d, minutes ago %v), want site 9's events from Redis, one visitor, 1 minute ago", w, events, minutes)
	}
	cancel()
	<-done
}

// TestRealtimeWithoutRedis: the memory store, and the Redis store whose
// server is down, both answer from memory; old events are left out.
func TestRealtimeWithoutRedis(t *testing.T) {
	down, err := New(Options{URL: "redis://127.0.0.1:1/0"})
	if err != nil {
		t.Fatal(err)
	}
	defer down.Close()
	now := func() time.Time { return rtNow }
	for name, r := range map[string]realtimeStore{"none": NewRealtime(RealtimeOptions{Now: now}), "down": NewRedisRealtime(down, RealtimeOptions{Now: now})} {
		t.Run(name, func(t *testing.T) {
			heard := 0
			r.Watch(func(uint32) { heard++ })
			r.Record(context.Background(), []protocol.Event{at(0, 1, 1, "page_view"), at(29, 1, 2, "page_view"), at(30, 1, 3, "page_view"), at(0, 2, 4, "page_view")})
			w, err := r.Window(context.Background(), 1)
			if err != nil {
				t.Fatal(err)
			}
			events, minutes := total(w)
			if !w.Memory || events != 2 || w.ActiveUsers(time.UTC) != 2 || len(minutes) != 2 || heard != 2 {
				t.Fatalf("window %+v: events %d minutes ago %v heard %d; want 2 events of 2 visitors at 0 and 29 minutes ago, both sites announced", w, events, minutes, heard)
			}
			for c := range w.Minutes[0].Cells {
				if c.Screen != "/a" || c.Country != "DE" {
					t.Fatalf("cell %+v: want screen /a (the path without its query) and country DE", c)
				}
			}
		})
	}
}

func TestRealtimeMemoryBounded(t *testing.T) {
	r := NewRealtime(RealtimeOptions{Now: func() time.Time { return rtNow }, MaxCells: 3})
	var events []protocol.Event
	for v := range uint64(10) {
		events = append(events, at(0, 1, v, "page_view"))
	}
	r.Record(context.Background(), events)
	w, _ := r.Window(context.Background(), 1)
	if len(w.Minutes) != 1 || len(w.Minutes[0].Cells) != 3 {
		t.Fatalf("kept %+v, want 3 cells", w)
	}
	// A minute later the slot of 30 minutes ago is reused, not grown.
	later := rtNow.Add(30 * time.Minute)
	r.opts.Now = func() time.Time { return later }
	r.Record(context.Background(), []protocol.Event{{Site: 1, TimeMicros: later.UnixMicro(), Name: "x", Visitor: 99}})
	w, _ = r.Window(context.Background(), 1)
	if len(w.Minutes) != 1 || len(w.Minutes[0].Cells) != 1 || w.Minutes[0].Minute != later.Unix()/60 {
		t.Fatalf("after 30 minutes: %+v", w)
	}
	// The users' latest active events are bounded too (MaxCells × the
	// window's minutes per site), and go after activeKept.
	events = events[:0]
	for v := range uint64(200) {
		e := at(0, 1, 1000+v, "page_view")
		e.TimeMicros = later.UnixMicro()
		events = append(events, e)
	}
	r.Record(context.Background(), events)
	if n := len(r.sites[1].active); n != 3*RealtimeWindow {
		t.Fatalf("%d users' latest active events kept, want %d", n, 3*RealtimeWindow)
	}
	dayLater := later.Add(activeKept + time.Minute)
	r.opts.Now = func() time.Time { return dayLater }
	r.Record(context.Background(), []protocol.Event{{Site: 1, TimeMicros: dayLater.UnixMicro(), Name: "x", Visitor: 5, EngageMs: 1}})
	if n := len(r.sites[1].active); n != 1 {
		t.Fatalf("%d users' latest active events kept a day later, want 1", n)
	}
}

// benchEvents is a 500-event batch (the agent's usual segment size) from 200
// persistent visitors (one session each) over 20 pages and 5 countries in
// the current minute.
func benchEvents(now time.Time) []protocol.Event {
	countries := []string{"US", "DE", "FR", "JP", "BR"}
	events := make([]protocol.Event, 500)
	for i := range events {
		events[i] = protocol.Event{Site: 1, TimeMicros: now.UnixMicro(), Name: "page_view", Visitor: uint64(i % 200),
			Flags: protocol.FlagPersistent, SessionID: now.Unix() - int64(i%200), Country: countries[i%5], City: "City", Device: "desktop", Path: "/p" + strconv.Itoa(i%20), EngageMs: int64(i % 2)}
	}
	return events
}

func BenchmarkRealtimeRecord(b *testing.B) {
	for _, withRedis := range []bool{false, true} {
		b.Run(map[bool]string{false: "memory", true: "redis"}[withRedis], func(b *testing.B) {
			var r realtimeStore = NewRealtime(RealtimeOptions{})
			if withRedis {
				c, err := Open(context.Background(), Options{URL: testenv.RedisURL(b)})
				if err != nil {
					b.Fatal(err)
				}
				defer c.Close()
				r = NewRedisRealtime(c, RealtimeOptions{Prefix: testenv.Prefix(b)})
			}
			events := benchEvents(time.Now())
			b.ReportAllocs()
			for b.Loop() {
				r.Record(context.Background(), events)
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(events)), "ns/event")
		})
	}
}

func BenchmarkRealtimeWindow(b *testing.B) {
	for _, tc := range []struct {
		name      string
		withRedis bool
		batches   int // of 500 events from 200 visitors; each batch's visitors are new
	}{{"memory", false, 1}, {"redis", true, 1}, {"memory-50k-cells", false, 250}, {"redis-50k-cells", true, 250}} {
		b.Run(tc.name, func(b *testing.B) {
			var r realtimeStore = NewRealtime(RealtimeOptions{})
			if tc.withRedis {
				c, err := Open(context.Background(), Options{URL: testenv.RedisURL(b)})
				if err != nil {
					b.Fatal(err)
				}
				defer c.Close()
				r = NewRedisRealtime(c, RealtimeOptions{Prefix: testenv.Prefix(b)})
			}
			events := benchEvents(time.Now())
			for i := range tc.batches {
				for j := range events {
					events[j].Visitor = uint64(i*200 + j%200)
				}
				r.Record(context.Background(), events)
			}
			b.ReportAllocs()
			for b.Loop() {
				// A read and its active users, which every reader counts.
				w, err := r.Window(context.Background(), 1)
				if err != nil {
					b.Fatal(err)
				}
				if w.ActiveUsers(time.UTC) == 0 {
					b.Fatal("no active users")
				}
			}
		})
	}
}

// realtimeStore is what the node uses of either realtime store.
type realtimeStore interface {
	Record(ctx context.Context, events []protocol.Event)
	Window(ctx context.Context, site uint32) (Window, error)
	Watch(fn func(site uint32))
	Forget(ctx context.Context, site uint32, visitors []uint64) error
	Run(ctx context.Context)
	RedisErrors() uint64
	DroppedCells() uint64
}

var (
	_ realtimeStore = (*Realtime)(nil)
	_ realtimeStore = (*RedisRealtime)(nil)
)

// realtimeStores opens each realtime store at rtNow: Redis (a real
// server, under the test's prefix) and memory.
func realtimeStores() map[string]func(t *testing.T) realtimeStore {
	out := map[string]func(t *testing.T) realtimeStore{}
	for name, nodes := range realtimeNodes(func() time.Time { return rtNow }) {
		out[name] = func(t *testing.T) realtimeStore { return nodes(t)() }
	}
	return out
}

// realtimeNodes opens each realtime store with clock now: every call of
// the function it returns starts a node (another one, or the same after a
// restart); Redis nodes share the server's keys under the test's prefix,
// memory nodes share nothing.
func realtimeNodes(now func() time.Time) map[string]func(t *testing.T) func() realtimeStore {
	return map[string]func(t *testing.T) func() realtimeStore{
		"redis": func(t *testing.T) func() realtimeStore {
			c, prefix := client(t), testenv.Prefix(t)
			return func() realtimeStore { return NewRedisRealtime(c, RealtimeOptions{Prefix: prefix, Now: now}) }
		},
		"memory": func(*testing.T) func() realtimeStore {
			return func() realtimeStore { return NewRealtime(RealtimeOptions{Now: now}) }
		},
	}
}

// TestRealtimeContract holds both realtime stores, Redis (a real server)
// and memory, to one contract: what Record counts, Window returns, by
// minute, event and active visitor; the watchers hear of the site; Forget
// takes a visitor's cells out and leaves the others'.
func TestRealtimeContract(t *testing.T) {
	for name, open := range realtimeStores() {
		t.Run(name, func(t *testing.T) {
			ctx := context.Background()
			r := open(t)
			heard := make(chan uint32, 4)
			r.Watch(func(site uint32) { heard <- site })
			quiet := at(0, 1, 8, "page_view") // no engagement: not an active user
			quiet.EngageMs = 0
			quietLater := at(3, 1, 8, "click")
			quietLater.EngageMs = 0
			r.Record(ctx, []protocol.Event{at(0, 1, 7, "page_view"), quiet, quietLater, at(0, 2, 9, "page_view")})
			select {
			case site := <-heard:
				if site != 1 && site != 2 {
					t.Fatalf("watchers told of site %d", site)
				}
			case <-time.After(5 * time.Second):
				t.Fatal("watchers not told of the batch")
			}
			w, err := r.Window(ctx, 1)
			if err != nil {
				t.Fatal(err)
			}
			if events, _ := total(w); events != 3 || len(w.Minutes) != 2 || w.ActiveUsers(time.UTC) != 1 {
				t.Fatalf("site 1: %d events in %d minutes, %d active users; want 3 in 2, 1", events, len(w.Minutes), w.ActiveUsers(time.UTC))
			}
			if err := r.Forget(ctx, 1, []uint64{8}); err != nil {
				t.Fatal(err)
			}
			if w, err = r.Window(ctx, 1); err != nil {
				t.Fatal(err)
			}
			if events, _ := total(w); events != 1 || w.ActiveUsers(time.UTC) != 1 {
				t.Fatalf("site 1 after forgetting visitor 8: %d events, %d active users; want 1, 1", events, w.ActiveUsers(time.UTC))
			}
			if w, err = r.Window(ctx, 2); err != nil {
				t.Fatal(err)
			}
			if events, _ := total(w); events != 1 {
				t.Fatalf("site 2: %d events, want 1", events)
			}
			if r.RedisErrors() != 0 {
				t.Fatalf("%d Redis errors", r.RedisErrors())
			}
		})
	}
}

// TestRealtimeContractActiveDay holds both stores to GA4's rule that a
// user is active per calendar day: a visitor active earlier in the
// property's day, more than 30 minutes ago, whose events in the window
// are not active, is an active user; one active only the day before is
// not. Redis keeps what it knows across a restart and for every node, and
// forgets an erased visitor's; memory starts empty after a restart.
func TestRealtimeContractActiveDay(t *testing.T) {
	honolulu := time.FixedZone("UTC-10", -10*3600) // rtNow is 02:00 there: 09:00 UTC was the day before
	for name, nodes := range realtimeNodes(func() time.Time { return clockNow }) {
		t.Run(name, func(t *testing.T) {
			ctx := context.Background()
			start := nodes(t)
			r := start()
			quiet := func(visitor uint64) protocol.Event {
				e := at(0, 4, visitor, "page_view")
				e.EngageMs = 0
				return e
			}
			// Visitor 31 was active yesterday, 30 three hours ago; 33 is
			// active now, 32 never.
			clockNow = rtNow.Add(-20 * time.Hour)
			r.Record(ctx, []protocol.Event{at(20*60, 4, 31, "page_view")})
			clockNow = rtNow.Add(-3 * time.Hour)
			r.Record(ctx, []protocol.Event{at(3*60, 4, 30, "page_view")})
			clockNow = rtNow
			r.Record(ctx, []protocol.Event{quiet(30), quiet(31), quiet(32), at(0, 4, 33, "click")})
			check := func(r realtimeStore, what string, loc *time.Location, want ...uint64) {
				t.Helper()
				w, err := r.Window(ctx, 4)
				if err != nil {
					t.Fatal(err)
				}
				got := slices.Sorted(maps.Keys(w.ActiveVisitors(loc)))
				if !slices.Equal(got, want) || w.ActiveUsers(loc) != int64(len(want)) {
					t.Fatalf("%s: active users %v (%d), want %v", what, got, w.ActiveUsers(loc), want)
				}
			}
			check(r, "in UTC", time.UTC, 30, 33)
			check(r, "in UTC-10, where three hours ago was the day before", honolulu, 33)
			// A restart, or another node.
			r2 := start()
			r2.Record(ctx, []protocol.Event{quiet(30)})
			if name == "redis" {
				check(r2, "another node", time.UTC, 30, 33)
				if err := r2.Forget(ctx, 4, []uint64{30}); err != nil {
					t.Fatal(err)
				}
				r2.Record(ctx, []protocol.Event{quiet(30)})
				check(r2, "after visitor 30 was erased", time.UTC, 33)
			} else {
				check(r2, "memory after a restart", time.UTC)
			}
		})
	}
}

// clockNow is TestRealtimeContractActiveDay's clock.
var clockNow = rtNow

// TestRealtimeRereadsChangedMinutes: a window read caches minutes; a later
// write to one of them, from any node, shows in the next read.
func TestRealtimeRereadsChangedMinutes(t *testing.T) {
	c := client(t)
	prefix := testenv.Prefix(t)
	now := func() time.Time { return rtNow }
	for name, mk := range map[string]func() (reader, writer realtimeStore){
		"redis": func() (realtimeStore, realtimeStore) {
			return NewRedisRealtime(c, RealtimeOptions{Prefix: prefix, Now: now}), NewRedisRealtime(c, RealtimeOptions{Prefix: prefix, Now: now})
		},
		"memory": func() (realtimeStore, realtimeStore) { r := NewRealtime(RealtimeOptions{Now: now}); return r, r },
	} {
		t.Run(name, func(t *testing.T) {
			reader, writer := mk()
			writer.Record(context.Background(), []protocol.Event{at(0, 1, 1, "page_view"), at(5, 1, 2, "page_view")})
			for round, want := range []int64{2, 3, 4} {
				if round > 0 {
					writer.Record(context.Background(), []protocol.Event{at(5*(round-1), 1, uint64(10+round), "click")})
				}
				w, err := reader.Window(context.Background(), 1)
				if err != nil {
					t.Fatal(err)
				}
				if events, _ := total(w); events != want || w.ActiveUsers(time.UTC) != want {
					t.Fatalf("round %d: %d events of %d visitors, want %d of %d", round, events, w.ActiveUsers(time.UTC), want, want)
				}
			}
		})
	}
}
