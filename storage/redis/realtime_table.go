package redis

import (
	"hash/maphash"
	"maps"
	"math/bits"
	"unsafe"
)

// A minute's cells in memory are written once per event and read once per
// change of the minute by a window (as a map[Cell]int64, Minute.Cells), so
// they live in a table of their own, not in such a map. A Go map hashes
// each event's cell afresh, all five strings, and compares it through
// the type's generated equality; a site's minute of 100,000 cells spreads
// them over 16 MB. The table hashes a cell's strings once per string
// seen (cellHasher remembers their hashes by address: ingest interns an
// event's strings, and a batch's events mostly share their country, city
// and device), gives the cells it hashes one string per value (ingest
// interns per decoder, so batches decoded apart carry equal strings at
// other addresses), compares the strings of a cell by address before
// bytes, keeps the cells and their counts in one slice in the order they
// came, and finds them through an index of 8 bytes a slot. Reads build
// the map, once per change of the minute.

// memoBits is log2 of the strings a cellHasher remembers by address.
const memoBits = 14

// Bounds of a cellHasher's values (canon): past either, it forgets them
// and starts again.
const (
	maxCanonStrings = 1 << 15
	maxCanonBytes   = 4 << 20
)

// cellHasher hashes cells for the cellTables of a Realtime, which share
// it under the Realtime's mu, and gives each value one string, which
// the cells it hashes take (canon): events decoded apart (ingest interns
// strings per decoder) carry equal strings at other addresses, which
// cells of the same values would compare byte by byte. It remembers the
// strings it saw last by their address, with their value's string and
// hash: an event's strings are mostly those of events before it, a name,
// a country, a title seen before.
type cellHasher struct {
	seed maphash.Seed
	memo [1 << memoBits]stringHash // by a string's address
	// place is the country, city and device of the cell hashed last
	// (or zero strings), and their hash: those of the cells of a batch
	// mostly are the same strings.
	place placeHash
	// canon is the string of each value seen (up to the bounds), and
	// its hash; canonBytes is the bytes of its strings.
	canon      map[string]stringHash
	canonBytes int
	// maxStrings and maxBytes bound canon (maxCanonStrings and
	// maxCanonBytes but in tests).
	maxStrings, maxBytes int
}

// placeHash is a cell's country, city and device, as seen and as canon
// holds them, and their hash.
type placeHash struct {
	country, city, device    string
	cCountry, cCity, cDevice string
	h                        uint64
}

// stringHash is a string, its value's string in canon (an equal one),
// and its hash. The strings keep their bytes from being freed, so no
// other string has their address and length but an equal one.
type stringHash struct {
	s, canon string
	h        uint64
}

func newCellHasher() *cellHasher {
	hs := &cellHasher{seed: maphash.MakeSeed(), canon: map[string]stringHash{},
		maxStrings: maxCanonStrings, maxBytes: maxCanonBytes}
	c := Cell{}
	hs.setPlace(&c)
	return hs
}

// canonOf makes m, which does not remember s (memoOf), remember s, its
// value's string in canon and its hash: s itself and 0 for "", else
// maphash.String's and the string of canon, which takes s when it has
// none.
//
//go:noinline
func (hs *cellHasher) canonOf(m *stringHash, s string) {
	if len(s) == 0 {
		*m = stringHash{s: s, canon: s}
		return
	}
	c, ok := hs.canon[s]
	if !ok {
		if len(hs.canon) >= hs.maxStrings || hs.canonBytes+len(s) > hs.maxBytes {
			// Cells keep the strings they took: equal to the next ones,
			// at other addresses.
			clear(hs.canon)
			hs.canonBytes = 0
		}
		c = stringHash{s: s, canon: s, h: maphash.String(hs.seed, s)}
		hs.canon[s] = c
		hs.canonBytes += len(s)
	}
	*m = stringHash{s: s, canon: c.canon, h: c.h}
}

// sameString is a == b, quick for the same string.
func sameString(a, b string) bool {
	return len(a) == len(b) && (unsafe.StringData(a) == unsafe.StringData(b) || a == b)
}

// sameCell is *a == *b.
func sameCell(a, b *Cell) bool {
	return a.Visitor == b.Visitor && a.Active == b.Active && sameString(a.Screen, b.Screen) &&
		sameString(a.EventName, b.EventName) && sameString(a.Country, b.Country) &&
		sameString(a.City, b.City) && sameString(a.Device, b.Device)
}

