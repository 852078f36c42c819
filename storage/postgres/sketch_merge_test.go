package postgres

import (
	"math/rand/v2"
	"testing"
)

// TestSketchMergesEqualLibrary: MergeSketches (sparse inputs read as their
// encoded hashes) holds what the library's merge of each input holds, and
// SparseUnionEstimate gives its estimate while the union stays sparse and
// declines once it would not, over unions from a few hashes to past the
// sparse threshold, with inputs sharing hashes and a dense one among them.
func TestSketchMergesEqualLibrary(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 8))
	for _, size := range []int{1, 5, 40, 300, 2000, 6000, 20000} {
		var col [][]byte
		shared := rng.Uint64()
		for j := range 6 {
			sk := NewSketch()
			sk.InsertHash(VisitorHash(shared))
			n := size / 6
			if j == 2 && size >= 20000 {
				n = size // a dense input among sparse ones
			}
			for range n {
				sk.InsertHash(VisitorHash(rng.Uint64()))
			}
			b, err := encodeSketch(sk)
			if err != nil {
				t.Fatal(err)
			}
			col = append(col, b)
		}
		if size >= 20000 && col[2][3] != 0 {
			t.Fatal("the large input is not dense: the case proves nothing of dense inputs")
		}
		want := NewSketch()
		for _, b := range col {
			if err := MergeSketch(want, b); err != nil {
				t.Fatal(err)
			}
		}
		got := NewSketch()
		if err := MergeSketches(got, col); err != nil {
			t.Fatal(err)
		}
		if got.Estimate() != want.Estimate() {
			t.Errorf("%d hashes: MergeSketches estimates %d, the library's merge %d", size, got.Estimate(), want.Estimate())
		}
		est, ok, err := SparseUnionEstimate(col)
		if err != nil {
			t.Fatal(err)
		}
		b, err := want.MarshalBinary()
		if err != nil {
			t.Fatal(err)
		}
		if wantSparse := b[3] == 1; ok != wantSparse {
			t.Fatalf("%d hashes: counted from the hashes: %v, the merged sketch sparse: %v", size, ok, wantSparse)
		}
		if ok && est != want.Estimate() {
			t.Errorf("%d hashes: SparseUnionEstimate %d, the library's merge %d", size, est, want.Estimate())
		}
	}
}
