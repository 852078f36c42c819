package postgres

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math/bits"
	"slices"

	"github.com/axiomhq/hyperloglog"
)

// Taking a visitor out of a stored HyperLogLog sketch (erasure), exactly as
// if the sketch had been built from the remaining visitors, without
// reading those. The rules come from github.com/axiomhq/hyperloglog
// v0.2.6, whose serialized forms this file reads:
//
//   - sparse (small cells): the set of the visitors' encoded hashes
//     (encodeHash: a 25-bit index, and the rank when the index's low bits
//     are zero), a sorted list of varint deltas. Taking a visitor out
//     removes its encoded hash unless a remaining visitor has the same one.
//     The list is serialized in sorted order, so a set has one encoding,
//     whatever order it was built in.
//   - dense: 2^14 one-byte registers, each the largest rank of the hashes
//     at its index. Taking a visitor out can only lower the register at its
//     index, and only where its rank equals the stored value; the new value
//     is the largest rank of the remaining visitors at that index.
//   - a sparse sketch turns dense once its list takes more than 2^14 bytes,
//     checked each time 164 new hashes have been buffered: near that size
//     the form depends on insertion order, so there the cell is recomputed
//     from its remaining rows the way a rebuild does (sketchRecompute).
//
// "Remaining visitors at an index" need not be known in full: the caller
// passes the cell's remaining visitors whose hash shares a register index
// with one of the subject's (the competitors), which is all that can
// matter at the subject's registers and encoded hashes.

// sketchHeader is the serialized sketch's header: version, precision, b
// (unused by version 2), sparse flag.
const sketchHeader = 4

const (
	sketchPP    = 25                   // the library's sparse precision
	sketchM     = 1 << RollupPrecision // dense registers
	denseAfter  = sketchM              // a sparse list longer than this many bytes turns dense
	sparseFlush = sketchM/100 + 1      // buffered hashes that trigger the check (tmpSet.Len()*100 > m)
)

// denseSure is the estimate above which a dense sketch of the remaining
// visitors is dense however they are inserted: its sparse list would hold
// that many distinct encoded hashes, and n random 26-bit values sorted take
// about 2.1 bytes each as varint deltas at n = 9000 (mean gap 2^26/n), so
// 18 900 bytes, more than 2^14 plus the 163 hashes that may stay buffered
// (at most 5 bytes each), by tens of standard deviations; 10 000 leaves
// room for the estimate's error (0.8% standard error).
const denseSure = 10_000

// sketchOutcome is what sketchWithout did with one sketch.
type sketchOutcome int

const (
	sketchKept      sketchOutcome = iota // the subject changed nothing
	sketchSparse                         // sparse: the subject's hashes removed
	sketchDense                          // dense: registers lowered
	sketchRecompute                      // near the dense threshold: recompute from rows
)

// sparseSet returns the encoded hashes of a serialized sparse sketch
// (buffered ones included), sorted and distinct, and whether it is sparse.
func sparseSet(b []byte) (set []uint32, sparse bool, err error) {
	set, sparse, err = appendSparse(nil, b)
	if err != nil || !sparse {
		return nil, sparse, err
	}
	slices.Sort(set)
	return slices.Compact(set), true, nil
}

// appendSparse appends the encoded hashes of a serialized sparse sketch
// (buffered ones included) to set, in no order, and reports whether it is
// sparse (a dense one appends nothing).
func appendSparse(set []uint32, b []byte) ([]uint32, bool, error) {
	if len(b) < sketchHeader+4 {
		return nil, false, errors.New("decode sketch: too short")
	}
	if b[1] != RollupPrecision {
		return nil, false, fmt.Errorf("decode sketch: precision %d, want %d", b[1], RollupPrecision)
	}
	if b[3] != 1 {
		return set, false, nil
	}
	rest := b[sketchHeader:]
	n := int(binary.BigEndian.Uint32(rest))
	rest = rest[4:]
	if len(rest) < 4*n+12 {
		return nil, true, errors.New("decode sketch: sparse buffer cut short")
	}
	for i := range n {
		set = append(set, binary.BigEndian.Uint32(rest[4*i:]))
	}
	rest = rest[4*n:]
	count := binary.BigEndian.Uint32(rest)
	size := int(binary.BigEndian.Uint32(rest[8:]))
	list := rest[12:]
	if len(list) != size {
		return nil, true, fmt.Errorf("decode sketch: sparse list of %d bytes, header says %d", len(list), size)
	}
	var last uint32
	for i, got := 0, uint32(0); i < len(list); got++ {
		var x uint32
		var shift uint
		for ; i < len(list) && list[i]&0x80 != 0; i++ {
			x |= uint32(list[i]&0x7f) << shift
			shift += 7
		}
		if i == len(list) {
			return nil, true, errors.New("decode sketch: sparse list ends inside a value")
		}
		x |= uint32(list[i]) << shift
		i++
		last += x
		set = append(set, last)
		if i == len(list) && got+1 != count {
			return nil, true, fmt.Errorf("decode sketch: sparse list of %d values, header says %d", got+1, count)
		}
	}
	return set, true, nil
}

// sparseListBytes is how many bytes the sparse list of set (sorted,
// distinct) takes: varint deltas.
func sparseListBytes(set []uint32) int {
	n, last := 0, uint32(0)
	for _, v := range set {
		n += (bits.Len32(v-last|1) + 6) / 7
		last = v
	}
	return n
}

