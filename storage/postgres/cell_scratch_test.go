package postgres

import (
	"bytes"
	"reflect"
	"testing"
	"time"
)

// TestCellScratchLeavesNothingOfTheLastDerivation: cells a derivation
// took from a CellScratch, given back by one that aggregated other rows
// (other sites, days, dims, amounts, merged and encoded sketches), hold
// exactly what new cells hold once they aggregate the same rows:
// counters, amounts, runs and sketches, and no cell of the first.
func TestCellScratchLeavesNothingOfTheLastDerivation(t *testing.T) {
	loc, err := time.LoadLocation("America/New_York")
	if err != nil {
		t.Fatal(err)
	}
	first := rollupBenchRows(7000)
	for i := range first {
		r := &first[i]
		r.Site = 2 + int32(i%3/2)
		r.TS = r.TS.AddDate(0, 0, -1)
		r.Dims[DimCountry-1] = int32(i % 17)
		if i%5 == 0 {
			r.Amounts = &Amounts{2.5, 1, 0.5}
		}
		r.DayActive = i%4 != 0
	}
	second := rollupBenchRows(5000)
	for i := range second {
		if i%9 == 0 {
			second[i].Amounts = &Amounts{1, 0, 0.25}
		}
	}
	fill := func(c *deriveCells, rows []EventRow) {
		t.Helper()
		c.agg.addRows(rows, c.hours, &c.last)
		c.agg.addActive(rollupKey{site: rows[0].Site, day: 1}, 77)
		c.sessions[rollupKey{site: rows[0].Site, day: 2}] = &sessionRollupCell{sessions: 1}
		c.agg.settleIn(&c.arrays.arena)
	}
	var s CellScratch
	d := &DeriveTx{zone: loc, scratch: &s}
	used := d.newCells()
	fill(used, first)
	// A merge leaves encodings and marks on the cells, as storeCells'
	// read of the stored rows does.
	for _, c := range used.agg {
		d, err := c.sketches.deltaBytes(1)
		if err != nil {
			t.Fatal(err)
		}
		if len(d) > 0 {
			stored := [3][]byte{d, d, nil}
			if err := c.sketches.mergeStored(&stored); err != nil {
				t.Fatal(err)
			}
		}
	}
	d.keepCells(used)
	reused := d.newCells()
	if reused != used {
		t.Fatal("the scratch did not lend the cells it was given")
	}
	if len(reused.agg) != 0 || len(reused.sessions) != 0 || reused.days != nil {
		t.Fatalf("recycled cells hold %d cells, %d session cells, days %v", len(reused.agg), len(reused.sessions), reused.days)
	}
	for _, slab := range reused.last.slabs {
		for i := range slab {
			c := slab[i]
			if len(c.seen) != 0 || cap(c.seen) > maxKeptRuns {
				t.Fatalf("a recycled cell keeps %d runs (room for %d)", len(c.seen), cap(c.seen))
			}
			c.seen = nil
			if !reflect.DeepEqual(c, rollupCell{}) {
				t.Fatalf("a recycled cell is not empty: %+v", c)
			}
		}
	}
	fill(reused, second)
	fresh := (&DeriveTx{zone: loc}).newCells()
	fill(fresh, second)
	if len(reused.agg) != len(fresh.agg) {
		t.Fatalf("%d cells in recycled cells, %d in new ones", len(reused.agg), len(fresh.agg))
	}
	for k, w := range fresh.agg {
		g := reused.agg[k]
		if g == nil {
			t.Fatalf("cell %+v missing from the recycled cells", k)
		}
		gc, wc := *g, *w
		if len(gc.seen) != len(wc.seen) {
			t.Fatalf("cell %+v: %d runs recycled, %d new", k, len(gc.seen), len(wc.seen))
		}
		gc.seen, wc.seen = nil, nil
		if !reflect.DeepEqual(gc, wc) {
			t.Fatalf("cell %+v recycled: %+v, new: %+v", k, gc, wc)
		}
		for j := range 3 {
			gb, err := g.sketches.deltaBytes(j)
			if err != nil {
				t.Fatal(err)
			}
			wb, err := w.sketches.deltaBytes(j)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(gb, wb) {
				t.Fatalf("cell %+v: sketch %d recycled differs from new", k, j)
			}
		}
	}
}

// TestCellScratchBounds: cells past maxKeptCells are not kept, and cells
// kept that derivations use a small part of go after shrinkCellsAfter
// derivations in a row; Drop lets them go.
func TestCellScratchBounds(t *testing.T) {
	var s CellScratch
	d := &DeriveTx{zone: time.UTC, scratch: &s}
	big := d.newCells()
	for i := range maxKeptCells + 1 {
		big.agg.get(rollupKey{site: 1, dim: int32(i)})
	}
	d.keepCells(big)
	if s.cells != nil {
		t.Fatalf("cells of %d kept (bound %d)", len(big.agg), maxKeptCells)
	}
	c := d.newCells()
	c.agg.addRows(rollupBenchRows(20000), c.hours, &c.last)
	d.keepCells(c)
	if s.cells != c {
		t.Fatal("cells within the bounds not kept")
	}
	small := rollupBenchRows(20)
	for i := range shrinkCellsAfter {
		c := d.newCells()
		c.agg.addRows(small, c.hours, &c.last)
		d.keepCells(c)
		if kept := s.cells != nil; kept != (i+1 < shrinkCellsAfter) {
			t.Fatalf("after %d small derivations in a row, kept %v", i+1, kept)
		}
	}
	c = d.newCells()
	d.keepCells(c)
	s.Drop()
	if s.cells != nil {
		t.Fatal("Drop kept the cells")
	}
}
