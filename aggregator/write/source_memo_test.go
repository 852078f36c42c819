package write

import (
	"fmt"
	"math/rand/v2"
	"testing"
)

// TestSourceMemo: a sourceMemo gives trafficSource's source of every
// pair, landing pages with a query or none, in any order and after it
// was emptied when full.
func TestSourceMemo(t *testing.T) {
	paths := []string{"/", "/page/1", "/page/2?utm_source=news&utm_medium=email", "/p?gclid=1", "/q?x=1", "/a#b"}
	referrers := []string{"", "https://www.google.com/", "https://ref1.example/", "https://www.bing.com/search",
		"android-app://com.google.android.gm", "%zz"}
	for i := range maxSourceMemo + 10 {
		referrers = append(referrers, fmt.Sprintf("https://ref%d.example/", i))
	}
	var m sourceMemo
	rng := rand.New(rand.NewPCG(1, 2))
	for range 3 * (maxSourceMemo + 10) {
		p, r := paths[rng.IntN(len(paths))], referrers[rng.IntN(len(referrers))]
		if got, want := m.source(p, r), trafficSource(p, r); got != want {
			t.Fatalf("source(%q, %q) = %+v, want %+v", p, r, got, want)
		}
		if len(m) > maxSourceMemo {
			t.Fatalf("%d referrers held, past %d", len(m), maxSourceMemo)
		}
	}
}
