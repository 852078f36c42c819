package postgres

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// refEntry is a pack entry of dim for the reference tests: counters,
// a users sketch equal to the active one or not, amounts on some.
func refEntry(dim int32) *packEntry {
	e := &packEntry{events: dim % 4, views: dim % 3, keyEvents: dim % 2, engageMs: int64(dim) * 10,
		sketches: [3][]byte{fmt.Appendf(nil, "a%d", dim), fmt.Appendf(nil, "a%d", dim), nil}}
	if dim%3 == 0 {
		e.sketches[0] = fmt.Appendf(nil, "u%d", dim)
	}
	if dim%2 == 0 {
		e.sketches[2] = fmt.Appendf(nil, "n%d", dim)
		e.amounts = &Amounts{AmountPurchaseRevenue: float64(dim) + 0.5}
	}
	return e
}

// TestPackRef: a title pack is a reference when each of its cells has an
// equal cell in the path pack, at the same positions (ref_pos NULL) or at
// others.
func TestPackRef(t *testing.T) {
	path := pack{}
	for dim := int32(1); dim <= 6; dim++ {
		path[dim] = refEntry(dim)
	}
	pathDims := slices.Sorted(maps.Keys(path))
	f := func(title map[int32]int32, wantPos []int32, wantOK bool) {
		t.Helper()
		p := pack{}
		for dim, of := range title {
			p[dim] = refEntry(of)
		}
		pos, ok := packRef(p, slices.Sorted(maps.Keys(p)), path, pathDims)
		if ok != wantOK || !slices.Equal(pos, wantPos) {
			t.Errorf("title cells %v: positions %v, %v; want %v, %v", title, pos, ok, wantPos, wantOK)
		}
	}
	f(map[int32]int32{11: 1, 12: 2, 13: 3, 14: 4, 15: 5, 16: 6}, nil, true)
	f(map[int32]int32{11: 6, 12: 2, 13: 3, 14: 4, 15: 5, 16: 1}, []int32{6, 2, 3, 4, 5, 1}, true)
	f(map[int32]int32{11: 1, 12: 2, 13: 3}, []int32{1, 2, 3}, true) // fewer cells: positions given
	f(map[int32]int32{11: 1, 12: 2, 13: 3, 14: 4, 15: 5, 16: 7}, nil, false)
	f(map[int32]int32{}, nil, false)
}

