package postgres

import (
	"encoding/binary"
	"slices"
	"sync"
)

// Merging a derivation's delta into a stored sketch on their
// serializations (the forms sketch_erase.go describes), with the result
// the library gives for decoding the stored sketch, merging the delta and
// serializing (encodeSketch), byte for byte, without building either
// sketch: the sorted sparse lists merge in one pass, dense registers take
// their maxima.
//
// The library's Merge of a sparse delta into a sparse stored sketch
// buffers the delta's encoded hashes and, when more than 163 are
// buffered, folds them into the list and turns the sketch dense if the
// list then takes more than 2^14 bytes; otherwise serializing folds them
// in and the sketch stays sparse. A dense side makes the result dense.

// sketchForm is a parsed serialized sketch of rollup precision.
type sketchForm struct {
	sparse bool
	count  uint32 // sparse: values in list
	list   []byte // sparse: varint deltas
	regs   []byte // dense: registers
}

// parseSketchForm parses b as the library serializes a sketch of rollup
// precision with nothing buffered (as encodeSketch leaves it); ok is false
// for any other form.
func parseSketchForm(b []byte) (f sketchForm, ok bool) {
	if len(b) < sketchHeader+4 || b[0] != 2 || b[1] != RollupPrecision || b[2] != 0 {
		return f, false
	}
	n := binary.BigEndian.Uint32(b[sketchHeader:])
	switch b[3] {
	case 0:
		if n != sketchM || len(b) != sketchHeader+4+sketchM {
			return f, false
		}
		return sketchForm{regs: b[sketchHeader+4:]}, true
	case 1:
		rest := b[sketchHeader+4:]
		if n != 0 || len(rest) < 12 {
			return f, false
		}
		size := binary.BigEndian.Uint32(rest[8:])
		if uint64(len(rest)) != 12+uint64(size) {
			return f, false
		}
		return sketchForm{sparse: true, count: binary.BigEndian.Uint32(rest), list: rest[12:]}, true
	}
	return f, false
}

// listReader reads a sparse list's values in order.
type listReader struct {
	b    []byte
	i    int
	last uint32
	cut  bool // the list ends inside a value
}

// next returns the next value; ok is false at the end. A varint of up
// to 4 bytes (a difference below 2^28: a list's values but its first,
// unless it holds only a few) is read without a loop, which took half a
// merge's instructions; a longer one, and any in a list's last 3 bytes,
// by nextSlow.
func (r *listReader) next() (v uint32, ok bool) {
	if b := r.b[r.i:]; len(b) >= 4 {
		x := uint32(b[0])
		if x < 0x80 {
			r.i++
			r.last += x
			return r.last, true
		}
		c := uint32(b[1])
		x = x&0x7f | (c&0x7f)<<7
		if c < 0x80 {
			r.i += 2
			r.last += x
			return r.last, true
		}
		c = uint32(b[2])
		x |= (c & 0x7f) << 14
		if c < 0x80 {
			r.i += 3
			r.last += x
			return r.last, true
		}
		if c = uint32(b[3]); c < 0x80 {
			r.i += 4
			r.last += x | c<<21
			return r.last, true
		}
	}
	return r.nextSlow()
}

// nextSlow is next, a byte at a time.
func (r *listReader) nextSlow() (v uint32, ok bool) {
	var x uint32
	var shift uint
	for ; r.i < len(r.b); r.i++ {
		c := r.b[r.i]
		x |= uint32(c&0x7f) << shift
		if c&0x80 == 0 {
			r.i++
			r.last += x
			return r.last, true
		}
		shift += 7
	}
	r.cut = shift > 0
	return 0, false
}

// appendVarint appends x as the library's varint.
func appendVarint(b []byte, x uint32) []byte {
	for x&0xffffff80 != 0 {
		b = append(b, uint8(x&0x7f|0x80))
		x >>= 7
	}
	return append(b, uint8(x))
}

