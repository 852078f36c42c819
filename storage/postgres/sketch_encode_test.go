package postgres

import (
	"bytes"
	"math/rand/v2"
	"slices"
	"testing"
)

// sparseEncodingByBytes is sparseEncoding as it was written first: each
// difference appended as a varint byte by byte.
func sparseEncodingByBytes(set []uint32) []byte {
	out := make([]byte, sparseHeader, sparseHeader+sparseListBytes(set))
	last := uint32(0)
	for _, k := range set {
		out = appendVarint(out, k-last)
		last = k
	}
	putSparseHeader(out, uint32(len(set)), last)
	return out
}

// sparseEncoding writes each difference's varint at once: the bytes of
// appending it byte by byte, for sets whose differences take every
// varint length (1 to 5 bytes), and for encoded visitor hashes; and the
// library's serialization of a sketch of those hashes.
func TestSparseEncodingByBytes(t *testing.T) {
	rng := rand.New(rand.NewPCG(9, 10))
	for round := range 3000 {
		n := 1 + rng.IntN(300)
		set := make([]uint32, n)
		for i := range set {
			switch round % 3 {
			case 0: // differences of every length, up to 2^32-1
				set[i] = rng.Uint32() >> rng.IntN(32)
			case 1: // encoded visitor hashes, as cells hold them
				set[i] = encodeHash(VisitorHash(rng.Uint64()))
			default: // crowded: 1- and 2-byte differences
				set[i] = uint32(rng.IntN(4 * n))
			}
		}
		slices.Sort(set)
		set = slices.Compact(set)
		got, want := sparseEncoding(set), sparseEncodingByBytes(set)
		if !bytes.Equal(got, want) || len(got) != len(want) || cap(got) != cap(want) {
			t.Fatalf("round %d: sparseEncoding(%v) = % x (cap %d), byte by byte % x (cap %d)", round, set, got, cap(got), want, cap(want))
		}
		if round%3 == 1 && sparseListBytes(set) <= denseAfter {
			sk := NewSketch()
			for _, k := range set {
				sk.InsertHash(hashOfEncoded(k))
			}
			lib, err := encodeSketch(sk)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, lib) {
				t.Fatalf("round %d: sparseEncoding % x, the library % x", round, got, lib)
			}
		}
	}
}
