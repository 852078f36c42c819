package postgres

// CellScratch holds the rollup cells of a derivation that wrote them,
// emptied, for the holder's next derivation to reuse (DeriveTx.UseCells)
// instead of making as many afresh: a derivation of the end-to-end
// bench's traffic makes some 9 000 cells of about 300 bytes, their maps
// and their arrays of visitor runs, which the GC then marked and freed
// derivation after derivation.
//
// What it keeps is bounded: a derivation of more than maxKeptCells cells
// keeps none, a cell's array of runs is kept only up to maxKeptRuns, and
// cells kept that stay over shrinkCellsPast times what the derivations
// use, shrinkCellsAfter derivations in a row, are dropped. The holder
// drops them once idle (Drop). Not safe for concurrent use: one
// derivation at a time uses it.
type CellScratch struct {
	cells *deriveCells
	// sessions holds the arrays of the derivations' UpsertSessions.
	sessions sessionScratch
	// oversized counts the derivations in a row that used under
	// 1/shrinkCellsPast of the slabs kept.
	oversized int
}

// Bounds of what a CellScratch keeps.
const (
	maxKeptCells     = 1 << 15
	maxKeptRuns      = 4 * minSeen
	shrinkCellsPast  = 4
	shrinkCellsAfter = 16
)

// Drop lets the cells kept go.
func (s *CellScratch) Drop() { s.cells, s.sessions, s.oversized = nil, sessionScratch{}, 0 }

// UseCells makes d take its cells from s, when it holds some, and give
// them back to s once written (WriteEvents, Commit). Call it before the
// first AddEvents or WriteEvents.
func (d *DeriveTx) UseCells(s *CellScratch) { d.scratch = s }

// newCells returns the cells for d's first chunk: the scratch's, if it
// holds some, else new ones.
func (d *DeriveTx) newCells() *deriveCells {
	if s := d.scratch; s != nil && s.cells != nil {
		c := s.cells
		s.cells = nil
		c.hours = &hourCache{loc: d.zone}
		return c
	}
	return &deriveCells{agg: make(rollupAgg), sessions: make(sessionRollupAgg), hours: &hourCache{loc: d.zone}}
}

// keepCells gives c, written, back to d's scratch (if any), emptied
// (recycle), unless it is past the bounds.
func (d *DeriveTx) keepCells(c *deriveCells) {
	s := d.scratch
	if s == nil || len(c.agg) > maxKeptCells {
		return
	}
	last := &c.last
	if len(last.slabs) > shrinkCellsPast*max(last.used, 8) {
		s.oversized++
	} else {
		s.oversized = 0
	}
	if s.oversized >= shrinkCellsAfter {
		s.Drop()
		return
	}
	c.recycle()
	s.cells = c
}

// recycle empties c for another derivation, as new cells but for the
// memory: the maps and tables are cleared, every cell the slots handed out is zeroed
// (keeping its array of runs, emptied, up to maxKeptRuns), and the slabs
// hand them out again; the statements' arrays drop the sketches and
// amounts they pointed to. Nothing of the cells' counts, sketches or
// amounts stays.
func (c *deriveCells) recycle() {
	clear(c.agg)
	clear(c.sessions)
	c.arrays.clear()
	c.days = nil
	c.hours = nil
	last := &c.last
	for _, slab := range last.slabs[:last.used] {
		for i := range slab {
			runs := slab[i].seen[:0]
			if cap(runs) > maxKeptRuns {
				runs = nil
			}
			slab[i] = rollupCell{seen: runs}
		}
	}
	last.clear()
	last.used, last.free, last.site, last.valid = 0, nil, 0, false
}