// mergeEncoded returns the serialization of the stored sketch (serialized,
// not empty) merged with delta (encodeSketch of the delta; nil: empty), as
// the library gives it; ok is false when either is in a form it does not
// read (the caller merges through the library then).
func mergeEncoded(stored, delta []byte) (out []byte, ok bool) {
	s, ok := parseSketchForm(stored)
	if !ok {
		return nil, false
	}
	if len(delta) == 0 {
		return stored, true
	}
	d, ok := parseSketchForm(delta)
	if !ok {
		return nil, false
	}
	if !s.sparse && d.sparse && sparseWithin(s.regs, d.list) {
		return stored, true
	}
	if !s.sparse || !d.sparse {
		regs := make([]byte, sketchM)
		for _, f := range []sketchForm{s, d} {
			if !f.sparse {
				for i, r := range f.regs {
					regs[i] = max(regs[i], r)
				}
				continue
			}
			if !sparseRegisters(regs, f.list) {
				return nil, false
			}
		}
		return denseEncoding(regs), true
	}
	return mergeSparse(stored, s, d)
}

// mergeSparse is mergeEncoded of a sparse stored sketch (stored, parsed as
// s) and a sparse delta d. While the delta's values are all in the stored
// list, it writes nothing: a stored list holding every one of them (a
// cell's visitors coming back) is the result as it is, stored itself,
// once its header and varints are those the merge writes; at the first
// value the stored list lacks, the result starts with the stored list's
// bytes before it. The stored list's varints are read in the loop (a
// call of listReader.next per value cost as much as the rest); any it
// does not read there, or not written as the merge writes them, make the
// merge write every value (mergeSparseAll).
func mergeSparse(stored []byte, s, d sketchForm) (out []byte, ok bool) {
	list := s.list
	b := listReader{b: d.list}
	y, oky := b.next()
	var count, last uint32
	at := 0 // where the stored list's next value starts
	for at < len(list) {
		// A varint of n bytes whose last is 0 is longer than it needs.
		var x uint32
		n := 0
		switch r := list[at:]; {
		case r[0] < 0x80:
			x, n = uint32(r[0]), 1
		case len(r) >= 2 && r[1] < 0x80:
			x, n = uint32(r[0]&0x7f)|uint32(r[1])<<7, 2
			if r[1] == 0 {
				n = 0
			}
		case len(r) >= 3 && r[2] < 0x80:
			x, n = uint32(r[0]&0x7f)|uint32(r[1]&0x7f)<<7|uint32(r[2])<<14, 3
			if r[2] == 0 {
				n = 0
			}
		case len(r) >= 4 && r[3] < 0x80:
			x, n = uint32(r[0]&0x7f)|uint32(r[1]&0x7f)<<7|uint32(r[2]&0x7f)<<14|uint32(r[3])<<21, 4
			if r[3] == 0 {
				n = 0
			}
		case len(r) >= 5 && r[4]-1 < 0x0f: // no bit past 32
			x, n = uint32(r[0]&0x7f)|uint32(r[1]&0x7f)<<7|uint32(r[2]&0x7f)<<14|uint32(r[3]&0x7f)<<21|uint32(r[4])<<28, 5
		}
		if n == 0 {
			return mergeSparseAll(s, d) // a varint the merge writes otherwise
		}
		x += last
		if oky && x >= y {
			if x != y {
				break
			}
			y, oky = b.next()
		}
		count, last = count+1, x
		at += n
	}
	if !oky {
		if b.cut || count != s.count || last != binary.BigEndian.Uint32(stored[sketchHeader+8:]) ||
			(d.count*100 > sketchM && len(list) > denseAfter) {
			return mergeSparseAll(s, d)
		}
		return stored, true
	}
	out = make([]byte, sparseHeader, sparseHeader+len(list)+len(d.list))
	out = append(out, list[:at]...)
	a := listReader{b: list, i: at, last: last}
	x, okx := a.next()
	return mergeSparseFrom(out, d.count, sparseMerge{a: a, b: b, x: x, y: y, okx: okx, oky: oky, count: count, last: last})
}

