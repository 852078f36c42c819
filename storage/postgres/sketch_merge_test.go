package postgres

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/axiomhq/hyperloglog"
)

// libraryMerge is the merge through the library: the stored sketch
// decoded, the delta merged in, serialized.
func libraryMerge(t *testing.T, stored []byte, delta *hyperloglog.Sketch) []byte {
	t.Helper()
	sk := NewSketch()
	if err := sk.UnmarshalBinary(stored); err != nil {
		t.Fatal(err)
	}
	if err := sk.Merge(delta); err != nil {
		t.Fatal(err)
	}
	b, err := encodeSketch(sk)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestMergeEncodedEqualsLibrary: a cell's merge of its delta into a stored
// sketch, done on their serializations, is byte for byte the library's,
// for sparse and dense sketches on both sides, deltas of visitors already
// stored, and sizes around the sparse list's turn to dense (a stored
// sparse list longer than 2^14 bytes, which the library turns dense when a
// delta buffers more than 163 hashes, and one that turns dense by the
// delta's hashes).
func TestMergeEncodedEqualsLibrary(t *testing.T) {
	rng := rand.New(rand.NewPCG(20, 26))
	random := func(n int) []uint64 {
		out := make([]uint64, n)
		for i := range out {
			h := rng.Uint64()
			if rng.IntN(40) == 0 {
				h &^= (1<<11 - 1) << 39 // flagged: the rank is in the encoding
				h &^= 1<<uint(rng.IntN(39)) - 1
			}
			out[i] = h
		}
		return out
	}
	var storedSizes []int
	for n := 1; n < 7000; n = n*3 + 1 {
		storedSizes = append(storedSizes, n)
	}
	for n := 7300; n <= 8300; n += 50 {
		storedSizes = append(storedSizes, n)
	}
	storedSizes = append(storedSizes, 20_000)
	var sparseOver, turned, kept, dense int
	for _, ns := range storedSizes {
		old := random(ns)
		stored := sketchOf(t, old)
		f, ok := parseSketchForm(stored)
		if !ok {
			t.Fatalf("%d stored: the library's serialization is not read", ns)
		}
		for _, nd := range []int{0, 1, 50, 163, 164, 400, 3000, 20_000} {
			for _, overlap := range []bool{false, true} {
				var hashes []uint64
				if overlap {
					for range nd {
						hashes = append(hashes, old[rng.IntN(len(old))])
					}
				} else {
					hashes = random(nd)
				}
				delta := deltaOf(hashes)
				want := libraryMerge(t, stored, delta.Clone())
				var c cellSketches
				if nd > 0 {
					c.sk[1] = delta
				}
				if err := c.merge(1, stored); err != nil {
					t.Fatal(err)
				}
				d, _ := c.deltaBytes(1)
				if _, ok := mergeEncoded(stored, d); !ok {
					t.Fatalf("%d stored, %d delta: not merged on the serializations", ns, nd)
				}
				if !bytes.Equal(c.enc[1], want) {
					t.Fatalf("%d stored, %d delta (overlap %v): merged %d bytes (sparse %v), the library %d (sparse %v)",
						ns, nd, overlap, len(c.enc[1]), c.enc[1][3] == 1, len(want), want[3] == 1)
				}
				if c.same[1] != bytes.Equal(want, stored) {
					t.Fatalf("%d stored, %d delta: same %v", ns, nd, c.same[1])
				}
				switch {
				case f.sparse && len(f.list) > denseAfter && want[3] == 0:
					sparseOver++
				case f.sparse && want[3] == 0:
					turned++
				case !f.sparse:
					dense++
				case c.same[1]:
					kept++
				}
			}
		}
	}
	if sparseOver == 0 || turned == 0 || kept == 0 || dense == 0 {
		t.Fatalf("cases: long sparse list turned dense %d, turned dense by the delta %d, unchanged %d, dense %d: each must occur",
			sparseOver, turned, kept, dense)
	}
}

// TestMergeEncodedOtherForms: serializations other than encodeSketch's
// (hashes still buffered, another precision, cut short) are not merged on
// the bytes, and a cell merges a buffered one through the library.
func TestMergeEncodedOtherForms(t *testing.T) {
	sk := NewSketch()
	for i := range uint64(100) {
		sk.InsertHash(VisitorHash(i))
	}
	buffered, err := sk.MarshalBinary() // no Estimate: the hashes stay buffered
	if err != nil {
		t.Fatal(err)
	}
	if binary.BigEndian.Uint32(buffered[sketchHeader:]) == 0 {
		t.Fatal("the serialization holds no buffered hashes")
	}
	canonical := sketchOf(t, []uint64{VisitorHash(7), VisitorHash(1000)})
	p16, err := hyperloglog.New16().MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	for name, b := range map[string][]byte{"buffered": buffered, "precision 16": p16, "cut short": canonical[:len(canonical)-1]} {
		if _, ok := mergeEncoded(b, canonical); ok {
			t.Errorf("%s stored: merged on the bytes", name)
		}
		if _, ok := mergeEncoded(canonical, b); ok {
			t.Errorf("%s delta: merged on the bytes", name)
		}
	}
	var c cellSketches
	c.add(0, VisitorHash(1000))
	if err := c.merge(0, buffered); err != nil {
		t.Fatal(err)
	}
	want := libraryMerge(t, buffered, deltaOf([]uint64{VisitorHash(1000)}))
	if !bytes.Equal(c.enc[0], want) {
		t.Fatal("a buffered stored sketch merged otherwise than by the library")
	}
}

// TestSettleEqualsLibrary: a derivation's cell serializes its delta
// sketches from their sorted encoded hashes as the library serializes a
// sketch of the same visitors, below and above the sparse list's turn to
// dense (above, the hashes go through the library), and a cell's later
// insert adds to what it settled.
func TestSettleEqualsLibrary(t *testing.T) {
	for _, n := range []int{1, 2, 163, 164, 1000, 7000, 9000, 20_000} {
		a := make(rollupAgg)
		k := rollupKey{site: 1, day: 20_000}
		c := newRollupCell()
		a[k] = c
		var all, active []uint64
		for i := range n {
			h := VisitorHash(uint64(i) * 7919)
			all = append(all, h)
			if i%3 == 0 {
				active = append(active, h)
			}
		}
		// The first visitor is both in seen and the cell's last; the
		// active ones are in seen twice, as a visitor with two runs in a
		// cell is, the second run active.
		c.seen = make([]seenVisitor, 0, n+n/3+1)
		for i, h := range all {
			c.seen = append(c.seen, seenOf(h, visitorUser))
			if i%3 == 0 {
				c.seen = append(c.seen, seenOf(h, visitorUser|visitorActive))
			}
		}
		c.lastVisitor, c.lastBits = all[0], visitorUser|visitorActive
		a.settle()
		checkDeltas(t, &c.sketches, all, active, nil)
		more := VisitorHash(1 << 40)
		c.sketches.add(0, more)
		got, err := c.sketches.deltaBytes(0)
		if err != nil {
			t.Fatal(err)
		}
		if want := sketchOf(t, append(all, more)); !bytes.Equal(got, want) {
			t.Fatalf("%d visitors and one added after: %d bytes, the library %d", n, len(got), len(want))
		}
	}
}

// TestCollectEqualsLibrary: session rollup cells collect their visitors'
// hashes and settle them when the deltas are read, in rounds past
// maxPending, into what the library serializes for the same visitors, and
// a stored sketch merges them as the library merges the inserted sketch.
func TestCollectEqualsLibrary(t *testing.T) {
	stored := sketchOf(t, []uint64{VisitorHash(1), VisitorHash(2)})
	for _, n := range []int{1, 100, maxPending - 1, maxPending, 3*maxPending + 5, 12_000} {
		var c cellSketches
		var all, fresh []uint64
		for i := range n {
			h := VisitorHash(uint64(i) * 31)
			all = append(all, h)
			bits := visitorUser
			if i%2 == 0 {
				bits |= visitorNew
				fresh = append(fresh, h)
			}
			c.collect(h, bits)
		}
		if err := c.merge(2, stored); err != nil {
			t.Fatal(err)
		}
		if want := libraryMerge(t, stored, deltaOf(fresh)); !bytes.Equal(c.enc[2], want) {
			t.Fatalf("%d sessions: merged new users differ from the library's", n)
		}
		checkDeltas(t, &c, all, nil)
	}
}

// checkDeltas fails unless c's delta sketches serialize as the library
// serializes sketches of the hashes of each (nil: empty).
func checkDeltas(t *testing.T, c *cellSketches, hashes ...[]uint64) {
	t.Helper()
	for j, hs := range hashes {
		got, err := c.deltaBytes(j)
		if err != nil {
			t.Fatal(err)
		}
		var want []byte
		if len(hs) > 0 {
			want = sketchOf(t, hs)
		}
		if !bytes.Equal(got, want) {
			t.Fatalf("%d visitors, sketch %d: %d bytes (sparse %v), the library %d", len(hashes[0]), j, len(got), len(got) > 3 && got[3] == 1, len(want))
		}
	}
}

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

// TestSettleSharedListsEqualLibrary: a cell whose every visitor is active
// (and new) sorts and serializes the users list once for the three delta
// sketches, which still serialize as the library serializes each, below
// and above the sparse list's turn to dense, and a later insert into one
// leaves the others as they were.
func TestSettleSharedListsEqualLibrary(t *testing.T) {
	for _, n := range []int{1, 2, 163, 1000, 9000} {
		a := make(rollupAgg)
		k := rollupKey{site: 1, day: 20_000}
		c := newRollupCell()
		a[k] = c
		var all []uint64
		for i := range n {
			h := VisitorHash(uint64(i) * 7919)
			all = append(all, h)
			c.seen = append(c.seen, seenOf(h, visitorUser|visitorActive|visitorNew))
		}
		a.settle()
		checkDeltas(t, &c.sketches, all, all, all)
		more := VisitorHash(1 << 40)
		c.sketches.add(1, more)
		checkDeltas(t, &c.sketches, all, append(slices.Clone(all), more), all)
	}
}

// TestMergeStoredEqualsMergeEach: a stored row's three sketches merged
// together (mergeStored, which takes the active sketch's result for a
// users or new users sketch of the same stored and delta bytes) give the
// encodings and kept marks of merging each on its own, for rows stored
// with the markers (expanded: the same bytes) and without, deltas of the
// same visitors and of others, sparse and dense.
func TestMergeStoredEqualsMergeEach(t *testing.T) {
	rng := rand.New(rand.NewPCG(6, 12))
	hashes := func(n int) []uint64 {
		out := make([]uint64, n)
		for i := range out {
			out[i] = VisitorHash(rng.Uint64())
		}
		return out
	}
	cellOf := func(users, active, fresh []uint64) *cellSketches {
		c := new(cellSketches)
		var lists [3][]uint32
		for j, hs := range [][]uint64{users, active, fresh} {
			for _, h := range hs {
				lists[j] = append(lists[j], encodeHash(h))
			}
		}
		c.settle(&lists)
		return c
	}
	for _, ns := range []int{0, 1, 50, 3000, 20_000} {
		for _, nd := range []int{0, 1, 40, 500} {
			storedUsers := hashes(ns)
			stored := [3][]byte{sketchOfOrNil(t, storedUsers), nil, nil}
			stored[1], stored[2] = stored[0], stored[0] // the markers, expanded
			delta := append(hashes(nd), storedUsers[:min(ns, 10)]...)
			other := hashes(nd / 2)
			for _, tc := range []struct {
				name                 string
				stored               [3][]byte
				users, active, fresh []uint64
			}{
				{"markers, one delta", stored, delta, delta, delta},
				{"markers, no new users", stored, delta, delta, nil},
				{"markers, other active", stored, delta, other, delta},
				{"copies", [3][]byte{slices.Clone(stored[0]), stored[1], slices.Clone(stored[2])}, delta, delta, delta},
				{"other stored users", [3][]byte{sketchOfOrNil(t, other), stored[1], nil}, delta, delta, delta},
			} {
				got, want := cellOf(tc.users, tc.active, tc.fresh), cellOf(tc.users, tc.active, tc.fresh)
				st := tc.stored
				if err := got.mergeStored(&st); err != nil {
					t.Fatal(err)
				}
				for j := range st {
					if err := want.merge(j, tc.stored[j]); err != nil {
						t.Fatal(err)
					}
				}
				for j := range st {
					if !bytes.Equal(got.enc[j], want.enc[j]) || got.same[j] != want.same[j] {
						t.Fatalf("%d stored, %d in the delta, %s: sketch %d merged to %d bytes (kept %v), alone %d (kept %v)",
							ns, nd, tc.name, j, len(got.enc[j]), got.same[j], len(want.enc[j]), want.same[j])
					}
				}
			}
		}
	}
}

// sketchOfOrNil is sketchOf, nil for no hashes.
func sketchOfOrNil(t *testing.T, hashes []uint64) []byte {
	if len(hashes) == 0 {
		return nil
	}
	return sketchOf(t, hashes)
}

// TestSettleAgainMergesEncodings: a cell settled chunk after chunk (a
// derivation's chunks) holds in its deltas the union of the chunks'
// visitors, merged into the serialization it holds (no library sketch),
// as the library serializes a sketch of them while the union stays
// sparse; the users list shared by the three deltas stays shared, and an
// active list of other visitors is merged on its own.
func TestSettleAgainMergesEncodings(t *testing.T) {
	for _, n := range []int{1, 40, 1000, 3000} {
		c := new(cellSketches)
		var all, active []uint64
		for round := range 3 {
			var lists [3][]uint32
			for i := range n {
				h := VisitorHash(uint64(round*n/2+i) * 7919) // half of each round's seen before
				lists[0], lists[2] = append(lists[0], encodeHash(h)), append(lists[2], encodeHash(h))
				if !slices.Contains(all, h) {
					all = append(all, h)
				}
				if round == 1 && i%2 == 0 {
					lists[1] = append(lists[1], encodeHash(h))
					active = append(active, h)
				}
			}
			if round != 1 {
				lists[1] = slices.Clone(lists[0])
				for i := range n {
					if h := VisitorHash(uint64(round*n/2+i) * 7919); !slices.Contains(active, h) {
						active = append(active, h)
					}
				}
			}
			c.settle(&lists)
			if c.sk != [3]*hyperloglog.Sketch{} {
				t.Fatalf("%d visitors, round %d: a delta went through the library", n, round)
			}
		}
		checkDeltas(t, c, all, active, all)
		if &c.delta[0][0] != &c.delta[2][0] {
			t.Fatalf("%d visitors: the users and new users deltas of the same visitors do not share their bytes", n)
		}
	}
}

// TestListReaderEqualsNextSlow: next reads the values nextSlow reads, a
// byte at a time, and ends where it does, for lists of varints of every
// length from 1 to 6 bytes (those of more than 5 hold more than 32 bits),
// in any order, and lists cut inside a value.
func TestListReaderEqualsNextSlow(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 9))
	f := func(list []byte) {
		t.Helper()
		fast, slow := listReader{b: list}, listReader{b: list}
		for {
			v, ok := fast.next()
			w, wok := slow.nextSlow()
			if v != w || ok != wok || fast.i != slow.i || fast.last != slow.last || fast.cut != slow.cut {
				t.Fatalf("list %x: next %d %v at %d, nextSlow %d %v at %d", list, v, ok, fast.i, w, wok, slow.i)
			}
			if !ok {
				return
			}
		}
	}
	for range 20000 {
		var list []byte
		for range rng.IntN(12) {
			n := 1 + rng.IntN(6)
			for j := range n {
				c := byte(rng.IntN(256))
				if j < n-1 {
					c |= 0x80
				} else if rng.IntN(4) > 0 {
					c &^= 0x80
				}
				list = append(list, c)
			}
		}
		f(list)
	}
	f(nil)
	f([]byte{0x80, 0x80, 0x80, 0x80})
	f([]byte{0xff, 0xff, 0xff, 0x7f, 0x01})
	f([]byte{0x81, 0x80, 0x80, 0x80, 0x1f, 0x02, 0x03, 0x04})
}