// encodeHash is the library's sparse encoding of hash x at rollup
// precision (hyperloglog's encodeHash).
func encodeHash(x uint64) uint32 {
	const p = RollupPrecision
	idx := uint32(x >> (64 - sketchPP))
	if (x>>(64-sketchPP))&(1<<(sketchPP-p)-1) == 0 {
		zeros := bits.LeadingZeros64((x<<sketchPP)|(1<<sketchPP-1)) + 1
		return idx<<7 | uint32(zeros<<1) | 1
	}
	return idx << 1
}

// hashOfEncoded is a hash whose sparse encoding is k, so a sketch holding
// exactly a set of encoded hashes is built by the library's own InsertHash.
func hashOfEncoded(k uint32) uint64 {
	if k&1 == 0 {
		return uint64(k>>1) << (64 - sketchPP)
	}
	x := uint64(k>>7) << (64 - sketchPP)
	// zeros-1 leading zeros in the low 39 bits shifted to the top.
	if z := int(k>>1&0x3f) - 1; z < 64-sketchPP {
		x |= 1 << (64 - sketchPP - 1 - z)
	}
	return x
}

// registerOf is the dense register index and rank of encoded hash k
// (hyperloglog's decodeHash).
func registerOf(k uint32) (uint32, uint8) {
	const p = RollupPrecision
	if k&1 == 1 {
		return k >> (32 - p), uint8(k>>1&0x3f) + sketchPP - p
	}
	return k >> (sketchPP - p + 1), uint8(bits.LeadingZeros64(uint64(k<<(32-sketchPP+p-1))) - 31)
}

// registerOfHash is the dense register index and rank of hash x.
func registerOfHash(x uint64) uint32 { return uint32(x >> (64 - RollupPrecision)) }

// encodedOf returns the encoded hashes of a sparse sketch sk (an
// aggregation's delta: small; nil: empty), sorted.
func encodedOf(sk *hyperloglog.Sketch) ([]uint32, error) {
	if sk == nil || sk.Estimate() == 0 {
		return nil, nil
	}
	b, err := sk.MarshalBinary()
	if err != nil {
		return nil, fmt.Errorf("encode sketch: %w", err)
	}
	set, sparse, err := sparseSet(b)
	if err != nil {
		return nil, err
	}
	if !sparse {
		return nil, errors.New("BUG: a subject's or competitors' sketch turned dense")
	}
	return set, nil
}

// sketchWithout returns the serialization of stored (nil: empty) without
// the visitors of subject, given others: the remaining visitors of the
// cell whose hashes share a register index with one of subject's (more do
// no harm; nil: none). Both are sparse sketches built by the cell's aggregation. The
// result is what the library serializes for a sketch built from the
// remaining visitors (nil when none is left), unless the outcome is
// sketchRecompute: then the caller builds it from the rows.
func sketchWithout(stored []byte, subject, others *hyperloglog.Sketch) ([]byte, sketchOutcome, error) {
	subj, err := encodedOf(subject)
	if err != nil || len(subj) == 0 || len(stored) == 0 {
		return stored, sketchKept, err
	}
	keep, err := encodedOf(others)
	if err != nil {
		return nil, 0, err
	}
	set, sparse, err := sparseSet(stored)
	if err != nil {
		return nil, 0, err
	}
	if sparse {
		if sparseListBytes(set) > denseAfter {
			// Built in some order it could have turned dense.
			return nil, sketchRecompute, nil
		}
		out := slices.DeleteFunc(set, func(k uint32) bool {
			_, gone := slices.BinarySearch(subj, k)
			if !gone {
				return false
			}
			_, kept := slices.BinarySearch(keep, k)
			return !kept
		})
		if len(out) == len(set) {
			return stored, sketchKept, nil
		}
		sk := NewSketch()
		for _, k := range out {
			sk.InsertHash(hashOfEncoded(k))
		}
		b, err := encodeSketch(sk)
		if err != nil {
			return nil, 0, err
		}
		// The remaining set is smaller than one that stayed sparse at
		// every check, so it stays sparse in any order.
		return b, sketchSparse, nil
	}
	if len(stored) != sketchHeader+4+sketchM {
		return nil, 0, fmt.Errorf("decode sketch: dense sketch of %d bytes", len(stored))
	}
	regs := slices.Clone(stored[sketchHeader+4:])
	changed := false
	for _, k := range subj {
		i, r := registerOf(k)
		if regs[i] != r {
			continue // set by another visitor, whose rank is higher
		}
		top := uint8(0)
		for _, o := range keep {
			if j, q := registerOf(o); j == i {
				top = max(top, q)
			}
		}
		if top < r {
			regs[i], changed = top, true
		}
	}
	sk := NewDenseSketch()
	for i, r := range regs {
		if r > 0 {
			sk.InsertHash(uint64(i)<<(64-RollupPrecision) | hashRank(r))
		}
	}
	if sk.Estimate() < denseSure {
		return nil, sketchRecompute, nil
	}
	if !changed {
		return stored, sketchKept, nil
	}
	b, err := encodeSketch(sk)
	if err != nil {
		return nil, 0, err
	}
	return b, sketchDense, nil
}

// hashRank is the low bits of a hash whose dense rank is r.
func hashRank(r uint8) uint64 {
	const low = 64 - RollupPrecision
	if int(r) > low {
		return 0
	}
	return 1 << (low - int(r))
}
