package redis

// A minute that holds MaxCells cells in memory counts only the events of
// cells it holds; the rest are dropped. Once the bench's traffic fills a
// minute (within its first 100,000 events) nearly every event is of a
// cell the minute does not hold, and finding that out through the
// minute's cellTable costs a hash of the cell's strings and a probe of
// an index of 100,000 cells (2 MB or more, past the L2 cache) and of
// the cells it leads to. A full minute's cellFilter (256 KiB) answers
// most of them first: a bit set of the cells' probes, a hash of what a
// cell holds that costs no string hashing (its visitor, its strings'
// lengths and last bytes). A clear bit means the minute holds no such
// cell, so the event is dropped as before; a set bit sends the cell to
// the table, which decides, so every count stays exact.

// cellFilter is a Bloom filter over the probes of a full minute's cells,
// two bits each.
type cellFilter struct {
	bits []uint64
	mask uint64 // bits in the set - 1 (a power of two)
}

// newCellFilter is the filter of cells, with 16 to 32 bits a cell: under
// 1.5% of the cells absent from cells pass it, and those whose probe
// equals a held cell's (they differ only where cellProbe does not look).
func newCellFilter(cells []cellCount) *cellFilter {
	n := uint64(64)
	for n < uint64(len(cells))*16 {
		n *= 2
	}
	f := &cellFilter{bits: make([]uint64, n/64), mask: n - 1}
	for i := range cells {
		a, b := f.positions(cellProbe(&cells[i].Cell))
		f.bits[a/64] |= 1 << (a % 64)
		f.bits[b/64] |= 1 << (b % 64)
	}
	return f
}

// positions are the two bits of probe h.
func (f *cellFilter) positions(h uint64) (uint64, uint64) {
	return h & f.mask, (h >> 32) & f.mask
}

// mayHold is false when the filter's cells do not hold c; true when they
// may (the map tells).
func (f *cellFilter) mayHold(c *Cell) bool {
	a, b := f.positions(cellProbe(c))
	return f.bits[a/64]&(1<<(a%64)) != 0 && f.bits[b/64]&(1<<(b%64)) != 0
}

// cellProbe hashes what a cell holds without hashing its strings: equal
// cells have equal probes; cells that differ mostly differ in their
// visitor, or in the length or the last bytes of a string (a page's title,
// an event's name).
func cellProbe(c *Cell) uint64 {
	lens := uint64(len(c.EventName)) | uint64(len(c.Screen))<<12 | uint64(len(c.City))<<24 |
		uint64(len(c.Country))<<36 | uint64(len(c.Device))<<48
	if c.Active {
		lens |= 1 << 63
	}
	h := (c.Visitor ^ lens) * 0x9e3779b97f4a7c15
	h = (h ^ h>>29 ^ last8(c.Screen)) * 0xbf58476d1ce4e5b9
	h = (h ^ h>>31 ^ last8(c.EventName)) * 0x94d049bb133111eb
	return h ^ h>>32
}

// last8 is s's last 8 bytes (all of a shorter s) as a number.
func last8(s string) uint64 {
	if len(s) < 8 {
		var x uint64
		for i := 0; i < len(s); i++ {
			x = x<<8 | uint64(s[i])
		}
		return x
	}
	s = s[len(s)-8:]
	return uint64(s[0]) | uint64(s[1])<<8 | uint64(s[2])<<16 | uint64(s[3])<<24 |
		uint64(s[4])<<32 | uint64(s[5])<<40 | uint64(s[6])<<48 | uint64(s[7])<<56
}
