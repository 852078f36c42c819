package rollups

import (
	"math/rand/v2"
	"slices"
	"strconv"
	"testing"

	"github.com/avila-analytics/avila/query/plan"
)

// TestDimIndexEqualsLookup: dimIndex.place matches each cell of a day to
// the sum a hash look-up per cell in turn would give it, and makes new
// sums in the same order, over days whose dim_ids ascend (packs), come in
// no order (rollup_days) or repeat one.
func TestDimIndexEqualsLookup(t *testing.T) {
	rng := rand.New(rand.NewPCG(17, 3))
	var (
		x     dimIndex
		order []int32
		// got, want: per sum, its dim_id and the cells' values added.
		got, want [][2]int64
		lookup    = map[int32]int{}
	)
	for day := range 40 {
		n := rng.IntN(300)
		dims := make([]int32, n)
		for i := range dims {
			dims[i] = int32(rng.IntN(400) - 50)
		}
		switch day % 3 {
		case 0: // a pack: ascending, distinct
			slices.Sort(dims)
			dims = slices.Compact(dims)
		case 1: // rollup_days: no order, distinct
			slices.Sort(dims)
			dims = slices.Compact(dims)
			rng.Shuffle(len(dims), func(i, j int) { dims[i], dims[j] = dims[j], dims[i] })
		}
		vals := make([]int64, len(dims))
		for i := range vals {
			vals[i] = int64(day*1000 + i)
		}
		for i, d := range dims {
			k, ok := lookup[d]
			if !ok {
				k = len(want)
				lookup[d] = k
				want = append(want, [2]int64{int64(d), 0})
			}
			want[k][1] += vals[i]
		}
		order = ascendingOrder(dims, order)
		x.place(dims, order, func(dim int32) int32 {
			got = append(got, [2]int64{int64(dim), 0})
			return int32(len(got) - 1)
		}, func(pos, at int) { got[at][1] += vals[pos] })
		if !slices.Equal(got, want) {
			t.Fatalf("day %d (%d cells): sums differ\ngot  %v\nwant %v", day, len(dims), got, want)
		}
		if !slices.IsSorted(x.dims) || len(x.dims) != len(want) {
			t.Fatalf("day %d: index of %d dim_ids (ascending: %v), want %d", day, len(x.dims), slices.IsSorted(x.dims), len(want))
		}
	}
}

// TestFirstRowsEqualsSort: firstRows gives the first k rows of a full sort
// for every k, with many rows tied on the metric at the page's boundary
// (the order goes on to the range and the key), and leaves every row in
// rows.
func TestFirstRowsEqualsSort(t *testing.T) {
	p := &plan.Plan{Dims: []*plan.DimDef{{Name: "pagePath"}}, Metrics: []*plan.MetricDef{{Name: "screenPageViews", Typ: plan.TypeInteger}}}
	order := rollupOrder(p)
	rng := rand.New(rand.NewPCG(3, 4))
	for _, n := range []int{1, 7, 40, 300, 2000} {
		rows := make([]*rollupRow, n)
		for i := range rows {
			rows[i] = &rollupRow{rng: rng.IntN(2), keys: []string{"/p" + strconv.Itoa(i)}, ints: []int64{int64(rng.IntN(5))}, flts: []float64{0}}
		}
		want := slices.Clone(rows)
		slices.SortFunc(want, order)
		for k := 0; k <= n; k += 1 + k/3 {
			got := firstRows(slices.Clone(rows), k, order)
			if !slices.Equal(got, want[:k]) {
				t.Fatalf("n=%d k=%d: first rows differ from a full sort's", n, k)
			}
			in := slices.Clone(rows)
			firstRows(in, k, order)
			slices.SortFunc(in, order)
			if !slices.Equal(in, want) {
				t.Fatalf("n=%d k=%d: rows lost or repeated", n, k)
			}
		}
	}
}
