package rollups

import (
	"math"
	"math/rand/v2"
	"testing"

	"github.com/avila-analytics/avila/storage/postgres"
)

// TestCountRawEqualsMerge: a row's user counts from countRaw (no merged
// sketch: sparse unions counted from their hashes, large ones from their
// merged dense registers) are the estimates of the sketches mergeRaw
// merges, for small, large and mixed columns of daily sketches.
func TestCountRawEqualsMerge(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 8))
	sketch := func(n int, shared uint64) []byte {
		if n < 0 {
			return nil
		}
		sk := postgres.NewSketch()
		sk.InsertHash(shared)
		for range n {
			sk.InsertHash(postgres.VisitorHash(rng.Uint64()))
		}
		b, err := sk.MarshalBinary()
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	column := func(sizes ...int) [][]byte {
		shared := postgres.VisitorHash(rng.Uint64())
		col := make([][]byte, len(sizes))
		for i, n := range sizes {
			col[i] = sketch(n, shared)
		}
		return col
	}
	month := func(lo, hi int) []int {
		s := make([]int, 30)
		for i := range s {
			s[i] = lo + rng.IntN(hi-lo+1)
		}
		return s
	}
	cases := [][3][][]byte{
		{column(3, 0, 7), nil, column(1)},                             // sparse unions
		{column(month(2000, 9000)...), column(month(20, 60)...), nil}, // dense; sparse inputs whose union is large
		{column(append(month(0, 30), 40000, -1)...), column(-1, 5, -1), column(12000)},
	}
	for n, raw := range cases {
		counted, merged := &rollupCell{}, &rollupCell{}
		r1, r2 := raw, raw
		if err := countRaw(counted, &r1); err != nil {
			t.Fatal(err)
		}
		if err := mergeRaw(merged, &r2); err != nil {
			t.Fatal(err)
		}
		for i := range raw {
			if raw[i] == nil {
				continue
			}
			if u := counted.users; u == nil || !u.hasCount[i] || u.sketches[i] != nil {
				t.Errorf("case %d column %d: counted %+v: want a count and no sketch", n, i, u)
			}
			got, want := counted.estimate(1<<i), merged.estimate(1<<i)
			if got != want {
				t.Errorf("case %d column %d: countRaw counts %d, the merged sketch estimates %d", n, i, got, want)
			}
		}
	}
}

// TestAddAmountsAsArrays: cells whose amounts are nil when none were read
// add up, bit for bit, as arrays of zeros would (-0 included), and read
// zero where nothing was added.
func TestAddAmountsAsArrays(t *testing.T) {
	rng := rand.New(rand.NewPCG(2, 11))
	for round := range 200 {
		var c rollupCell
		var want postgres.Amounts
		for range rng.IntN(5) {
			var o rollupCell
			if rng.IntN(2) == 0 {
				o.amounts = new(postgres.Amounts)
				for i := range o.amounts {
					switch rng.IntN(3) {
					case 0:
						o.amounts[i] = math.Copysign(0, -1)
					case 1:
						o.amounts[i] = float64(rng.IntN(1000)) / 100
					}
				}
			}
			for i := range want {
				if o.amounts != nil {
					want[i] += o.amounts[i]
				} else {
					want[i] += 0
				}
			}
			c.add(&o)
		}
		for i := range want {
			if got := c.amount(i); math.Float64bits(got) != math.Float64bits(want[i]) {
				t.Fatalf("round %d slot %d: %v, arrays of zeros give %v", round, i, got, want[i])
			}
		}
	}
}
