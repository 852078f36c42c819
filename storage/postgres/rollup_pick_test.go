package postgres

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// pickCell is one cell's sketches as read: users, active.
type pickCell struct{ users, active string }

// pickFixture writes packs and rollup_days rows of site 1, kind 2, and
// returns what each (day, dim_id) cell holds. Sketch values are opaque to
// the read, so they are texts naming their cell; a pack's users sketch
// equal to its active one is the marker (an empty bytea).
func pickFixture(t *testing.T, s *Store, days []time.Time) map[string]pickCell {
	t.Helper()
	ctx := context.Background()
	want := map[string]pickCell{}
	for d, day := range days {
		var dims []int32
		var users, active [][]byte
		// Day d holds dim_ids 1..40 but those divisible by d+2; the
		// last day is not packed.
		for dim := int32(1); dim <= 40; dim++ {
			if dim%int32(d+2) == 0 {
				continue
			}
			a := fmt.Sprintf("a%d/%d", d, dim)
			u := []byte{} // the marker: users = active
			c := pickCell{users: a, active: a}
			if dim%3 == 0 {
				u = fmt.Appendf(nil, "u%d/%d", d, dim)
				c.users = string(u)
			}
			dims, users, active = append(dims, dim), append(users, u), append(active, []byte(a))
			want[pickKey(day, dim)] = c
		}
		if d == len(days)-1 {
			for i, dim := range dims {
				if _, err := s.pool.Exec(ctx, `INSERT INTO rollup_days (site_id, day, kind, dim_id, events, users, active_users)
					VALUES (1, $1, 2, $2, 1, $3, $4)`, day, dim, users[i], active[i]); err != nil {
					t.Fatal(err)
				}
			}
			continue
		}
		n := len(dims)
		if _, err := s.pool.Exec(ctx, `INSERT INTO rollup_packs (site_id, kind, day, dim_ids, events, page_views, key_events, engagement_ms,
				users, active_users, new_users) VALUES (1, 2, $1, $2, $3, $3, $3, $4, $5, $6, $7)`,
			day, dims, make([]int32, n), make([]int64, n), users, active, make([][]byte, n)); err != nil {
			t.Fatal(err)
		}
	}
	return want
}

func pickKey(day time.Time, dim int32) string {
	return day.Format(time.DateOnly) + "/" + fmt.Sprint(dim)
}

// readPicked reads the cells of ids through ReadRollupSketches (users and
// active sketches) as pickKey → cell.
func readPicked(t *testing.T, db Querier, of RollupsOf, ids []int32, every bool) map[string]pickCell {
	t.Helper()
	got := map[string]pickCell{}
	err := ReadRollupSketches(context.Background(), db, of, ids, every, SketchUsers|SketchActive, func(day time.Time, dim int32, sks [][]byte) {
		k := pickKey(day, dim)
		if _, dup := got[k]; dup {
			t.Errorf("cell %s given twice", k)
		}
		got[k] = pickCell{users: string(sks[0]), active: string(sks[1])}
	})
	if err != nil {
		t.Fatal(err)
	}
	return got
}

// only is want restricted to the dim_ids of ids.
func only(want map[string]pickCell, ids []int32) map[string]pickCell {
	out := map[string]pickCell{}
	for k, c := range want {
		for _, id := range ids {
			if strings.HasSuffix(k, "/"+fmt.Sprint(id)) {
				out[k] = c
			}
		}
	}
	return out
}

// TestReadRollupSketchesPicksCells: a few dim_ids' sketches read out of
// packs (positions found in Go) and rollup_days are those of the cells,
// markers expanded, for dim_ids a day lacks, at either end of the arrays
// and absent altogether, as the read of every cell gives them.
func TestReadRollupSketchesPicksCells(t *testing.T) {
	s := newStore(t)
	day0 := time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)
	days := []time.Time{day0, day0.AddDate(0, 0, 1), day0.AddDate(0, 0, 2), day0.AddDate(0, 0, 3)}
	want := pickFixture(t, s, days)
	of := RollupsOf{Site: 1, Kind: 2, Lo: day0, Hi: day0.AddDate(0, 0, 4)}
	for _, ids := range [][]int32{{1}, {40}, {2, 3, 4, 6, 12, 39}, {5, 41, 1000}, {99}} {
		got := readPicked(t, s.pool, of, ids, false)
		if w := only(want, ids); !maps.Equal(got, w) {
			t.Errorf("ids %v: got %v, want %v", ids, got, w)
		}
	}
	all := make([]int32, 40)
	for i := range all {
		all[i] = int32(i + 1)
	}
	if got, every := readPicked(t, s.pool, of, all, false), readPicked(t, s.pool, of, all, true); !maps.Equal(got, every) || !maps.Equal(got, want) {
		t.Errorf("every dim_id: picked %d cells, read whole %d, want %d", len(got), len(every), len(want))
	}
}

