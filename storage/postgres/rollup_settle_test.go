package postgres

import (
	"bytes"
	"math/rand/v2"
	"slices"
	"testing"
)

// TestSparseEncodingIn: sparseEncodingIn, through one list buffer grown
// as sets get longer, gives sparseEncoding's bytes for sets of every
// length up to past a buffer's first size, of close and far values
// (differences of one to five varint bytes), in an arena or not; the
// encodings in the arena stay as they were through the later ones.
func TestSparseEncodingIn(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 8))
	var list []byte
	var arena sketchArena
	var inArena, wants [][]byte
	for n := 1; n < 700; n += 1 + n/20 {
		for _, spread := range []uint32{1 << 6, 1 << 13, 1 << 20, 1 << 27, 1<<32 - 1} {
			set := make([]uint32, 0, n)
			for range n {
				set = append(set, rng.Uint32N(spread))
			}
			slices.Sort(set)
			set = slices.Compact(set)
			want := sparseEncoding(set)
			if got := sparseEncodingIn(set, &list, nil); !bytes.Equal(got, want) {
				t.Fatalf("%d values below %d: sparseEncodingIn %x, sparseEncoding %x", len(set), spread, got, want)
			}
			got := sparseEncodingIn(set, &list, &arena)
			if !bytes.Equal(got, want) {
				t.Fatalf("%d values below %d: sparseEncodingIn in an arena %x, sparseEncoding %x", len(set), spread, got, want)
			}
			inArena, wants = append(inArena, got), append(wants, want)
		}
	}
	for i := range wants {
		if !bytes.Equal(inArena[i], wants[i]) {
			t.Fatalf("encoding %d in the arena changed by later ones: %x, want %x", i, inArena[i], wants[i])
		}
	}
}

// TestSettleWithListEqualsSettle: cells' sketches settled with a list
// buffer (the lists encoded once) hold settle's bytes, for empty deltas
// and deltas held as serializations (a derivation's later chunks), sets
// with repeats, active and new sets equal to the users set or not, and
// sets too long for a sparse list.
func TestSettleWithListEqualsSettle(t *testing.T) {
	rng := rand.New(rand.NewPCG(9, 10))
	var list []byte
	var arena sketchArena
	for round := range 300 {
		var a, b cellSketches
		for range 1 + rng.IntN(3) { // chunks
			var sets [3][]uint32
			n := rng.IntN(60)
			switch rng.IntN(10) {
			case 0:
				n = 4000 + rng.IntN(2000) // past a sparse list
			case 1:
				n = 300 + rng.IntN(500)
			}
			for range n {
				k := encodeHash(VisitorHash(uint64(rng.IntN(3 * (n + 1)))))
				sets[0] = append(sets[0], k)
				if rng.IntN(4) != 0 {
					sets[1] = append(sets[1], k)
				}
				if rng.IntN(5) == 0 {
					sets[2] = append(sets[2], k)
				}
			}
			if rng.IntN(2) == 0 {
				sets[1] = slices.Clone(sets[0])
			}
			other := [3][]uint32{slices.Clone(sets[0]), slices.Clone(sets[1]), slices.Clone(sets[2])}
			a.settleWith(&sets, &list, &arena)
			b.settle(&other)
		}
		for j := range 3 {
			ga, err := a.deltaBytes(j)
			if err != nil {
				t.Fatal(err)
			}
			gb, err := b.deltaBytes(j)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(ga, gb) {
				t.Fatalf("round %d, sketch %d: settled with a list %x, without %x", round, j, ga, gb)
			}
		}
	}
}
