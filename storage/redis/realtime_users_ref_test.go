package redis

import (
	"maps"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/avila-analytics/avila/protocol"
)

// refSessionUsers is sessionUsers as first written: every probe listed,
// sorted by time, and looked up in the site's devices one by one.
func refSessionUsers(r *Realtime, events []protocol.Event) []uint64 {
	now := unixMinute(r.opts.Now())
	users, ps := probes(events, now)
	if len(ps) == 0 {
		return users
	}
	sortByTime(ps)
	r.devMu.Lock()
	defer r.devMu.Unlock()
	if r.devices == nil {
		r.devices = map[uint32]map[uint64]deviceSession{}
	}
	limit := r.opts.MaxCells * RealtimeWindow
	for _, p := range ps {
		e := &events[p.i]
		devs := r.siteDevices(e.Site, now)
		cur, ok := devs[p.device]
		user, write := join(&cur, ok, p.sid, e.Visitor, p.at)
		users[p.i] = user
		if write && (ok || len(devs) < limit) {
			cur.seen = now
			devs[p.device] = cur
		}
	}
	return users
}

// checkSessionUsers records batches with sessionUsers in one store and
// refSessionUsers in another, and fails unless each batch's users and
// the devices' sessions after it are the same.
func checkSessionUsers(t *testing.T, maxCells int, clock *time.Time, batches func(yield func([]protocol.Event) bool)) {
	t.Helper()
	now := func() time.Time { return *clock }
	got := NewRealtime(RealtimeOptions{Now: now, MaxCells: maxCells})
	want := NewRealtime(RealtimeOptions{Now: now, MaxCells: maxCells})
	n := 0
	for evs := range batches {
		gu, wu := got.sessionUsers(evs), refSessionUsers(want, evs)
		if !slices.Equal(gu, wu) {
			for i := range gu {
				if gu[i] != wu[i] {
					t.Fatalf("batch %d: event %d (%+v) counts under %x, want %x", n, i, evs[i], gu[i], wu[i])
				}
			}
			t.Fatalf("batch %d: %d users, want %d", n, len(gu), len(wu))
		}
		if !maps.EqualFunc(got.devices, want.devices, maps.Equal) || !maps.Equal(got.devPruned, want.devPruned) {
			t.Fatalf("batch %d: device sessions differ from the reference's", n)
		}
		n++
	}
	if n == 0 {
		t.Fatal("no batches")
	}
}

// sessionUsers tells the users the reference does over the bench's
// traffic, its visitors persistent.
func TestSessionUsersMatchReferenceTraffic(t *testing.T) {
	first := time.Date(2026, 12, 6, 12, 0, 0, 0, time.UTC)
	clock := first.Add(50 * time.Second)
	checkSessionUsers(t, DefaultMaxCells, &clock, func(yield func([]protocol.Event) bool) {
		for _, evs := range trafficBatches(t, first, 12) {
			for i := range evs {
				if i%7 != 0 { // a few cookieless ones among them
					evs[i].Flags |= protocol.FlagPersistent
				}
			}
			if !yield(evs) {
				return
			}
		}
	})
}

// sessionUsers tells the users the reference does over events of a few
// sites, devices, session ids and keys, in and out of time order, with
// the clock moving on and a bound on devices that fills.
func TestSessionUsersMatchReferenceRandom(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	clock := rtNow
	for _, maxCells := range []int{1, 3, 1000} { // 30, 90, 30,000 devices a site
		checkSessionUsers(t, maxCells, &clock, func(yield func([]protocol.Event) bool) {
			for range 300 {
				clock = clock.Add(time.Duration(rng.IntN(90)) * time.Second)
				evs := make([]protocol.Event, rng.IntN(300))
				at := clock.Add(-time.Duration(rng.IntN(40)) * time.Minute)
				sorted := rng.IntN(3) > 0
				for i := range evs {
					if sorted {
						at = at.Add(time.Duration(rng.IntN(20)) * time.Second)
					} else {
						at = clock.Add(-time.Duration(rng.IntN(40*60)) * time.Second)
					}
					e := protocol.Event{Site: uint32(1 + rng.IntN(3)), Visitor: uint64(1 + rng.IntN(120)),
						TimeMicros: at.UnixMicro()}
					if rng.IntN(10) > 0 {
						e.Flags |= protocol.FlagPersistent
					}
					if rng.IntN(4) == 0 {
						e.Client = uint64(1000 + rng.IntN(60))
					}
					if rng.IntN(3) > 0 {
						e.SessionID = int64(1 + rng.IntN(12))
					}
					if i > 0 && rng.IntN(3) > 0 { // runs of one device's events
						p := evs[i-1]
						e.Site, e.Visitor, e.Client, e.Flags = p.Site, p.Visitor, p.Client, p.Flags
						if rng.IntN(2) == 0 {
							e.SessionID = p.SessionID
						}
					}
					evs[i] = e
				}
				if !yield(evs) {
					return
				}
			}
		})
	}
}

// An event is at or after windowFrom exactly when minuteOf counts it in
// the window.
func TestWindowFromMatchesMinuteOf(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 8))
	for _, now := range []int64{0, 1, RealtimeWindow - 2, RealtimeWindow - 1, RealtimeWindow, 29_000_000, 29_000_017} {
		from := (now - RealtimeWindow + 1) * 60_000_000
		for _, tm := range []int64{-1, 0, 1, from - 1, from, from + 1, now * 60_000_000, (now+1)*60_000_000 - 1,
			(now + 5) * 60_000_000, rng.Int64N(max(1, (now+2)*60_000_000)), -rng.Int64N(1 << 40)} {
			e := protocol.Event{TimeMicros: tm}
			if _, ok := minuteOf(&e, now); (tm >= windowFrom(now)) != ok {
				t.Fatalf("now %d, time %d: at or after windowFrom %v, minuteOf says %v", now, tm, !ok, ok)
			}
		}
	}
}