// mergeBenchLists are the serializations of a sparse stored sketch of n
// random visitors and a delta of m, a share fresh of them not among the
// stored ones.
func mergeBenchLists(n, m int, fresh float64) (stored, delta []byte) {
	rng := rand.New(rand.NewPCG(1, 2))
	var s []uint32
	for range n {
		s = append(s, encodeHash(rng.Uint64()))
	}
	slices.Sort(s)
	s = slices.Compact(s)
	var d []uint32
	for range m {
		if rng.Float64() < fresh {
			d = append(d, encodeHash(rng.Uint64()))
		} else {
			d = append(d, s[rng.IntN(len(s))])
		}
	}
	slices.Sort(d)
	d = slices.Compact(d)
	return sparseEncoding(s), sparseEncoding(d)
}

// BenchmarkMergeEncoded measures a merge of a delta into a stored sparse
// sketch on their serializations: a busy cell's (2,000 stored visitors,
// 1,000 in the delta, half, none or a twentieth of them new) and a small
// one's.
func BenchmarkMergeEncoded(b *testing.B) {
	for _, c := range []struct {
		name  string
		n, m  int
		fresh float64
	}{{"big-half", 2000, 1000, 0.5}, {"big-back", 2000, 1000, 0}, {"big-few", 2000, 1000, 0.05}, {"small-half", 20, 10, 0.5}} {
		s, d := mergeBenchLists(c.n, c.m, c.fresh)
		b.Run(c.name, func(b *testing.B) {
			for b.Loop() {
				mergeEncoded(s, d)
			}
		})
	}
}

