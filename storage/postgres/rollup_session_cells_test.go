package postgres

import (
	"math/rand/v2"
	"reflect"
	"slices"
	"testing"
	"time"
)

// TestSessionRollupsOfEqualsAdd: sessionRollupsOf (each session's cells
// found once, its day by the hour cache, cells remembered from the
// session before) makes the cells and user-days that sessionActive and
// add of each change's values after and before make, over sessions of
// two local days on both sides of midnight in a zone with an offset,
// sharing some of their dimensions with the session before and not
// others, sessions changed before, and visitors active or not on their
// days.
func TestSessionRollupsOfEqualsAdd(t *testing.T) {
	loc, err := time.LoadLocation("Asia/Kathmandu")
	if err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(11, 12))
	start := time.Date(2026, 12, 6, 18, 0, 0, 0, time.UTC) // 23:45 local
	state := func(visitor int64, ts time.Time) sessionState {
		dims := make([]int32, len(SessionRollupKinds))
		for i := range dims {
			dims[i] = 1 + rng.Int32N(2)
			if rng.IntN(3) == 0 {
				dims[i] = 1 + rng.Int32N(40)
			}
		}
		return sessionState{site: 3, visitor: visitor, ts: ts, last: ts.Add(time.Duration(rng.IntN(600)) * time.Second),
			events: 1 + rng.Int32N(20), pageViews: rng.Int32N(4), keyEvents: rng.Int32N(2), engage: rng.Int64N(20_000),
			flags: int16(rng.IntN(4)), dims: dims}
	}
	var changes SessionChanges
	var rows []EventRow
	for i := range 3000 {
		visitor := 1 + rng.Int64N(500)
		ts := start.Add(time.Duration(i) * 700 * time.Millisecond)
		c := sessionChange{id: int64(i), now: state(visitor, ts)}
		if rng.IntN(3) == 0 {
			before := c.now
			before.events, before.pageViews, before.engage = before.events/2, 0, before.engage/3
			if rng.IntN(4) == 0 {
				before.ts = before.ts.Add(-time.Duration(rng.IntN(7200)) * time.Second) // began earlier
			}
			c.before = &before
		}
		changes = append(changes, c)
		for j := range 1 + rng.IntN(3) {
			rows = append(rows, EventRow{Site: 3, Visitor: visitor, Session: int64(i), TS: ts.Add(time.Duration(j) * time.Minute)})
		}
	}
	days := func() userDays {
		u := make(userDays)
		hours := &hourCache{loc: loc}
		for i := range rows {
			day, _ := hours.of(rows[i].TS)
			k := userDay{rows[i].Visitor, day}
			if u[k] == nil {
				u[k] = &userDayState{now: rows[i].Visitor%3 == 0, before: rows[i].Visitor%5 == 0}
			}
		}
		return u
	}
	clone := func(cs SessionChanges) SessionChanges {
		out := make(SessionChanges, len(cs))
		for i, c := range cs {
			out[i] = c
			if c.before != nil {
				b := *c.before
				out[i].before = &b
			}
		}
		return out
	}
	gotChanges, wantChanges := clone(changes), clone(changes)
	gotDays, wantDays := days(), days()
	got := make(sessionRollupAgg)
	sessionRollupsOf(got, gotChanges, rows, gotDays, &hourCache{loc: loc})

	// What sessionRollupsOf did before: the days of each session's
	// events, then sessionActive and add of each change.
	want := make(sessionRollupAgg)
	hours := &hourCache{loc: loc}
	eventDays := map[[2]int64][]int32{}
	for i := range rows {
		k := [2]int64{rows[i].Visitor, rows[i].Session}
		day, _ := hours.of(rows[i].TS)
		if !slices.Contains(eventDays[k], day) {
			eventDays[k] = append(eventDays[k], day)
		}
	}
	var cells [sessionCellsRoom]rollupKey
	for i := range wantChanges {
		c := &wantChanges[i]
		c.now.dayActive = wantDays.sessionActive(c.now.visitor, eventDays[[2]int64{c.now.visitor, c.id}], c.now.appendCells(cells[:0], loc))
		want.add(&c.now, loc, 1)
		if c.before != nil {
			want.add(c.before, loc, -1)
		}
	}
	if len(got) != len(want) {
		t.Fatalf("%d cells, want %d", len(got), len(want))
	}
	dayCount := map[int32]bool{}
	for k, w := range want {
		dayCount[k.day] = true
		if g := got[k]; g == nil || !reflect.DeepEqual(*g, *w) {
			t.Fatalf("cell %+v: %+v, want %+v", k, g, w)
		}
	}
	if len(dayCount) < 2 {
		t.Fatalf("the sessions began on %d local days, want 2 or more", len(dayCount))
	}
	if !reflect.DeepEqual(gotChanges, wantChanges) {
		t.Fatal("the changes' dayActive differ")
	}
	if !reflect.DeepEqual(gotDays, wantDays) {
		t.Fatal("the user-days' session cells differ")
	}
}
