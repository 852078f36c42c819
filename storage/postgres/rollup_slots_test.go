package postgres

import (
	"cmp"
	"maps"
	"math/rand/v2"
	"reflect"
	"slices"
	"testing"
	"time"
)

// TestAddToSlotsEqualsMapLookups: a derivation's rows aggregated through
// the slots (each slot's cells by day and dims id, and its last cell) make
// the cells a look-up of every cell in the aggregate makes, counters,
// amounts and visitor runs alike, for rows of two sites, of local days on
// both sides of midnight, interleaved visitors, and cells the aggregate
// held before (as moveLanding leaves them).
func TestAddToSlotsEqualsMapLookups(t *testing.T) {
	loc, err := time.LoadLocation("America/New_York")
	if err != nil {
		t.Fatal(err)
	}
	rows := rollupBenchRows(6000)
	for i := range rows {
		r := &rows[i]
		r.TS = time.Date(2026, 12, 6, 4, 50, 0, 0, time.UTC).Add(time.Duration(i) * 137 * time.Millisecond) // 23:50 local on, for 14 minutes
		if i%7 == 3 {
			r.Visitor, r.Session = rows[i/2].Visitor, rows[i/2].Session // interleaved runs
		}
		if i%500 == 499 {
			r.Site = 2 // another site's row between
		}
		if i%11 == 0 {
			r.DayActive = false
		}
		if i%13 == 0 {
			r.Amounts = &Amounts{1.5, 0, 0.25}
		}
	}
	day := localDay(rows[0].TS, loc)
	build := func(slots bool) rollupAgg {
		a := make(rollupAgg)
		a.moveLandingCounters(1, day, rows[0].SessionLanding, &rollupCell{events: 3, views: 1})
		hours := &hourCache{loc: loc}
		var last *rollupSlots
		if slots {
			last = new(rollupSlots)
		}
		for i := range rows {
			a.addTo(&rows[i], hours, true, last)
		}
		return a
	}
	got, want := build(true), build(false)
	if len(got) != len(want) {
		t.Fatalf("%d cells through the slots, %d by look-ups", len(got), len(want))
	}
	days := map[int32]bool{}
	for k, w := range want {
		days[k.day] = true
		if g := got[k]; g == nil || !reflect.DeepEqual(*g, *w) {
			t.Fatalf("cell %+v through the slots: %+v, by look-ups: %+v", k, g, w)
		}
	}
	if len(days) != 2 {
		t.Fatalf("the rows fell on %d local days, want 2", len(days))
	}
}

// TestCompareRollupKeysOrder: the keys' order is site, kind, day, dims id,
// as cmp.Or of the four comparisons gives it, negative values included.
func TestCompareRollupKeysOrder(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	small := func() int32 { return rng.Int32N(5) - 2 }
	for range 20_000 {
		a := rollupKey{site: small(), kind: small(), day: small(), dim: small()}
		b := rollupKey{site: small(), kind: small(), day: small(), dim: small()}
		want := cmp.Or(cmp.Compare(a.site, b.site), cmp.Compare(a.kind, b.kind), cmp.Compare(a.day, b.day), cmp.Compare(a.dim, b.dim))
		if got := compareRollupKeys(a, b); got != want {
			t.Fatalf("compareRollupKeys(%+v, %+v) = %d, want %d", a, b, got, want)
		}
	}
}

// TestSortedRollupKeysOrder: a derivation's keys sorted as packed
// integers come in compareRollupKeys' order, negative days and dims ids
// and the bounds of the packed fields included, and keys that do not fit
// (two sites, a kind or day past 16 bits) sort all the same.
func TestSortedRollupKeysOrder(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	pick := func(vals ...int32) int32 { return vals[rng.IntN(len(vals))] }
	for _, tc := range []struct {
		name       string
		site, kind func() int32
		day        func() int32
	}{
		{"one site", func() int32 { return 7 }, func() int32 { return pick(0, 1, 2, 100, 105, -1, 32767, -32768) },
			func() int32 { return pick(20_000, 20_001, -5, 0, 32767, -32768) }},
		{"two sites", func() int32 { return pick(7, 8) }, func() int32 { return pick(0, 2, 104) }, func() int32 { return pick(20_000, 20_001) }},
		{"a day past 16 bits", func() int32 { return 7 }, func() int32 { return pick(0, 2) }, func() int32 { return pick(20_000, 70_000) }},
		{"a kind past 16 bits", func() int32 { return 7 }, func() int32 { return pick(0, 1<<20) }, func() int32 { return pick(20_000, 20_001) }},
	} {
		cells := make(rollupAgg)
		for range 3000 {
			k := rollupKey{site: tc.site(), kind: tc.kind(), day: tc.day(), dim: pick(0, 1, -1, 1<<31-1, -1<<31, rng.Int32())}
			cells[k] = nil
		}
		got := sortedRollupKeys(cells)
		want := slices.SortedFunc(maps.Keys(cells), compareRollupKeys)
		if !slices.Equal(got, want) {
			t.Fatalf("%s: %d keys sorted otherwise than by compareRollupKeys", tc.name, len(want))
		}
	}
}