// TestMergeEncodedKeepsStored: a merge whose delta is all in the stored
// sketch (sparse: every value in its list; dense: no rank above its
// register's) gives the stored bytes themselves, and every merge gives
// what merging every value gives (mergeSparseAll; dense: the registers'
// maxima), byte for byte: deltas held whole by the stored list, or with
// a value it lacks first, in the middle or last; stored lists in forms
// the merge does not write (a varint longer than it needs, a header
// with another count or last value, a varint with bits past 32), which
// are written anew; a long stored list that a delta of many values turns
// dense though it adds none.
func TestMergeEncodedKeepsStored(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 12))
	distinct := func(s []uint32) []uint32 {
		s = slices.Clone(s)
		slices.Sort(s)
		return slices.Compact(s)
	}
	randomSet := func(n int) []uint32 {
		s := make([]uint32, n)
		for i := range s {
			s[i] = encodeHash(rng.Uint64())
		}
		return distinct(s)
	}
	pick := func(from []uint32, n int) []uint32 {
		var s []uint32
		for range n {
			s = append(s, from[rng.IntN(len(from))])
		}
		return distinct(s)
	}
	// padded is sparseEncoding of set with its first varint of size
	// bytes written in one more (the value read is the same).
	padded := func(set []uint32, size int) []byte {
		b := sparseEncoding(set)
		r := listReader{b: b[sparseHeader:]}
		for {
			start := r.i
			if _, ok := r.next(); !ok {
				return nil
			}
			if r.i-start == size {
				i := sparseHeader + r.i - 1
				out := append(append(slices.Clone(b[:i]), b[i]|0x80, 0), b[i+1:]...)
				binary.BigEndian.PutUint32(out[16:], uint32(len(out)-sparseHeader))
				return out
			}
		}
	}
	var kept, turned, anew, sparseCases, denseCases int
	for _, ns := range []int{1, 3, 40, 700, 2048, 9000} {
		for round := range 6 {
			set := randomSet(ns)
			if len(set) < 2 {
				set = append(set, set[0]+2)
			}
			canonical := sparseEncoding(set)
			storedForms := map[string][]byte{"canonical": canonical}
			for size := 1; size <= 4; size++ {
				if p := padded(set, size); p != nil {
					storedForms[fmt.Sprintf("padded %d", size)] = p
				}
			}
			wrongCount := slices.Clone(canonical)
			binary.BigEndian.PutUint32(wrongCount[8:], uint32(len(set)+1))
			wrongLast := slices.Clone(canonical)
			binary.BigEndian.PutUint32(wrongLast[12:], set[len(set)-1]-1)
			storedForms["count"], storedForms["last"] = wrongCount, wrongLast
			n := 1 + rng.IntN(len(set))
			if round == 5 {
				n = len(set) // many values: past 163, a long list turns dense
			}
			held := pick(set, n)
			deltas := map[string][]uint32{"held": held}
			fresh := randomSet(3)
			if set[0] > 0 {
				deltas["new first"] = distinct(append(slices.Clone(held), set[0]-1))
			}
			deltas["new middle"] = distinct(append(slices.Clone(held), fresh...))
			deltas["new last"] = distinct(append(slices.Clone(held), set[len(set)-1]+2))
			for sname, stored := range storedForms {
				for dname, dset := range deltas {
					if len(dset) == 0 || dset[0] == 0 {
						continue
					}
					delta := sparseEncoding(dset)
					s, _ := parseSketchForm(stored)
					d, _ := parseSketchForm(delta)
					want, wantOK := mergeSparseAll(s, d)
					got, ok := mergeEncoded(stored, delta)
					if ok != wantOK || !bytes.Equal(got, want) {
						t.Fatalf("%d stored (%s), delta %s of %d: merged %d bytes (%v), merging every value %d (%v)",
							len(set), sname, dname, len(dset), len(got), ok, len(want), wantOK)
					}
					sparseCases++
					switch {
					case len(got) > 0 && &got[0] == &stored[0]:
						kept++
						if sname != "canonical" || dname != "held" {
							t.Fatalf("%d stored (%s), delta %s: stored bytes kept", len(set), sname, dname)
						}
					case dname == "held" && sname == "canonical" && got[3] == 0:
						turned++
					case dname == "held":
						anew++
						if sname == "canonical" {
							t.Fatalf("%d stored, delta held: not kept", len(set))
						}
					}
				}
			}
		}
	}
	// A first value past 2^28 (a varint of 5 bytes; encoded hashes with
	// their rank flagged): kept as it is, and written anew with bits past
	// 32 in its fifth byte.
	high := sparseEncoding([]uint32{0xf000_0001, 0xf000_0003, 0xf100_0001})
	over := slices.Clone(high)
	over[sparseHeader+4] |= 0x10
	delta := sparseEncoding([]uint32{0xf000_0001, 0xf100_0001})
	if got, ok := mergeEncoded(high, delta); !ok || &got[0] != &high[0] {
		t.Fatal("a list starting with a varint of 5 bytes, delta held: not kept")
	}
	s, _ := parseSketchForm(over)
	d, _ := parseSketchForm(delta)
	want, _ := mergeSparseAll(s, d)
	if got, ok := mergeEncoded(over, delta); !ok || !bytes.Equal(got, want) || bytes.Equal(got, over) {
		t.Fatal("a varint with bits past 32: not written anew")
	}
	// Dense stored sketches.
	for range 20 {
		var hs []uint64
		for range 20_000 {
			hs = append(hs, rng.Uint64())
		}
		stored := sketchOf(t, hs)
		if stored[3] != 0 {
			t.Fatal("20,000 visitors: not dense")
		}
		var held []uint32
		for range 1 + rng.IntN(3000) {
			held = append(held, encodeHash(hs[rng.IntN(len(hs))]))
		}
		for _, dset := range [][]uint32{distinct(held), distinct(append(held, randomSet(1+rng.IntN(20))...))} {
			delta := sparseEncoding(dset)
			regs := slices.Clone(stored[sketchHeader+4:])
			sparseRegisters(regs, delta[sparseHeader:])
			want := denseEncoding(regs)
			got, ok := mergeEncoded(stored, delta)
			if !ok || !bytes.Equal(got, want) {
				t.Fatalf("dense stored, delta of %d: not the registers' maxima", len(dset))
			}
			if bytes.Equal(want, stored) != (&got[0] == &stored[0]) {
				t.Fatalf("dense stored, delta of %d: unchanged %v, kept %v", len(dset), bytes.Equal(want, stored), &got[0] == &stored[0])
			}
			denseCases++
		}
	}
	if kept == 0 || turned == 0 || anew == 0 || denseCases == 0 {
		t.Fatalf("cases: kept %d, turned dense %d, stored written anew %d (of %d sparse), dense %d: each must occur",
			kept, turned, anew, sparseCases, denseCases)
	}
}

