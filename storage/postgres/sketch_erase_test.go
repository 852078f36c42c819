package postgres

import (
	"bytes"
	"math/rand/v2"
	"testing"

	"github.com/axiomhq/hyperloglog"
)

// sketchOf is what a rebuild stores for hashes: inserted one by one in
// their order, serialized.
func sketchOf(t *testing.T, hashes []uint64) []byte {
	t.Helper()
	sk := NewSketch()
	for _, h := range hashes {
		sk.InsertHash(h)
	}
	b, err := encodeSketch(sk)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func deltaOf(hashes []uint64) *hyperloglog.Sketch {
	sk := NewSketch()
	for _, h := range hashes {
		sk.InsertHash(h)
	}
	return sk
}

// TestEncodingMatchesLibrary: the encoding this package reads sketches by
// is the library's: a sketch of hashes holds exactly their encodings, the
// hash made from an encoding encodes back to it, and a dense register is
// the one its encoding decodes to.
func TestEncodingMatchesLibrary(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	var hashes []uint64
	for range 3000 {
		h := rng.Uint64()
		if rng.IntN(50) == 0 {
			h &^= (1<<11 - 1) << 39 // flagged: the index's low bits zero
			h &^= 1<<uint(rng.IntN(39)) - 1
		}
		hashes = append(hashes, h)
	}
	set, sparse, err := sparseSet(sketchOf(t, hashes))
	if err != nil || !sparse {
		t.Fatalf("sparse set: %v sparse %v", err, sparse)
	}
	want := map[uint32]bool{}
	for _, h := range hashes {
		k := encodeHash(h)
		want[k] = true
		if got := encodeHash(hashOfEncoded(k)); got != k {
			t.Fatalf("hash of encoding %x encodes to %x", k, got)
		}
		dense := NewDenseSketch()
		dense.InsertHash(h)
		b, _ := dense.MarshalBinary()
		i, r := registerOf(k)
		if b[sketchHeader+4+int(i)] != r || i != registerOfHash(h) {
			t.Fatalf("hash %x: register %d rank %d from its encoding, the library sets rank %d there", h, i, r, b[sketchHeader+4+int(i)])
		}
	}
	if len(set) != len(want) {
		t.Fatalf("parsed %d encoded hashes, the sketch holds %d", len(set), len(want))
	}
	for _, k := range set {
		if !want[k] {
			t.Fatalf("parsed %x, which no hash encodes to", k)
		}
	}
	if sparseListBytes(set) != len(sketchOf(t, hashes))-sketchHeader-4-12 {
		t.Fatalf("list bytes %d, serialized %d", sparseListBytes(set), len(sketchOf(t, hashes))-sketchHeader-16)
	}
}

// TestSketchWithoutEqualsRebuild is the oracle of sketchWithout: for each
// case the result equals, byte for byte, the sketch built from the
// remaining hashes, or the outcome asks for that rebuild.
func TestSketchWithoutEqualsRebuild(t *testing.T) {
	rng := rand.New(rand.NewPCG(19, 19))
	random := func(n int) []uint64 {
		out := make([]uint64, n)
		for i := range out {
			out[i] = rng.Uint64()
		}
		return out
	}
	// alone returns a hash at a register none of others uses.
	alone := func(others []uint64, rank uint8) uint64 {
		used := map[uint32]bool{}
		for _, h := range others {
			used[registerOfHash(h)] = true
		}
		for {
			i := uint32(rng.IntN(sketchM))
			if !used[i] {
				return uint64(i)<<(64-RollupPrecision) | hashRank(rank)
			}
		}
	}
	// beside returns a hash at h's register with rank r.
	beside := func(h uint64, r uint8) uint64 {
		return uint64(registerOfHash(h))<<(64-RollupPrecision) | hashRank(r) | (hashRank(r)-1)&0x5
	}
	big := random(30000)
	mid := random(9000)
	small := random(200)
	f := func(name string, others, subject []uint64, want sketchOutcome) {
		t.Helper()
		stored := sketchOf(t, append(append([]uint64{}, others...), subject...))
		var comp []uint64
		regs := map[uint32]bool{}
		for _, h := range subject {
			regs[registerOfHash(h)] = true
		}
		for _, h := range others {
			if regs[registerOfHash(h)] {
				comp = append(comp, h)
			}
		}
		got, outcome, err := sketchWithout(stored, deltaOf(subject), deltaOf(comp))
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if outcome != want {
			t.Fatalf("%s: outcome %d, want %d", name, outcome, want)
		}
		if outcome == sketchRecompute {
			return
		}
		rebuilt := sketchOf(t, others)
		if !bytes.Equal(got, rebuilt) {
			t.Fatalf("%s: %d bytes differ from the %d of the rebuild from the remaining hashes", name, len(got), len(rebuilt))
		}
	}
	f("small cell, sparse", small, []uint64{rng.Uint64()}, sketchSparse)
	f("the only visitor", nil, []uint64{rng.Uint64()}, sketchSparse)
	f("two keys of the subject", small, []uint64{rng.Uint64(), rng.Uint64()}, sketchSparse)
	// Another visitor with the same encoded hash keeps it.
	twin := small[7]&^(1<<39-1) | 12345
	f("sparse, a remaining visitor shares the encoding", small, []uint64{twin}, sketchKept)
	// Dense: the subject alone at its register lowers it to zero.
	f("dense, the subject alone at its register", big, []uint64{alone(big, 9)}, sketchDense)
	// Dense: another visitor at the register with a lower rank: the
	// register drops to that rank.
	lonely := alone(big, 12)
	f("dense, the subject above another at its register", append(append([]uint64{}, big...), beside(lonely, 3)), []uint64{lonely}, sketchDense)
	// Dense: another visitor with the same rank keeps the register.
	lonely = alone(big, 7)
	f("dense, another visitor with the subject's rank", append(append([]uint64{}, big...), beside(lonely, 7)), []uint64{lonely}, sketchKept)
	// Dense: a higher rank at the register keeps it.
	lonely = alone(big, 2)
	f("dense, another visitor above the subject", append(append([]uint64{}, big...), beside(lonely, 6)), []uint64{lonely}, sketchKept)
	// Near the threshold the form depends on the order: recompute.
	f("dense near the threshold", mid, []uint64{alone(mid, 5)}, sketchRecompute)
	if beside(lonely, 6) == lonely || registerOfHash(beside(lonely, 6)) != registerOfHash(lonely) {
		t.Fatal("beside made a hash at another register")
	}
}