// TestPackRefReads: every reader of rollup_packs reads a title pack
// stored as a reference (at the path pack's positions or at its own) as
// the pack of its own values it stands for, and a title pack with a cell
// the path pack does not hold is stored with its own values.
func TestPackRefReads(t *testing.T) {
	s := newStore(t)
	ctx := context.Background()
	day0 := time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)
	days := []time.Time{day0, day0.AddDate(0, 0, 1), day0.AddDate(0, 0, 2)}
	titleOf := []map[int32]int32{
		{11: 1, 12: 2, 13: 3, 14: 4, 15: 5, 16: 6}, // same positions
		{11: 6, 12: 2, 13: 3, 14: 4, 15: 5, 16: 1}, // others
		{11: 1, 12: 2, 13: 3, 14: 4, 15: 5, 16: 7}, // 7: not a path cell
	}
	packs := map[packKey]pack{}
	want := map[string]*packEntry{} // by day/dim, of the title kind
	for d, day := range days {
		path, title := pack{}, pack{}
		for dim := int32(1); dim <= 6; dim++ {
			path[dim] = refEntry(dim)
		}
		for dim, of := range titleOf[d] {
			title[dim] = refEntry(of)
			want[fmt.Sprintf("%s/%d", day.Format(time.DateOnly), dim)] = refEntry(of)
		}
		packs[packKey{kind: int16(DimPagePath), day: day}] = path
		packs[packKey{kind: int16(DimTitle), day: day}] = title
	}
	tx, err := s.pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := writePacks(ctx, tx, 1, packs); err != nil {
		t.Fatal(err)
	}
	if err := tx.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	var forms []string
	if err := s.pool.QueryRow(ctx, `SELECT array_agg(COALESCE(ref_kind::text, 'own') || ' ' || COALESCE(ref_pos::text, '-') ORDER BY day)
		FROM rollup_packs WHERE site_id = 1 AND kind = $1`, int16(DimTitle)).Scan(&forms); err != nil {
		t.Fatal(err)
	}
	if w := []string{"2 -", "2 {6,2,3,4,5,1}", "own -"}; !slices.Equal(forms, w) {
		t.Fatalf("title packs stored as %q, want %q", forms, w)
	}

	of := RollupsOf{Site: 1, Kind: DimTitle, Lo: day0, Hi: day0.AddDate(0, 0, 3)}
	key := func(day time.Time, dim int32) string { return fmt.Sprintf("%s/%d", day.Format(time.DateOnly), dim) }
	same := func(what string, got map[string]*packEntry) {
		t.Helper()
		if diff := cmp.Diff(want, got, cmp.AllowUnexported(packEntry{})); diff != "" {
			t.Errorf("%s (-want +got):\n%s", what, diff)
		}
	}

	// Counters and amounts, through SumRollupCounters (keeping the
	// packs' dim_ids) and the sketches through ReadRollupSketches.
	got := map[string]*packEntry{}
	of.Packs = new(PackDims)
	if err := SumRollupCounters(ctx, s.pool, of, 1|2|4|8, true, func(d *RollupDayCounts) {
		if len(d.Events) != len(d.Dims) || len(d.Amounts) != len(d.Dims)*NumAmounts {
			t.Fatalf("%s: %d dim_ids, %d events, %d amounts", d.Day.Format(time.DateOnly), len(d.Dims), len(d.Events), len(d.Amounts))
		}
		for i, dim := range d.Dims {
			e := &packEntry{events: d.Events[i], views: d.PageViews[i], keyEvents: d.KeyEvents[i], engageMs: d.EngagementMs[i]}
			e.amounts = amountsOf(d.Amounts[i*NumAmounts : (i+1)*NumAmounts])
			got[key(d.Day, dim)] = e
		}
	}); err != nil {
		t.Fatal(err)
	}
	sketches := func(ids []int32, every bool) {
		t.Helper()
		if err := ReadRollupSketches(ctx, s.pool, of, ids, every, SketchUsers|SketchActive|SketchNew, func(day time.Time, dim int32, sks [][]byte) {
			e := got[key(day, dim)]
			if e == nil {
				t.Fatalf("sketches of %s without counters", key(day, dim))
			}
			for j := range sks {
				e.sketches[j] = slices.Clone(sks[j])
			}
		}); err != nil {
			t.Fatal(err)
		}
	}
	sketches([]int32{11, 12, 13, 14, 15, 16}, true)
	same("SumRollupCounters and ReadRollupSketches of every cell", got)
	for _, e := range got {
		e.sketches = [3][]byte{}
	}
	sketches([]int32{11, 12, 13, 14, 15, 16}, false) // positions from the kept dim_ids
	same("ReadRollupSketches at the kept dim_ids' positions", got)
	for _, e := range got {
		e.sketches = [3][]byte{}
	}
	of.Packs = nil
	sketches([]int32{11, 12, 13, 14, 15, 16}, false) // positions read anew
	same("ReadRollupSketches at positions", got)

	// RollupsIn, as the reports' statements read it.
	got = map[string]*packEntry{}
	res, err := s.pool.Query(ctx, `SELECT day, dim_id, events, page_views, key_events, engagement_ms, users, active_users, new_users, a0
		FROM `+RollupsIn(SketchUsers|SketchActive|SketchNew, true)+` r WHERE site_id = 1 AND kind = $1`, int16(DimTitle))
	if err != nil {
		t.Fatal(err)
	}
	for res.Next() {
		var (
			day time.Time
			dim int32
			e   packEntry
			a0  *float64
		)
		if err := res.Scan(&day, &dim, &e.events, &e.views, &e.keyEvents, &e.engageMs, &e.sketches[0], &e.sketches[1], &e.sketches[2], &a0); err != nil {
			t.Fatal(err)
		}
		ExpandSketches(&e.sketches)
		if a0 != nil {
			e.amounts = &Amounts{AmountPurchaseRevenue: *a0}
		}
		got[key(day, dim)] = &e
	}
	if err := res.Err(); err != nil {
		t.Fatal(err)
	}
	same("RollupsIn", got)

	// readPacks, as packing and erasure read a day's packs.
	got = map[string]*packEntry{}
	tx, err = s.pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback(ctx)
	for _, day := range days {
		read := map[packKey]pack{}
		if err := readPacks(ctx, tx, 1, day, read); err != nil {
			t.Fatal(err)
		}
		for dim, e := range read[packKey{kind: int16(DimTitle), day: day}] {
			got[key(day, dim)] = e
		}
	}
	same("readPacks", got)
}