// TestSortHashes: sortHashes orders sets as slices.Sort does, at every
// length around insertionSortMax and radixSortMin and at some longer
// ones, with repeats (values of the low byte alone: radixSort skips the
// other passes), sorted and reversed runs, and visitors' encoded hashes.
func TestSortHashes(t *testing.T) {
	rng := rand.New(rand.NewPCG(21, 22))
	lengths := []int{1000, 4096, 70_000}
	for n := range 3 * insertionSortMax {
		lengths = append(lengths, n, radixSortMin-insertionSortMax+n)
	}
	for _, n := range lengths {
		for round := range 20 {
			set := make([]uint32, n)
			for i := range set {
				switch round % 5 {
				case 0:
					set[i] = rng.Uint32()
				case 1:
					set[i] = rng.Uint32N(4)
				case 2:
					set[i] = uint32(i)
				case 3:
					set[i] = uint32(n - i)
				default:
					set[i] = encodeHash(rng.Uint64())
				}
			}
			want := slices.Clone(set)
			slices.Sort(want)
			sortHashes(set)
			if !slices.Equal(set, want) {
				t.Fatalf("n %d round %d: %v, want %v", n, round, set, want)
			}
		}
	}
}

// sparseEncoding is the library's serialization of a sparse sketch whose
// list is set (sorted, distinct, not empty), nothing buffered.
func sparseEncoding(set []uint32) []byte { return sparseEncodingSized(set, sparseListBytes(set)) }

// BenchmarkSortHashes sorts the encoded hashes of a large cell's
// visitors (radixSort), and with slices.Sort for comparison.
func BenchmarkSortHashes(b *testing.B) {
	rng := rand.New(rand.NewPCG(23, 24))
	set := make([]uint32, 20_000)
	for i := range set {
		set[i] = encodeHash(rng.Uint64())
	}
	work := make([]uint32, len(set))
	for _, bc := range []struct {
		name string
		sort func([]uint32)
	}{{"sortHashes", sortHashes}, {"slices.Sort", slices.Sort[[]uint32]}} {
		b.Run(bc.name, func(b *testing.B) {
			for b.Loop() {
				copy(work, set)
				bc.sort(work)
			}
		})
	}
}
