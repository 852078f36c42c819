package postgres

import (
	"context"
	"reflect"
	"testing"
	"time"
)

// TestUpsertSessionsScratchLeavesNothingOfTheLast: a derivation's
// UpsertSessions through a CellScratch that held the changes of more
// sessions (an earlier chunk's, with states before) returns the changes
// new arrays hold: values after and before, dims ids, and no state before
// for a session without one.
func TestUpsertSessionsScratchLeavesNothingOfTheLast(t *testing.T) {
	ctx := context.Background()
	day := time.Now().UTC().Truncate(24 * time.Hour).Add(-24 * time.Hour)
	rowsOf := func(site int32, from, n int, at time.Time) []SessionRow {
		rows := make([]SessionRow, n)
		for i := range rows {
			v := int64(from + i)
			first := [numDimKinds]int32{}
			first[DimHost-1], first[DimReferrer-1] = int32(1+v%3), int32(v%5)
			rows[i] = SessionRow{Site: site, TS: day.Add(time.Duration(v) * time.Second), Last: at, Visitor: 1000 + v, ID: 7000 + v,
				Events: int32(1 + v%4), PageViews: int32(v % 3), KeyEvents: int32(v % 2), Engage: v * 10, Flags: int16(v % 2),
				First: &first}
		}
		return rows
	}
	// The same two chunks of a derivation, with and without a scratch,
	// each in a database of its own.
	run := func(scratch *CellScratch) (SessionChanges, SessionChanges) {
		s := newStore(t)
		site, err := s.CreateSite(ctx, SiteSpec{Name: "sessions"})
		if err != nil {
			t.Fatal(err)
		}
		if err := s.EnsurePartitions(ctx, day, day.Add(24*time.Hour)); err != nil {
			t.Fatal(err)
		}
		d, err := s.BeginDerive(ctx, site.ID)
		if err != nil {
			t.Fatal(err)
		}
		defer d.Rollback(ctx)
		if scratch != nil {
			d.UseCells(scratch)
		}
		if _, err := d.UpsertSessions(ctx, rowsOf(int32(site.ID), 0, 200, day.Add(time.Hour))); err != nil {
			t.Fatal(err)
		}
		first, err := d.UpsertSessions(ctx, rowsOf(int32(site.ID), 100, 300, day.Add(2*time.Hour)))
		if err != nil {
			t.Fatal(err)
		}
		first = deepChanges(first) // the scratch's until the next
		second, err := d.UpsertSessions(ctx, rowsOf(int32(site.ID), 350, 100, day.Add(3*time.Hour)))
		if err != nil {
			t.Fatal(err)
		}
		return first, second
	}
	var scratch CellScratch
	gotFirst, got := run(&scratch)
	wantFirst, want := run(nil)
	if cap(scratch.sessions.changes) < 300 {
		t.Fatalf("the scratch holds room for %d changes, want 300", cap(scratch.sessions.changes))
	}
	befores := 0
	for _, c := range want {
		if c.before != nil {
			befores++
		}
	}
	if befores != 50 || len(wantFirst) != 300 || wantFirst[0].before == nil {
		t.Fatalf("%d sessions of the last chunk had a state before, want 50 (and the one before states before)", befores)
	}
	if !reflect.DeepEqual(gotFirst, wantFirst) {
		t.Fatal("the first chunk's changes differ with a scratch")
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("the second chunk's changes through the scratch differ from new ones:\n%+v\n%+v", got[:3], want[:3])
	}
}

// deepChanges is a copy of cs holding none of its arrays.
func deepChanges(cs SessionChanges) SessionChanges {
	out := make(SessionChanges, len(cs))
	for i, c := range cs {
		c.now.dims = append([]int32(nil), c.now.dims...)
		if c.before != nil {
			b := *c.before
			b.dims = append([]int32(nil), b.dims...)
			c.before = &b
		}
		out[i] = c
	}
	return out
}
