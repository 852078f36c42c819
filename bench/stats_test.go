package bench

import (
	"math"
	"testing"
)

func TestPercentile(t *testing.T) {
	f := func(samples []float64, p, want float64) {
		t.Helper()
		got := Percentile(samples, p)
		if got != want && !(math.IsNaN(got) && math.IsNaN(want)) {
			t.Fatalf("Percentile(%v, %v) = %v, want %v", samples, p, got, want)
		}
	}
	ten := []float64{10, 1, 9, 2, 8, 3, 7, 4, 6, 5} // unsorted on purpose
	f(ten, 50, 5)
	f(ten, 90, 9)
	f(ten, 99, 10)
	f(ten, 100, 10)
	f(ten, 10, 1)
	f(ten, 11, 2)
	f([]float64{42}, 50, 42)
	f([]float64{42}, 99, 42)
	f([]float64{1, 2}, 50, 1)
	f([]float64{1, 2}, 51, 2)
	f(nil, 50, math.NaN())
	f(ten, 0, math.NaN())
	f(ten, 101, math.NaN())

	// 100 samples 1..100: p99 is the 99th, not the maximum.
	hundred := make([]float64, 100)
	for i := range hundred {
		hundred[i] = float64(100 - i)
	}
	f(hundred, 99, 99)
	f(hundred, 50, 50)
}

func TestPercentileLeavesInputAlone(t *testing.T) {
	s := []float64{3, 1, 2}
	Percentile(s, 50)
	if s[0] != 3 || s[1] != 1 || s[2] != 2 {
		t.Fatalf("input reordered: %v", s)
	}
}