// identicalCells reports whether a and b are the same cell of the same
// strings, which cells of one value are (hash gives them canon's); false
// says nothing.
func identicalCells(a, b *Cell) bool {
	return a.Visitor == b.Visitor && identical(a.Screen, b.Screen) && identical(a.EventName, b.EventName) &&
		identical(a.Country, b.Country) && identical(a.City, b.City) && identical(a.Device, b.Device) && a.Active == b.Active
}

// hash is c's tag, equal cells' equal, and makes c's strings canon's
// strings of their values (those of cells hashed before, where canon has
// them).
func (hs *cellHasher) hash(c *Cell) uint32 {
	g := &hs.place
	if !identical(g.country, c.Country) || !identical(g.city, c.City) || !identical(g.device, c.Device) {
		hs.setPlace(c)
	}
	c.Country, c.City, c.Device = g.cCountry, g.cCity, g.cDevice
	h := (c.Visitor ^ g.h) * 0x9e3779b97f4a7c15
	if c.Active {
		h = ^h
	}
	// The name and the screen as str takes them, written out: str and a
	// helper returning the slot cost over the inlining budget, and this
	// runs for every event counted.
	m := hs.memoOf(c.EventName)
	if !identical(m.s, c.EventName) {
		hs.canonOf(m, c.EventName)
	}
	c.EventName = m.canon
	h = (h ^ m.h) * 0xbf58476d1ce4e5b9
	h ^= h >> 31
	m = hs.memoOf(c.Screen)
	if !identical(m.s, c.Screen) {
		hs.canonOf(m, c.Screen)
	}
	c.Screen = m.canon
	h = (h ^ m.h) * 0x94d049bb133111eb
	h ^= h >> 29
	return uint32(h>>32) ^ uint32(h)
}

// identical reports whether a and b are the same string: the same bytes
// at the same address (which a kept string keeps from being reused).
func identical(a, b string) bool {
	return unsafe.StringData(a) == unsafe.StringData(b) && len(a) == len(b)
}

// setPlace makes hs.place c's country, city and device.
//
//go:noinline
func (hs *cellHasher) setPlace(c *Cell) {
	country, hc := hs.str(c.Country)
	city, hy := hs.str(c.City)
	device, hd := hs.str(c.Device)
	h := (hc + 1) * 0x9e3779b97f4a7c15
	h = (h ^ hy) * 0xbf58476d1ce4e5b9
	h = (h ^ hd) * 0x94d049bb133111eb
	hs.place = placeHash{country: c.Country, city: c.City, device: c.Device,
		cCountry: country, cCity: city, cDevice: device, h: h ^ h>>32}
}

// str is s's value's string in canon and its hash, maphash.String's (0
// for ""), remembered by s's address.
func (hs *cellHasher) str(s string) (string, uint64) {
	m := hs.memoOf(s)
	if !identical(m.s, s) {
		hs.canonOf(m, s)
	}
	return m.canon, m.h // also "" at a slot never written, whose hash is 0
}

// memoOf is the slot of memo that remembers s if any does.
func (hs *cellHasher) memoOf(s string) *stringHash {
	a := uint64(uintptr(unsafe.Pointer(unsafe.StringData(s))))
	return &hs.memo[a*0x9e3779b97f4a7c15>>(64-memoBits)]
}

// cellTable is a minute's cells and their event counts. Its zero value
// holds none and is ready for reset.
type cellTable struct {
	hs      *cellHasher
	entries []cellCount // in the order the cells came; Forget drops some
	// index finds entries: open addressing with linear probing, at most
	// half full, len a power of two. A slot is tag<<32 | i+1 for
	// entries[i], whose hash's tag is tag; 0 is an empty slot.
	index []uint64
	shift uint // 32 - log2(len(index)): a tag's home slot is tag*phi>>shift
	// built is the map cells gave last (read-only: readers hold it), and
	// changed lists the entries added to or counted since, each once
	// (marked in changedBits): the next map is built from it, when few
	// changed. built is nil when there is none, or the cells were dropped.
	built       map[Cell]int64
	changed     []int32
	changedBits []uint64
}

// cellCount is a cell and its events.
type cellCount struct {
	Cell
	n int64
}

// reset empties t, with room for size cells before it grows, its cells
// hashed by hs.
func (t *cellTable) reset(hs *cellHasher, size int) {
	t.hs = hs
	t.entries = make([]cellCount, 0, size)
	t.makeIndex(size)
	t.built, t.changed, t.changedBits = nil, t.changed[:0], t.changedBits[:0]
}

