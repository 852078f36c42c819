package postgres

import (
	"reflect"
	"testing"
	"time"
)

// TestStatementArraysHoldNothingOfTheLastStatement: the arrays of a
// statement taken from statementArrays after a larger one (other cells,
// sketches, amounts) are those made afresh, keys, counters, sketches
// (NULL where the statement has none) and amounts alike, for both rollup
// tables; split gives the keys found and missing in order; clear drops
// what the arrays pointed to.
func TestStatementArraysHoldNothingOfTheLastStatement(t *testing.T) {
	aggOf := func(rows []EventRow) (rollupAgg, []rollupKey) {
		a, hours, last := make(rollupAgg), &hourCache{loc: time.UTC}, new(rollupSlots)
		a.addRows(rows, hours, last)
		a.settle()
		return a, sortedRollupKeys(a)
	}
	big := rollupBenchRows(6000)
	for i := range big {
		big[i].Site = 2
		if i%3 == 0 {
			big[i].Amounts = &Amounts{1.5, 2, 0.5}
		}
	}
	small := rollupBenchRows(900)
	for i := range small {
		small[i].DayActive = i%2 == 0 // some cells without an active sketch
	}
	bigAgg, bigKeys := aggOf(big)
	smallAgg, smallKeys := aggOf(small)
	// Cells merged to their stored sketches send none (NULL: kept).
	for i, k := range smallKeys {
		if i%2 == 0 {
			c := &smallAgg[k].sketches
			for j := range c.same {
				d, err := c.deltaBytes(j)
				if err != nil {
					t.Fatal(err)
				}
				c.enc[j], c.same[j] = d, true
			}
		}
	}
	var arr statementArrays
	if _, err := bigAgg.values(bigKeys, &arr); err != nil {
		t.Fatal(err)
	}
	arr.keyArrays(bigKeys)
	got, err := smallAgg.values(smallKeys, &arr)
	if err != nil {
		t.Fatal(err)
	}
	want, err := smallAgg.values(smallKeys, nil)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatal("rollup values in reused arrays differ from new ones")
	}
	if got, want := arr.keyArrays(smallKeys), keyArrays(smallKeys); !reflect.DeepEqual(got, want) {
		t.Fatal("key arrays reused differ from new ones")
	}

	sessions := sessionRollupAgg{}
	for i, k := range bigKeys[:2000] {
		c := &sessionRollupCell{sessions: int32(i), engaged: 1, events: 3, views: 2, keyEvents: 1, durationUs: 7, engageMs: 9}
		c.sketches.insert(uint64(i)*0x9e3779b97f4a7c15, visitorUser|visitorActive|visitorNew)
		sessions[k] = c
	}
	fewer := sessionRollupAgg{}
	for i, k := range smallKeys[:300] {
		c := &sessionRollupCell{sessions: 1, events: int32(i)}
		if i%2 == 0 {
			c.sketches.insert(uint64(i), visitorUser)
		}
		fewer[k] = c
	}
	if _, err := sessions.values(bigKeys[:2000], &arr); err != nil {
		t.Fatal(err)
	}
	gotS, err := fewer.values(smallKeys[:300], &arr)
	if err != nil {
		t.Fatal(err)
	}
	wantS, err := fewer.values(smallKeys[:300], nil)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(gotS, wantS) {
		t.Fatal("session rollup values in reused arrays differ from new ones")
	}

	found := make([]bool, len(bigKeys))
	var wantExisting, wantMissing []rollupKey
	for i, k := range bigKeys {
		found[i] = i%3 != 1
		if found[i] {
			wantExisting = append(wantExisting, k)
		} else {
			wantMissing = append(wantMissing, k)
		}
	}
	arr.split(smallKeys, make([]bool, len(smallKeys)))
	existing, missing := arr.split(bigKeys, found)
	if !reflect.DeepEqual(existing, wantExisting) || !reflect.DeepEqual(missing, wantMissing) {
		t.Fatal("split in reused arrays differs from the keys found and missing")
	}

	arr.clear()
	for j := range arr.sketches {
		for _, b := range arr.sketches[j][:cap(arr.sketches[j])] {
			if b != nil {
				t.Fatal("a sketch array keeps a sketch after clear")
			}
		}
	}
	for _, a := range arr.amounts[:cap(arr.amounts)] {
		if a != nil {
			t.Fatal("the amounts array keeps amounts after clear")
		}
	}
}
