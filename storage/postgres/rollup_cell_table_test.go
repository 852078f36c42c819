package postgres

import (
	"math/rand/v2"
	"testing"
)

// TestCellTableEqualsMap: a cellTable finds the cell a map of the same
// puts holds, and nil for keys never put, over keys of a day's dims ids,
// days on both sides of 1970, key 0 and keys whose probes start at one
// entry, as it grows from empty and after it was cleared.
func TestCellTableEqualsMap(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 8))
	var tab cellTable
	for round := range 4 {
		want := map[uint64]*rollupCell{}
		var keys []uint64
		key := func() uint64 {
			switch rng.IntN(5) {
			case 0:
				return dayDim(20_429, rng.Int32N(3000))
			case 1:
				return dayDim(-1-rng.Int32N(3), rng.Int32N(50)-25)
			case 2:
				return 0
			case 3:
				// Keys apart by a multiple of the table's size start
				// their probes at one entry more often than not.
				return uint64(rng.IntN(64)) << 58
			}
			return rng.Uint64()
		}
		for i := range 5000 * (round + 1) {
			k := key()
			if got, w := tab.get(k), want[k]; got != w {
				t.Fatalf("round %d, get %d of key %#x: %p, want %p", round, i, k, got, w)
			}
			if want[k] == nil {
				c := new(rollupCell)
				tab.put(k, c)
				want[k] = c
				keys = append(keys, k)
			}
		}
		if tab.n != len(want) || 2*tab.n > len(tab.entries) {
			t.Fatalf("round %d: %d in use of %d entries, %d keys", round, tab.n, len(tab.entries), len(want))
		}
		for _, k := range keys {
			if tab.get(k) != want[k] {
				t.Fatalf("round %d: key %#x lost", round, k)
			}
		}
		tab.clear()
		for _, k := range keys {
			if c := tab.get(k); c != nil {
				t.Fatalf("round %d: key %#x found after clear", round, k)
			}
		}
	}
}