// count adds n events to entries[i].
func (t *cellTable) count(i int, n int64) {
	t.entries[i].n += n
	if w, b := i/64, uint64(1)<<(i%64); t.changedBits[w]&b == 0 {
		t.changedBits[w] |= b
		t.changed = append(t.changed, int32(i))
	}
}

// makeIndex makes an empty index with room for size cells.
func (t *cellTable) makeIndex(size int) {
	n := 16
	for n < 2*size {
		n *= 2
	}
	t.index = make([]uint64, n)
	t.shift = uint(32 - bits.TrailingZeros(uint(n)))
}

// len is how many cells t holds.
func (t *cellTable) len() int { return len(t.entries) }

// hash is c's tag: equal cells have equal tags.
func (t *cellTable) hash(c *Cell) uint32 { return t.hs.hash(c) }

// home is the slot where probing for tag starts.
func (t *cellTable) home(tag uint32) int { return int((tag * 0x9e3779b9) >> t.shift) }

// find is the index in entries of c, whose tag is tag; -1: t does not
// hold c.
func (t *cellTable) find(c *Cell, tag uint32) int {
	mask := len(t.index) - 1
	for i := t.home(tag); ; i = (i + 1) & mask {
		s := t.index[i]
		if s == 0 {
			return -1
		}
		if uint32(s>>32) != tag {
			continue
		}
		if e := &t.entries[uint32(s)-1].Cell; identicalCells(e, c) || sameCell(e, c) {
			return int(uint32(s)) - 1
		}
	}
}

// insert adds c, which t does not hold and whose tag is tag, with n
// events.
func (t *cellTable) insert(c *Cell, tag uint32, n int64) {
	if 2*(len(t.entries)+1) > len(t.index) {
		t.reindex(2 * (len(t.entries) + 1))
	}
	t.entries = append(t.entries, cellCount{Cell: *c, n: 0})
	if len(t.entries) > 64*len(t.changedBits) {
		t.changedBits = append(t.changedBits, 0)
	}
	t.count(len(t.entries)-1, n)
	t.place(tag, len(t.entries))
}

// place puts slot tag<<32 | at in the index.
func (t *cellTable) place(tag uint32, at int) {
	mask := len(t.index) - 1
	i := t.home(tag)
	for t.index[i] != 0 {
		i = (i + 1) & mask
	}
	t.index[i] = uint64(tag)<<32 | uint64(at)
}

// reindex makes the index again for entries, with room for size cells.
func (t *cellTable) reindex(size int) {
	old := t.index
	t.makeIndex(size)
	for _, s := range old {
		if s != 0 {
			t.place(uint32(s>>32), int(uint32(s)))
		}
	}
}

// add adds n events to c, which t holds or gets.
func (t *cellTable) add(c *Cell, n int64) {
	tag := t.hash(c)
	if i := t.find(c, tag); i >= 0 {
		t.count(i, n)
		return
	}
	t.insert(c, tag, n)
}

// cells is t's cells as a map, for readers, who must not change it. When
// few cells changed since the map before, it is that map's copy with
// their counts set (a copy of a map copies its memory; setting a count
// hashes the cell), else built cell by cell.
func (t *cellTable) cells() map[Cell]int64 {
	var m map[Cell]int64
	if t.built != nil && 4*len(t.changed) <= len(t.entries) {
		m = maps.Clone(t.built)
		for _, i := range t.changed {
			m[t.entries[i].Cell] = t.entries[i].n
		}
	} else {
		m = make(map[Cell]int64, len(t.entries))
		for i := range t.entries {
			m[t.entries[i].Cell] = t.entries[i].n
		}
	}
	t.built, t.changed = m, t.changed[:0]
	clear(t.changedBits)
	return m
}

// drop removes the cells of gone's visitors; false: it held none.
func (t *cellTable) drop(gone map[uint64]bool) bool {
	kept := t.entries[:0]
	for _, e := range t.entries {
		if !gone[e.Visitor] {
			kept = append(kept, e)
		}
	}
	if len(kept) == len(t.entries) {
		return false
	}
	clear(t.entries[len(kept):]) // their strings are not held any more
	t.entries = kept
	t.built, t.changed = nil, t.changed[:0] // the next map is built anew
	clear(t.changedBits)
	t.makeIndex(cap(kept))
	for i := range kept {
		t.place(t.hash(&kept[i].Cell), i+1)
	}
	return true
}
