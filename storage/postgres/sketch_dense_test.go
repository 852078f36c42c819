package postgres

import (
	"bytes"
	"math"
	"math/rand/v2"
	"testing"
)

// TestMergeDenseEqualsLibrary: MergeDense holds what NewDenseSketch with
// MergeSketches holds (the library's merge of dense inputs), register for
// register, for dense and sparse inputs, flagged hashes (whose rank is in
// the encoding), empty inputs and inputs sharing visitors.
func TestMergeDenseEqualsLibrary(t *testing.T) {
	rng := rand.New(rand.NewPCG(14, 99))
	hash := func() uint64 {
		h := VisitorHash(rng.Uint64())
		if rng.IntN(30) == 0 {
			h &^= (1<<11 - 1) << 39 // flagged: the rank is in the encoding
			h &^= 1<<uint(rng.IntN(39)) - 1
		}
		return h
	}
	for _, sizes := range [][]int{{0, 300, 5000}, {20000, 20000, 1}, {40, 40, 40, 40, 40, 40, 40, 40, 40, 40, 40, 40}, {9000, 0, 200, 30000, 7}} {
		var col [][]byte
		shared := hash()
		for _, n := range sizes {
			sk := NewSketch()
			if n > 0 {
				sk.InsertHash(shared)
			}
			for range n {
				sk.InsertHash(hash())
			}
			b, err := encodeSketch(sk)
			if err != nil {
				t.Fatal(err)
			}
			col = append(col, b)
		}
		// A sparse sketch serialized with hashes still buffered.
		buffered := NewSketch()
		for range 50 {
			buffered.InsertHash(hash())
		}
		b, err := buffered.MarshalBinary()
		if err != nil {
			t.Fatal(err)
		}
		if b[3] != 1 || b[4]|b[5]|b[6]|b[7] == 0 {
			t.Fatal("the buffered input holds no buffered hash: the case proves nothing")
		}
		col = append(col, nil, b)
		want := NewDenseSketch()
		if err := MergeSketches(want, col); err != nil {
			t.Fatal(err)
		}
		got, err := MergeDense(col)
		if err != nil {
			t.Fatal(err)
		}
		wb, err := want.MarshalBinary()
		if err != nil {
			t.Fatal(err)
		}
		gb, err := got.MarshalBinary()
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(gb, wb) || got.Estimate() != want.Estimate() {
			t.Errorf("sizes %v: MergeDense estimates %d, the library's merge %d (same serialization: %v)", sizes, got.Estimate(), want.Estimate(), bytes.Equal(gb, wb))
		}
		// The count alone, from the merged registers: the library's
		// merge's estimate (EstimateSketch equals Estimate).
		est, err := DenseUnionEstimate(col)
		if err != nil {
			t.Fatal(err)
		}
		if est != want.Estimate() || est != EstimateSketch(got) {
			t.Errorf("sizes %v: DenseUnionEstimate %d, the library's merge estimates %d", sizes, est, want.Estimate())
		}
	}
}

// TestMaxRegisters: the eight-at-a-time maxima are the byte-wise ones,
// at every rank a register holds and for a tail shorter than eight.
func TestMaxRegisters(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for _, n := range []int{0, 7, 8, 64, 1003} {
		a, b := make([]byte, n), make([]byte, n)
		for i := range a {
			a[i], b[i] = byte(rng.IntN(128)), byte(rng.IntN(128))
		}
		want := make([]byte, n)
		for i := range want {
			want[i] = max(a[i], b[i])
		}
		maxRegisters(a, b)
		if !bytes.Equal(a, want) {
			t.Errorf("%d registers: got %v, want %v", n, a, want)
		}
	}
}

// TestEstimateSketchEqualsLibrary: EstimateSketch gives the library's
// Estimate for dense sketches from nearly empty (most registers zero, the
// bias correction's range) to saturated, and for sparse ones.
func TestEstimateSketchEqualsLibrary(t *testing.T) {
	if RollupPrecision != 14 {
		t.Fatalf("libraryBeta is the library's beta14; the rollups' precision is %d", RollupPrecision)
	}
	rng := rand.New(rand.NewPCG(3, 4))
	for _, n := range []int{0, 1, 10, 500, 3000, 12000, 16000, 40000, 100_000, 1_000_000} {
		for _, dense := range []bool{true, false} {
			sk := NewSketch()
			if dense {
				sk = NewDenseSketch()
			}
			for range n {
				sk.InsertHash(VisitorHash(rng.Uint64()))
			}
			if got, want := EstimateSketch(sk), sk.Estimate(); got != want {
				t.Errorf("%d hashes (dense %v): EstimateSketch %d, the library's %d", n, dense, got, want)
			}
		}
	}
	// Registers at random ranks, zeros among them.
	for range 200 {
		regs := make([]byte, sketchM)
		for i := range regs {
			if rng.IntN(4) > 0 {
				regs[i] = byte(rng.IntN(20))
			}
		}
		sk := NewSketch()
		if err := sk.UnmarshalBinary(denseEncoding(regs)); err != nil {
			t.Fatal(err)
		}
		if got, want := EstimateSketch(sk), sk.Estimate(); got != want {
			t.Fatalf("random registers: EstimateSketch %d, the library's %d", got, want)
		}
	}
}

// TestRegisterSumEqualsLibraryOrder: the sum of 2^-v over registers taken
// from their counts per rank is the library's sum in its order, bit for
// bit, and the zeros are counted, for registers of every rank up to the
// exact bound, above it (the library's order) and lengths around 2^14.
func TestRegisterSumEqualsLibraryOrder(t *testing.T) {
	rng := rand.New(rand.NewPCG(39, 14))
	for _, c := range []struct{ n, top int }{
		{0, 0}, {3, 5}, {sketchM, 0}, {sketchM, 1}, {sketchM, 12}, {sketchM, exactRank}, {sketchM, exactRank + 1},
		{sketchM, 51}, {sketchM, 255}, {sketchM - 1, exactRank}, {sketchM + 1, exactRank}, {sketchM + 3, 20},
	} {
		for round := range 20 {
			regs := make([]byte, c.n)
			for i := range regs {
				// Mostly small ranks, as a sketch holds them, some up to top.
				switch rng.IntN(4) {
				case 0:
					regs[i] = byte(rng.IntN(c.top + 1))
				default:
					regs[i] = byte(min(c.top, rng.IntN(8)))
				}
			}
			if c.n > 0 && round%2 == 0 {
				regs[rng.IntN(c.n)] = byte(c.top)
			}
			want, wantZeros := 0.0, 0
			for _, v := range regs {
				want += inversePow2[v]
				if v == 0 {
					wantZeros++
				}
			}
			got, zeros := registerSum(regs)
			if math.Float64bits(got) != math.Float64bits(want) || zeros != wantZeros {
				t.Fatalf("%d registers up to %d: sum %v (%d zeros), the library's order %v (%d)", c.n, c.top, got, zeros, want, wantZeros)
			}
		}
	}
}