// TestPositionsOf: positions of wanted dim_ids in ascending and, should a
// pack not ascend, unordered arrays.
func TestPositionsOf(t *testing.T) {
	f := func(dims, ids, wantPos, wantAt []int32) {
		t.Helper()
		pos, at := positionsOf(dims, ids)
		if !slices.Equal(pos, wantPos) || !slices.Equal(at, wantAt) {
			t.Errorf("positionsOf(%v, %v) = %v, %v; want %v, %v", dims, ids, pos, at, wantPos, wantAt)
		}
	}
	f([]int32{2, 5, 9, 11}, []int32{2, 9, 10, 11}, []int32{1, 3, 4}, []int32{2, 9, 11})
	f([]int32{2, 5, 9, 11}, []int32{1, 12}, nil, nil)
	f(nil, []int32{1}, nil, nil)
	f([]int32{9, 2, 11, 5}, []int32{2, 9, 10, 11}, []int32{1, 2, 3}, []int32{9, 2, 11})
}

// rewriting is a Querier that rewrites a pack before each of the first
// times statements that read sketches at positions found before.
type rewriting struct {
	s       *Store
	times   int
	rewrite func(n int)
	n       int
}

func (r *rewriting) Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error) {
	if strings.Contains(sql, "WITH ORDINALITY AS w(i, o)") && r.n < r.times {
		r.rewrite(r.n)
		r.n++
	}
	return r.s.pool.Query(ctx, sql, args...)
}

// TestReadRollupSketchesPackRewritten: a pack rewritten between the read
// of its dim_ids and the read of the sketches at their positions (packing
// a late event's page into it, an erasure) is read again: its cells come
// from one version, a wanted dim_id added by the rewrite included, and
// when packs keep changing the positions are found in SQL.
func TestReadRollupSketchesPackRewritten(t *testing.T) {
	s := newStore(t)
	ctx := context.Background()
	day0 := time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)
	days := []time.Time{day0, day0.AddDate(0, 0, 1), day0.AddDate(0, 0, 2)}
	want := pickFixture(t, s, days)
	of := RollupsOf{Site: 1, Kind: 2, Lo: day0, Hi: day0.AddDate(0, 0, 3)}
	// Day 0 lacks dim_id 2 (and every even one): the rewrite adds it,
	// shifting every later position by one, and renames the others.
	ids := []int32{2, 3, 5, 7}
	for _, times := range []int{1, pickAttempts} {
		// Each rewrite stores day 0's pack anew: dim_ids 0 and 2 added
		// (every later position moves), every active sketch renamed, the
		// users sketches markers.
		rewrite := func(n int) {
			tag := fmt.Sprintf("r%d-%d/", times, n)
			var dims []int32
			var users, active [][]byte
			for dim := int32(0); dim <= 40; dim++ {
				if dim%2 == 0 && dim > 2 {
					continue
				}
				a := fmt.Sprintf("%sa0/%d", tag, dim)
				dims, users, active = append(dims, dim), append(users, []byte{}), append(active, []byte(a))
				want[pickKey(day0, dim)] = pickCell{users: a, active: a}
			}
			m := len(dims)
			if _, err := s.pool.Exec(ctx, `UPDATE rollup_packs SET dim_ids = $2, events = $3, page_views = $3, key_events = $3,
					engagement_ms = $4, users = $5, active_users = $6, new_users = $7
				WHERE site_id = 1 AND kind = 2 AND day = $1`,
				day0, dims, make([]int32, m), make([]int64, m), users, active, make([][]byte, m)); err != nil {
				t.Fatal(err)
			}
		}
		got := readPicked(t, &rewriting{s: s, times: times, rewrite: rewrite}, of, ids, false)
		if w := only(want, ids); !maps.Equal(got, w) {
			t.Errorf("rewritten %d times: got %v, want %v", times, got, w)
		}
	}
}

