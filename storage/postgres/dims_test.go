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

// A resolver remembers the ids it found by kind and string for one site
// only: the same string of another site, met after events of the first
// and before more of it, takes that site's id, and a string the cache
// does not hold waits for its id whatever the other site's is.
func TestDimResolverRemembersPerSite(t *testing.T) {
	c := newIDCache[dimKey](64)
	c.putLocked(dimKey{1, DimPagePath, "/x"}, 10)
	c.putLocked(dimKey{1, DimPagePath, "/y"}, 11)
	c.putLocked(dimKey{2, DimPagePath, "/x"}, 20)
	c.putLocked(dimKey{1, DimEventName, "page_view"}, 30)
	c.putLocked(dimKey{2, DimEventName, "page_view"}, 40)
	type ev struct {
		site       uint32
		name, path string
		want       [2]int32 // name and path ids; -1: waits for the database
	}
	evs := []ev{
		{1, "page_view", "/x", [2]int32{30, 10}},
		{1, "page_view", "/y", [2]int32{30, 11}},
		{2, "page_view", "/x", [2]int32{40, 20}},
		{2, "page_view", "/y", [2]int32{40, -1}}, // site 2 has no /y
		{1, "page_view", "/x", [2]int32{30, 10}},
		{1, "page_view", "/y", [2]int32{30, 11}},
	}
	r := &dimResolver{}
	ids := make([][numDimKinds]int32, len(evs))
	c.mu.Lock()
	for i, e := range evs {
		var fields [numDimKinds]string
		fields[DimEventName-1], fields[DimPagePath-1] = e.name, e.path
		r.fill(c, e.site, 0, fields[:], &ids[i])
	}
	c.mu.Unlock()
	for i, e := range evs {
		got := [2]int32{ids[i][DimEventName-1], ids[i][DimPagePath-1]}
		want := e.want
		if want[1] == -1 { // the first missing string's provisional id, until settle
			if len(r.missing) != 1 || r.missing[0] != (dimKey{2, DimPagePath, "/y"}) {
				t.Fatalf("missing %v, want site 2's /y alone", r.missing)
			}
		}
		if got != want {
			t.Errorf("event %d (site %d %s %s): ids %v, want %v", i, e.site, e.name, e.path, got, want)
		}
	}
}

// The table of strings by address tells strings apart by site and kind,
// not by address alone: one string (one allocation) that is a page path
// of two sites and a title takes each one's id, when met first and again
// from the table, and a string of equal bytes at another address takes
// the same id as the first.
func TestDimResolverAddrs(t *testing.T) {
	c := newIDCache[dimKey](64)
	c.putLocked(dimKey{1, DimPagePath, "/x"}, 10)
	c.putLocked(dimKey{2, DimPagePath, "/x"}, 20)
	c.putLocked(dimKey{1, DimTitle, "/x"}, 30)
	c.putLocked(dimKey{1, DimPagePath, "/y"}, 11)
	x := "/x"
	other := string([]byte{'/', 'x'}) // equal bytes, another address
	type ev struct {
		site        uint32
		path, title string
		want        [2]int32 // path and title ids
	}
	evs := []ev{
		{1, x, x, [2]int32{10, 30}},
		{2, x, "", [2]int32{20, 0}},
		{1, "/y", "", [2]int32{11, 0}},
		{1, x, x, [2]int32{10, 30}},
		{1, other, other, [2]int32{10, 30}},
		{2, other, "", [2]int32{20, 0}},
		{2, x, "", [2]int32{20, 0}},
	}
	addrs := new(dimAddrs)
	c.mu.Lock()
	defer c.mu.Unlock()
	for round := range 2 { // the second resolver finds the first's strings in the table
		r := &dimResolver{addrs: addrs}
		for i, e := range evs {
			var fields [numDimKinds]string
			var ids [numDimKinds]int32
			fields[DimPagePath-1], fields[DimTitle-1] = e.path, e.title
			r.fill(c, e.site, 0, fields[:], &ids)
			if got := [2]int32{ids[DimPagePath-1], ids[DimTitle-1]}; got != e.want {
				t.Errorf("round %d, event %d (site %d): ids %v, want %v", round, i, e.site, got, e.want)
			}
		}
		if len(r.missing) != 0 {
			t.Errorf("round %d: missing %v, want none", round, r.missing)
		}
	}
}