// sparseMerge is the state of a merge of two sparse lists: their readers,
// each one's next value (okx, oky: there is one), and the values written.
type sparseMerge struct {
	a, b        listReader
	x, y        uint32
	okx, oky    bool
	count, last uint32
}

// mergeSparseAll is mergeSparse writing every value.
func mergeSparseAll(s, d sketchForm) ([]byte, bool) {
	m := sparseMerge{a: listReader{b: s.list}, b: listReader{b: d.list}}
	m.x, m.okx = m.a.next()
	m.y, m.oky = m.b.next()
	return mergeSparseFrom(make([]byte, sparseHeader, sparseHeader+len(s.list)+len(d.list)), d.count, m)
}

// mergeSparseFrom appends the rest of merge m to out (a sparse header's
// room, then the list of m's values written) and completes the
// serialization: sparse, or dense when the delta (of deltaCount values)
// buffers enough hashes in the library to turn a list this long dense.
func mergeSparseFrom(out []byte, deltaCount uint32, m sparseMerge) ([]byte, bool) {
	a, b := m.a, m.b
	x, okx, y, oky := m.x, m.okx, m.y, m.oky
	count, last := m.count, m.last
	for okx || oky {
		v := y
		switch {
		case okx && oky && x == y:
			x, okx = a.next()
			y, oky = b.next()
		case okx && (!oky || x < y):
			v = x
			x, okx = a.next()
		default:
			y, oky = b.next()
		}
		out = appendVarint(out, v-last)
		count, last = count+1, v
	}
	if a.cut || b.cut {
		return nil, false
	}
	if list := out[sparseHeader:]; deltaCount*100 > sketchM && len(list) > denseAfter {
		regs := make([]byte, sketchM)
		sparseRegisters(regs, list)
		return denseEncoding(regs), true
	}
	putSparseHeader(out, count, last)
	return out, true
}

// sparseWithin reports whether every encoded hash of a sparse list ranks
// no higher than dense registers regs hold in its register (false for a
// list cut short): merged into them, it changes none.
func sparseWithin(regs, list []byte) bool {
	r := listReader{b: list}
	for {
		k, ok := r.next()
		if !ok {
			return !r.cut
		}
		if i, rank := registerOf(k); rank > regs[i] {
			return false
		}
	}
}

// sparseHeader is the size of a sparse serialization before its list with
// nothing buffered: the sketch header, the buffer's length (0), the list's
// count, last value and size.
const sparseHeader = sketchHeader + 16

// putSparseHeader writes the header of a sparse serialization b (the list
// from sparseHeader on) whose list holds count values, the last last.
func putSparseHeader(b []byte, count, last uint32) {
	copy(b, []byte{2, RollupPrecision, 0, 1, 0, 0, 0, 0})
	binary.BigEndian.PutUint32(b[8:], count)
	binary.BigEndian.PutUint32(b[12:], last)
	binary.BigEndian.PutUint32(b[16:], uint32(len(b)-sparseHeader))
}

// sparseEncodingSized is the library's serialization of a sparse sketch
// whose list is set (see sparseEncodingIn), the list taking size
// bytes (sparseListBytes): each difference is written as its varint's
// bytes at once, not appended byte by byte.
func sparseEncodingSized(set []uint32, size int) []byte {
	out := make([]byte, sparseHeader+size)
	_, last := putSparseList(out[sparseHeader:], set)
	putSparseHeader(out, uint32(len(set)), last)
	return out
}