// counting is a Querier that counts the statements reading the packs'
// dim_ids for positions, and may rewrite a pack before the first read of
// sketches at positions.
type counting struct {
	s          *Store
	dimReads   int
	beforePick func()
}

func (c *counting) Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error) {
	if strings.HasPrefix(sql, "SELECT day, version, dim_ids FROM ") {
		c.dimReads++
	}
	if strings.Contains(sql, "WITH ORDINALITY AS w(i, o)") && c.beforePick != nil {
		c.beforePick()
		c.beforePick = nil
	}
	return c.s.pool.Query(ctx, sql, args...)
}

// TestReadRollupSketchesKeptDims: the dim_ids SumRollupCounters kept
// (RollupsOf.Packs) serve the sketches' read of the same cells, which then
// reads no dim_ids; a pack rewritten after the counters' read is read
// again; packs kept for other cells are not used.
func TestReadRollupSketchesKeptDims(t *testing.T) {
	s := newStore(t)
	ctx := context.Background()
	day0 := time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)
	days := []time.Time{day0, day0.AddDate(0, 0, 1), day0.AddDate(0, 0, 2)}
	want := pickFixture(t, s, days)
	ids := []int32{2, 3, 5, 7, 40}
	sum := func(q Querier, of RollupsOf) {
		t.Helper()
		if err := SumRollupCounters(ctx, q, of, 1, false, func(*RollupDayCounts) {}); err != nil {
			t.Fatal(err)
		}
	}
	of := RollupsOf{Site: 1, Kind: 2, Lo: day0, Hi: day0.AddDate(0, 0, 3), Packs: new(PackDims)}
	q := &counting{s: s}
	sum(q, of)
	if got, w := readPicked(t, q, of, ids, false), only(want, ids); !maps.Equal(got, w) || q.dimReads != 0 {
		t.Errorf("kept dim_ids: got %v, want %v; dim_ids read %d times, want 0", got, w, q.dimReads)
	}

	// Other cells (a day less): their own dim_ids are read.
	other := of
	other.Hi = day0.AddDate(0, 0, 2)
	q = &counting{s: s}
	got := readPicked(t, q, other, ids, false)
	w := map[string]pickCell{}
	for k, c := range only(want, ids) {
		if !strings.HasPrefix(k, days[2].Format(time.DateOnly)) {
			w[k] = c
		}
	}
	if !maps.Equal(got, w) || q.dimReads != 1 {
		t.Errorf("dim_ids kept for other cells: got %v, want %v; dim_ids read %d times, want 1", got, w, q.dimReads)
	}

	// Day 1's pack loses dim_id 3 and gains 2 after the counters' read.
	of.Packs = new(PackDims)
	q = &counting{s: s, beforePick: func() {
		var dims []int32
		var active [][]byte
		for dim := int32(1); dim <= 40; dim++ {
			if dim != 3 {
				dims, active = append(dims, dim), append(active, fmt.Appendf(nil, "new1/%d", dim))
			}
		}
		n := len(dims)
		if _, err := s.pool.Exec(ctx, `UPDATE rollup_packs SET dim_ids = $2, events = $3, page_views = $3, key_events = $3,
				engagement_ms = $4, users = $5, active_users = $5, new_users = $6 WHERE site_id = 1 AND kind = 2 AND day = $1`,
			days[1], dims, make([]int32, n), make([]int64, n), active, make([][]byte, n)); err != nil {
			t.Fatal(err)
		}
		for k := range want {
			if strings.HasPrefix(k, days[1].Format(time.DateOnly)+"/") {
				delete(want, k)
			}
		}
		for i, dim := range dims {
			want[pickKey(days[1], dim)] = pickCell{users: string(active[i]), active: string(active[i])}
		}
	}}
	sum(q, of)
	if got, w := readPicked(t, q, of, ids, false), only(want, ids); !maps.Equal(got, w) || q.dimReads != 1 {
		t.Errorf("pack rewritten after the counters' read: got %v, want %v; dim_ids read %d times, want 1", got, w, q.dimReads)
	}
}
