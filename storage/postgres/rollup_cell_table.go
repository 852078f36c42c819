package postgres

import "math/bits"

// cellTable is a rollup slot's cells by day and dims id (dayDim): a hash
// table of open addressing, probed linearly from the slot the key's
// Fibonacci hash picks, at most half full. A slot leaves its last cell
// for another several times an event (the event name, the page and
// title kinds), and the runtime's map hashes the key with AES and then
// probes its control bytes, where this multiplies and compares. Cleared
// for a derivation's next site or derivation, it keeps its array.
type cellTable struct {
	entries []cellEntry // a power of two of them, or none
	n       int         // entries in use
	shift   uint8       // 64 - log2(len(entries))
}

// cellEntry is one entry of a cellTable; cell nil: free.
type cellEntry struct {
	dd   uint64
	cell *rollupCell
}

// minCellTable is a cellTable's first size.
const minCellTable = 16

// home is the entry dd's probe starts at.
func (t *cellTable) home(dd uint64) uint64 { return (dd * 0x9e3779b97f4a7c15) >> t.shift }

// get returns dd's cell, nil if the table has none.
func (t *cellTable) get(dd uint64) *rollupCell {
	if t.n == 0 {
		return nil
	}
	mask := uint64(len(t.entries) - 1)
	for i := t.home(dd); ; i = (i + 1) & mask {
		e := &t.entries[i]
		if e.cell == nil || e.dd == dd {
			return e.cell
		}
	}
}

// put makes c dd's cell; dd must have none.
func (t *cellTable) put(dd uint64, c *rollupCell) {
	if 2*(t.n+1) > len(t.entries) {
		t.grow()
	}
	t.place(dd, c)
	t.n++
}

// place puts c at the first free entry of dd's probe.
func (t *cellTable) place(dd uint64, c *rollupCell) {
	mask := uint64(len(t.entries) - 1)
	i := t.home(dd)
	for t.entries[i].cell != nil {
		i = (i + 1) & mask
	}
	t.entries[i] = cellEntry{dd, c}
}

// grow doubles the entries (or makes the first) and places the cells again.
func (t *cellTable) grow() {
	old := t.entries
	size := max(2*len(old), minCellTable)
	t.entries = make([]cellEntry, size)
	t.shift = uint8(64 - bits.TrailingZeros(uint(size)))
	for _, e := range old {
		if e.cell != nil {
			t.place(e.dd, e.cell)
		}
	}
}

// clear empties the table, keeping its entries' array.
func (t *cellTable) clear() {
	if t.n > 0 {
		clear(t.entries)
		t.n = 0
	}
}
