package postgres

import (
	"encoding/binary"
	"fmt"
	"math"
	"sync"

	"github.com/axiomhq/hyperloglog"
)

// Merging many serialized sketches into a dense one (a top page's daily
// active sketches over a month, most of them dense at ten million events)
// through the library decodes each into a sketch of its own, 16 KiB of
// registers allocated and copied per input, before taking the maxima.
// MergeDense takes the maxima straight from the serializations: a dense
// one's registers eight at a time, a sparse one's encoded hashes as the
// library's decodeHash places them (registerOf), and decodes the result
// once.

// MergeDense is the dense sketch merged from the serialized sketches of
// col (nil: empty): what merging each into NewDenseSketch() holds
// (MergeSketches), register for register.
func MergeDense(col [][]byte) (*hyperloglog.Sketch, error) {
	regs := getRegisters()
	defer registersPool.Put(regs)
	sk, err := denseUnion(col, regs[:])
	if err != nil || sk != nil {
		return sk, err
	}
	sk = NewSketch()
	if err := sk.UnmarshalBinary(denseEncoding(regs[:])); err != nil {
		return nil, fmt.Errorf("decode merged sketch: %w", err)
	}
	return sk, nil
}

// DenseUnionEstimate is EstimateSketch of MergeDense(col), computed from
// the merged registers without decoding them into a sketch and encoding
// it again to estimate (a sketch and three copies of its 16 KiB of
// registers per merge), for a caller that needs only the count.
func DenseUnionEstimate(col [][]byte) (uint64, error) {
	regs := getRegisters()
	defer registersPool.Put(regs)
	sk, err := denseUnion(col, regs[:])
	if err != nil {
		return 0, err
	}
	if sk != nil {
		return EstimateSketch(sk), nil
	}
	return denseEstimate(regs[:]), nil
}

// registersPool holds dense registers for merges that copy out or only
// read what they merged (a page of ten groups merges ten at once).
var registersPool = sync.Pool{New: func() any { return new([sketchM]byte) }}

// getRegisters are dense registers from registersPool, all zero.
func getRegisters() *[sketchM]byte {
	regs := registersPool.Get().(*[sketchM]byte)
	clear(regs[:])
	return regs
}

// denseUnion merges the serialized sketches of col into regs (dense
// registers, zero), MergeDense's, or, for a dense form it does not read,
// into the library's sketch sk (regs then not to be used).
func denseUnion(col [][]byte, regs []byte) (sk *hyperloglog.Sketch, err error) {
	var set []uint32
	for _, b := range col {
		if len(b) == 0 {
			continue
		}
		if f, ok := parseSketchForm(b); ok {
			if !f.sparse {
				maxRegisters(regs, f.regs)
				continue
			}
			if sparseRegisters(regs, f.list) {
				continue
			}
		}
		// Other forms (a sparse one with buffered hashes): read through
		// appendSparse.
		var sparse bool
		if set, sparse, err = appendSparse(set[:0], b); err != nil {
			return nil, err
		}
		if !sparse {
			// A dense form parseSketchForm does not read: the library's.
			sk := NewDenseSketch()
			if err := MergeSketches(sk, col); err != nil {
				return nil, err
			}
			return sk, nil
		}
		for _, k := range set {
			i, r := registerOf(k)
			regs[i] = max(regs[i], r)
		}
	}
	return nil, nil
}

// maxRegisters raises each of dst's registers to src's (as long), eight
// at a time: registers hold ranks below 128, so a byte's top bit is free
// to tell, per byte, whether dst's is at least src's.
func maxRegisters(dst, src []byte) {
	const high = 0x8080808080808080
	i := 0
	for ; i+8 <= len(src); i += 8 {
		a, b := binary.LittleEndian.Uint64(dst[i:]), binary.LittleEndian.Uint64(src[i:])
		ge := ((a | high) - b) & high // top bit of a byte: a's ≥ b's
		keep := (ge >> 7) * 0xff      // 0xff where a's ≥ b's
		binary.LittleEndian.PutUint64(dst[i:], a&keep|b&^keep)
	}
	for ; i < len(src); i++ {
		dst[i] = max(dst[i], src[i])
	}
}

