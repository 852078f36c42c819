package postgres

import (
	"bytes"
	"cmp"
	"maps"
	"math/rand/v2"
	"reflect"
	"slices"
	"testing"
	"time"

	"github.com/avila-analytics/avila/protocol"
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

// TestAddRowsEqualsAddTo: rows aggregated by addRows (a cell touched once
// per stint of its slot) make the cells addTo row by row makes (counters,
// amounts and visitor runs alike, and the sketches settle builds of them,
// byte for byte), over generated rows: visitors' runs of random length,
// interleaved, with sessions, active and first-visit bits, key events,
// page views and amounts changing within runs, dims that change row by
// row or hold for a run, two sites, local days on both sides of midnight,
// and rows given in chunks to one set of slots, as a derivation's chunks.
func TestAddRowsEqualsAddTo(t *testing.T) {
	loc, err := time.LoadLocation("America/New_York")
	if err != nil {
		t.Fatal(err)
	}
	for seed := range uint64(8) {
		rng := rand.New(rand.NewPCG(seed, 99))
		rows := rollupBenchRows(5000)
		at := time.Date(2026, 12, 6, 4, 50, 0, 0, time.UTC) // 23:50 local
		var cur EventRow
		for i := range rows {
			r := &rows[i]
			at = at.Add(time.Duration(rng.IntN(400)) * time.Millisecond)
			r.TS = at
			if i == 0 || rng.IntN(12) == 0 { // a new run
				cur.Visitor, cur.Session = 1+rng.Int64N(40), 1+rng.Int64N(3)
				cur.Site = 1 + int32(rng.IntN(20)/19)
				cur.DayActive = rng.IntN(4) != 0
				cur.SessionTraffic, cur.SessionLanding = rng.Int32N(4), rng.Int32N(5)
				cur.Dims = r.Dims
			}
			r.Visitor, r.Session, r.Site, r.DayActive = cur.Visitor, cur.Session, cur.Site, cur.DayActive
			r.SessionTraffic, r.SessionLanding = cur.SessionTraffic, cur.SessionLanding
			if rng.IntN(30) == 0 {
				r.DayActive = !r.DayActive
			}
			if rng.IntN(6) != 0 {
				r.Dims = cur.Dims // the run's dims but for some
			}
			for k := range r.Dims {
				if rng.IntN(8) == 0 {
					r.Dims[k] = rng.Int32N(6)
				}
			}
			r.Flags, r.PageView, r.Engage, r.Amounts = 0, rng.IntN(3) == 0, rng.Int32N(3)*1000, nil
			if rng.IntN(10) == 0 {
				r.Flags |= int16(protocol.FlagFirstVisit)
			}
			if rng.IntN(7) == 0 {
				r.Flags |= int16(protocol.FlagKeyEvent)
			}
			if rng.IntN(9) == 0 {
				r.Amounts = &Amounts{rng.Float64(), 0, rng.Float64() / 3}
			}
		}
		day := localDay(rows[0].TS, loc)
		build := func(byRows bool) rollupAgg {
			a := make(rollupAgg)
			a.moveLandingCounters(1, day, 1, &rollupCell{events: 3, views: 1})
			hours, last := &hourCache{loc: loc}, new(rollupSlots)
			for from := 0; from < len(rows); {
				to := min(len(rows), from+1+rng.IntN(700))
				if byRows {
					a.addRows(rows[from:to], hours, last)
				} else {
					for i := range rows[from:to] {
						a.addTo(&rows[from+i], hours, true, last)
					}
				}
				from = to
			}
			return a
		}
		got, want := build(true), build(false)
		compareCells := func(stage string) {
			t.Helper()
			if len(got) != len(want) {
				t.Fatalf("seed %d, %s: %d cells by addRows, %d by addTo", seed, stage, len(got), len(want))
			}
			for k, w := range want {
				if g := got[k]; g == nil || !reflect.DeepEqual(*g, *w) {
					t.Fatalf("seed %d, %s: cell %+v by addRows: %+v, by addTo: %+v", seed, stage, k, g, w)
				}
			}
		}
		compareCells("collected")
		got.settle()
		want.settle()
		compareCells("settled")
		for k, w := range want {
			for j := range 3 {
				wb, err := w.sketches.deltaBytes(j)
				if err != nil {
					t.Fatal(err)
				}
				gb, err := got[k].sketches.deltaBytes(j)
				if err != nil {
					t.Fatal(err)
				}
				if !bytes.Equal(gb, wb) {
					t.Fatalf("seed %d: cell %+v's sketch %d by addRows differs from addTo's", seed, k, j)
				}
			}
		}
	}
}

// TestSlotDims: slotDims gives the landing page, the page path and title
// (the sessions kinds), the traffic source and the hour, then the dims of
// RollupKinds in their order, for rows of random dims; rollupSlotCount
// is the count of rollupSlotKinds.
func TestSlotDims(t *testing.T) {
	if len(rollupSlotKinds) != rollupSlotCount {
		t.Fatalf("%d slot kinds, rollupSlotCount %d", len(rollupSlotKinds), rollupSlotCount)
	}
	rng := rand.New(rand.NewPCG(5, 6))
	for range 1000 {
		var r EventRow
		for k := range r.Dims {
			r.Dims[k] = rng.Int32()
		}
		r.SessionLanding, r.SessionTraffic = rng.Int32(), rng.Int32()
		hour := rng.Int32N(24)
		want := []int32{r.SessionLanding, r.Dims[DimPagePath-1], r.Dims[DimTitle-1], r.SessionTraffic, hour, 0}
		for _, k := range RollupKinds {
			want = append(want, r.Dims[k-1])
		}
		if got := slotDims(&r, hour); !slices.Equal(got[:], want) {
			t.Fatalf("slotDims %v, want %v", got, want)
		}
	}
}

// TestAddRowsKeyZero: rows whose cells' day and dims id are all zero
// (1970-01-01, no dims: a slot's key then equals that of a slot without
// a cell yet) make the cells addTo makes.
func TestAddRowsKeyZero(t *testing.T) {
	rows := make([]EventRow, 50)
	for i := range rows {
		rows[i] = EventRow{Site: 1, TS: time.Unix(int64(i)*60, 0).UTC(), Visitor: 1 + int64(i/10), Session: 1, DayActive: i%3 == 0}
		if i%4 == 0 {
			rows[i].Dims[DimPagePath-1] = 7
		}
	}
	build := func(byRows bool) rollupAgg {
		a := make(rollupAgg)
		hours, last := &hourCache{loc: time.UTC}, new(rollupSlots)
		if byRows {
			a.addRows(rows, hours, last)
			return a
		}
		for i := range rows {
			a.addTo(&rows[i], hours, true, last)
		}
		return a
	}
	got, want := build(true), build(false)
	if len(got) != len(want) {
		t.Fatalf("%d cells by addRows, %d by addTo", len(got), len(want))
	}
	for k, w := range want {
		if g := got[k]; g == nil || !reflect.DeepEqual(*g, *w) {
			t.Fatalf("cell %+v by addRows: %+v, by addTo: %+v", k, g, w)
		}
	}
}