// putSparseList writes the list of set (sorted, distinct) into b, each
// difference as its varint's bytes at once, not appended byte by byte;
// b must hold them (sparseListBytes, or 5 bytes a value). It returns the
// bytes written and the last value.
func putSparseList(b []byte, set []uint32) (n int, last uint32) {
	i := 0
	for _, k := range set {
		x := k - last
		last = k
		switch {
		case x < 1<<7:
			b[i] = uint8(x)
			i++
		case x < 1<<14:
			_ = b[i+1]
			b[i], b[i+1] = uint8(x|0x80), uint8(x>>7)
			i += 2
		case x < 1<<21:
			_ = b[i+2]
			b[i], b[i+1], b[i+2] = uint8(x|0x80), uint8(x>>7|0x80), uint8(x>>14)
			i += 3
		case x < 1<<28:
			_ = b[i+3]
			b[i], b[i+1], b[i+2], b[i+3] = uint8(x|0x80), uint8(x>>7|0x80), uint8(x>>14|0x80), uint8(x>>21)
			i += 4
		default:
			_ = b[i+4]
			b[i], b[i+1], b[i+2], b[i+3], b[i+4] = uint8(x|0x80), uint8(x>>7|0x80), uint8(x>>14|0x80), uint8(x>>21|0x80), uint8(x>>28)
			i += 5
		}
	}
	return i, last
}

// sparseRegisters raises regs to the ranks of a sparse list's encoded
// hashes; false when the list is cut short.
func sparseRegisters(regs, list []byte) bool {
	r := listReader{b: list}
	for {
		k, ok := r.next()
		if !ok {
			return !r.cut
		}
		i, rank := registerOf(k)
		regs[i] = max(regs[i], rank)
	}
}

// denseEncoding is the library's serialization of dense registers regs.
func denseEncoding(regs []byte) []byte {
	out := make([]byte, 0, sketchHeader+4+len(regs))
	out = append(out, 2, RollupPrecision, 0, 0)
	out = binary.BigEndian.AppendUint32(out, uint32(len(regs)))
	return append(out, regs...)
}

// insertionSortMax is the longest set sortHashes sorts by insertion.
const insertionSortMax = 32

// radixSortMin is the shortest set sortHashes sorts by radix: below it,
// clearing and summing the radix sort's counts costs more than
// slices.Sort's comparisons.
const radixSortMin = 512

// sortHashes sorts set, encoded hashes: one of insertionSortMax values
// or fewer (most cells' visitors of a derivation) by insertion, which
// costs less than slices.Sort's pattern-defeating quicksort at those
// lengths; one of radixSortMin or more (the visitors of a site's large
// cells: its days, countries, devices) by radix (radixSort), several
// times faster than slices.Sort there, which sorts the rest.
func sortHashes(set []uint32) {
	if len(set) >= radixSortMin {
		radixSort(set)
		return
	}
	if len(set) > insertionSortMax {
		slices.Sort(set)
		return
	}
	for i := 1; i < len(set); i++ {
		v := set[i]
		j := i
		for ; j > 0 && set[j-1] > v; j-- {
			set[j] = set[j-1]
		}
		set[j] = v
	}
}

// radixBufs holds the buffers radixSort moves values through, for the
// next sort to reuse (a derivation sorts the sets of thousands of cells).
var radixBufs = sync.Pool{New: func() any { return new([]uint32) }}

// radixSort sorts set by its four bytes, the lowest first, each pass a
// stable counting sort from set into a buffer of its length or back. The
// four counts are taken in one read of set, and a pass whose byte every
// value shares is skipped.
func radixSort(set []uint32) {
	var counts [4][256]int
	for _, v := range set {
		counts[0][byte(v)]++
		counts[1][byte(v>>8)]++
		counts[2][byte(v>>16)]++
		counts[3][byte(v>>24)]++
	}
	bp := radixBufs.Get().(*[]uint32)
	buf := slices.Grow((*bp)[:0], len(set))[:len(set)]
	src, dst := set, buf
	for pass := range counts {
		c, shift := &counts[pass], 8*pass
		if c[byte(src[0]>>shift)] == len(src) {
			continue
		}
		at := 0
		for i, n := range c {
			c[i], at = at, at+n
		}
		for _, v := range src {
			d := byte(v >> shift)
			dst[c[d]] = v
			c[d]++
		}
		src, dst = dst, src
	}
	if &src[0] != &set[0] {
		copy(set, src)
	}
	*bp = buf[:0]
	radixBufs.Put(bp)
}