// EstimateSketch is sk.Estimate(), computed for a dense sketch without
// the library's math.Pow per register (16,384 of them per estimate, the
// better part of a report counting the users of many large groups): the
// same terms (inversePow2), added in the same order, and the same
// formula and bias correction (libraryBeta), so the same number
// (TestEstimateSketchEqualsLibrary).
func EstimateSketch(sk *hyperloglog.Sketch) uint64 {
	b, err := sk.MarshalBinary()
	if err != nil {
		return sk.Estimate()
	}
	f, ok := parseSketchForm(b)
	if !ok || f.sparse {
		return sk.Estimate()
	}
	return denseEstimate(f.regs)
}

// inversePow2 are the terms the library's estimate adds per register
// rank: 1.0 / math.Pow(2.0, rank).
var inversePow2 = func() (t [256]float64) {
	for v := range t {
		t[v] = 1.0 / math.Pow(2.0, float64(v))
	}
	return t
}()

// sketchAlpha is the library's alpha for the rollups' m, computed at run
// time as the library does (a constant expression would be folded at
// another precision).
var sketchAlpha = libraryAlpha(float64(sketchM))

// libraryAlpha is hyperloglog's alpha(m) for m above 64.
func libraryAlpha(m float64) float64 { return 0.7213 / (1 + 1.079/m) }

// exactRank is the largest register value denseEstimate sums exactly
// from counts: 2^14 registers of 2^-exactRank units stay within the 53
// bits a float64 holds exactly.
const exactRank = 39

// denseSum is the library's sum of 2^-v over registers regs, in its order.
func denseSum(regs []byte) float64 {
	var sum float64
	for _, v := range regs {
		sum += inversePow2[v]
	}
	return sum
}

// denseEstimate is the library's Estimate of dense registers regs.
//
// The library adds 2^-v for each register v in turn, a chain of float
// additions. Where every register is at most exactRank and there are at
// most 2^14 of them (the rollups' 16,384 registers hold ranks above 39
// only after some 2^39 visitors), each partial sum is a multiple of
// 2^-exactRank below 2^53 of them, so every addition is exact and the sum
// is the same in any order: it is taken from the registers' counts per
// rank in integers (registerSum). Otherwise the library's order
// (denseSum).
func denseEstimate(regs []byte) uint64 {
	sum, zeros := registerSum(regs)
	ez := float64(zeros)
	m := float64(len(regs))
	est := sketchAlpha * m * (m - ez) / (sum + libraryBeta(ez))
	return uint64(est + 0.5)
}

// registerSum is denseSum(regs), and how many of regs are zero.
func registerSum(regs []byte) (sum float64, zeros int) {
	// Counts per rank, in four tables taken in turn so that runs of equal
	// registers do not wait on one counter.
	var hists [4][256]uint32
	i := 0
	for ; i+4 <= len(regs); i += 4 {
		hists[0][regs[i]]++
		hists[1][regs[i+1]]++
		hists[2][regs[i+2]]++
		hists[3][regs[i+3]]++
	}
	for ; i < len(regs); i++ {
		hists[0][regs[i]]++
	}
	var hist [256]uint32
	for v := range hist {
		hist[v] = hists[0][v] + hists[1][v] + hists[2][v] + hists[3][v]
	}
	top := len(hist) - 1
	for top > 0 && hist[top] == 0 {
		top--
	}
	if top > exactRank || len(regs) > 1<<14 {
		return denseSum(regs), int(hist[0])
	}
	var k uint64
	for v := range top + 1 {
		k += uint64(hist[v]) << (exactRank - v)
	}
	return float64(k) / (1 << exactRank), int(hist[0])
}

// libraryBeta is hyperloglog's bias correction beta14 (precision 14,
// RollupPrecision), term for term.
func libraryBeta(ez float64) float64 {
	zl := math.Log(ez + 1)
	return -0.371009760230692*ez +
		0.00978811941207509*zl +
		0.185796293324165*math.Pow(zl, 2) +
		0.203015527328432*math.Pow(zl, 3) +
		-0.116710521803686*math.Pow(zl, 4) +
		0.0431106699492820*math.Pow(zl, 5) +
		-0.00599583540511831*math.Pow(zl, 6) +
		0.000449704299509437*math.Pow(zl, 7)
}
