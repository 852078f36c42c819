package rollups

import (
	"slices"
	"testing"
)

// TestNamesBounded: Names keeps at most its size of dim_ids, starting
// again empty when more come, and keeps each site's and dimension list's
// values apart.
func TestNamesBounded(t *testing.T) {
	n := NewNames(3)
	a, b := namesKey{site: 1, dims: "pagePath"}, namesKey{site: 2, dims: "pagePath"}
	f := func(k namesKey, ids, wantMissing []int32) {
		t.Helper()
		got := make([][]string, len(ids))
		missing := n.lookup(k, ids, got)
		if !slices.Equal(missing, wantMissing) {
			t.Fatalf("lookup %v of %v: missing %v, want %v", ids, k, missing, wantMissing)
		}
		for i, id := range ids {
			if v := got[i]; (v == nil) != slices.Contains(missing, id) || v != nil && v[0] != k.dims+string(rune('0'+id)) {
				t.Fatalf("lookup %d of %v: %q", id, k, v)
			}
		}
	}
	put := func(k namesKey, ids ...int32) {
		vals := map[int32][]string{}
		for _, id := range ids {
			vals[id] = []string{k.dims + string(rune('0'+id))}
		}
		n.add(k, ids, vals)
	}
	put(a, 1, 2)
	f(a, []int32{1, 2, 3}, []int32{3})
	f(b, []int32{1}, []int32{1})
	put(b, 1)
	f(b, []int32{1}, nil)
	if n.n != 3 {
		t.Fatalf("%d kept, want 3", n.n)
	}
	put(a, 3) // a fourth: starts again
	f(a, []int32{1, 2, 3}, []int32{1, 2})
	f(b, []int32{1}, []int32{1})
	put(a, 4, 5, 6, 7) // more than it keeps at all: nothing kept
	f(a, []int32{3, 4}, []int32{3, 4})
	var none *Names
	if got := none.lookup(a, []int32{1}, make([][]string, 1)); !slices.Equal(got, []int32{1}) {
		t.Fatalf("nil Names: missing %v", got)
	}
	none.add(a, []int32{1}, map[int32][]string{1: {"x"}})
}
