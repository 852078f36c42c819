package postgres

import (
	"fmt"
	"testing"
)

func TestDimCacheBounded(t *testing.T) {
	c := newIDCache[dimKey](4)
	for i := range 100 {
		c.putLocked(dimKey{1, DimPagePath, fmt.Sprint(i)}, int32(i))
	}
	if n := len(c.cur) + len(c.old); n > 4 {
		t.Fatalf("cache holds %d entries, limit 4", n)
	}
	if id, ok := c.get(dimKey{1, DimPagePath, "99"}); !ok || id != 99 {
		t.Errorf("latest entry: %d, %v", id, ok)
	}
	// A hit in the old generation survives the next rotation.
	c.putLocked(dimKey{1, DimPagePath, "x"}, 1000)
	if _, ok := c.get(dimKey{1, DimPagePath, "98"}); !ok {
		t.Fatal("recent entry lost")
	}
	c.putLocked(dimKey{1, DimPagePath, "y"}, 1001)
	if _, ok := c.get(dimKey{1, DimPagePath, "98"}); !ok {
		t.Error("entry in use dropped at rotation")
	}
}
