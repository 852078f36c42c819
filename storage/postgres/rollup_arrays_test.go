package postgres

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"math"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"
	"github.com/jackc/pgx/v5/pgxpool"
)

// TestRawIntArrayEqualsPgx: rawIntArray decodes int4[] and int8[] in
// binary form as pgx's codec does (empty arrays, extremes, one element,
// thousands), reusing dst; SQL NULL is nil; a NULL element, two
// dimensions, an int8 beyond int32 read as int32 and cut input are errors.
func TestRawIntArrayEqualsPgx(t *testing.T) {
	m := pgtype.NewMap()
	many := make([]int32, 3000)
	for i := range many {
		many[i] = int32(i*7919) - 5_000_000
	}
	var buf []int32
	for _, in := range [][]int32{{}, {0}, {math.MinInt32, -1, 0, 1, math.MaxInt32}, many} {
		src, err := m.Encode(pgtype.Int4ArrayOID, pgtype.BinaryFormatCode, in, nil)
		if err != nil {
			t.Fatal(err)
		}
		var want []int32
		if err := m.Scan(pgtype.Int4ArrayOID, pgtype.BinaryFormatCode, src, &want); err != nil {
			t.Fatal(err)
		}
		got, err := rawIntArray(src, buf)
		if err != nil || !slices.Equal(got, want) || len(got) != len(in) {
			t.Fatalf("int4[] of %d: got %v, %v; want %v", len(in), len(got), err, len(want))
		}
		buf = got
		wide, err := rawIntArray[int64](src, nil)
		if err != nil || len(wide) != len(in) || (len(in) > 0 && wide[len(in)-1] != int64(in[len(in)-1])) {
			t.Fatalf("int4[] of %d as int64: got %v, %v", len(in), len(wide), err)
		}
	}
	big := []int64{math.MinInt64, 0, math.MaxInt64, 1 << 40}
	src, err := m.Encode(pgtype.Int8ArrayOID, pgtype.BinaryFormatCode, big, nil)
	if err != nil {
		t.Fatal(err)
	}
	if got, err := rawIntArray[int64](src, nil); err != nil || !slices.Equal(got, big) {
		t.Fatalf("int8[]: got %v, %v; want %v", got, err, big)
	}
	if _, err := rawIntArray[int32](src, nil); err == nil {
		t.Fatal("int8[] beyond int32 read as int32: no error")
	}
	if got, err := rawIntArray[int32](nil, buf); got != nil || err != nil {
		t.Fatalf("NULL: got %v, %v; want nil", got, err)
	}

	withNull, err := m.Encode(pgtype.Int4ArrayOID, pgtype.BinaryFormatCode, []*int32{new(int32), nil}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := rawIntArray[int32](withNull, nil); !errors.Is(err, errArrayShape) {
		t.Fatalf("NULL element: got %v, want errArrayShape", err)
	}
	square, err := m.Encode(pgtype.Int4ArrayOID, pgtype.BinaryFormatCode,
		pgtype.Array[int32]{Elements: []int32{1, 2, 3, 4}, Dims: []pgtype.ArrayDimension{{Length: 2, LowerBound: 1}, {Length: 2, LowerBound: 1}}, Valid: true}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := rawIntArray[int32](square, nil); !errors.Is(err, errArrayShape) {
		t.Fatalf("two dimensions: got %v, want errArrayShape", err)
	}
	src, _ = m.Encode(pgtype.Int4ArrayOID, pgtype.BinaryFormatCode, []int32{1, 2, 3}, nil)
	for cut := range len(src) {
		if cut == 0 {
			continue
		}
		if _, err := rawIntArray[int32](src[:cut], nil); err == nil {
			t.Fatalf("cut at %d of %d bytes: no error", cut, len(src))
		}
	}
}

// oneConn is a Querier that does not run statements at once.
type oneConn struct{ q Querier }

func (o oneConn) Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error) {
	return o.q.Query(ctx, sql, args...)
}

// TestSumRollupCountersHalves: read in two halves at once (a pool) or in
// one statement, SumRollupCounters gives the same days with the same
// cells in the same order (packs in day order, then the days of
// rollup_days, here one in each half), keeps the same packs' dim_ids,
// and decodes as pgx does (the simple protocol's text, pgx's decoding).
func TestSumRollupCountersHalves(t *testing.T) {
	s := newStore(t)
	ctx := context.Background()
	day0 := time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)
	var days []time.Time
	for d := range 6 {
		days = append(days, day0.AddDate(0, 0, d))
	}
	pickFixture(t, s, days)
	// Late cells of a packed day in the first half, in rollup_days.
	for _, dim := range []int32{44, 41} {
		if _, err := s.pool.Exec(ctx, `INSERT INTO rollup_days (site_id, day, kind, dim_id, events, page_views, engagement_ms) VALUES (1, $1, 2, $2, $3, 7, 1099511627776)`,
			day0, dim, dim*3); err != nil {
			t.Fatal(err)
		}
	}
	read := func(db Querier) ([]string, *PackDims) {
		t.Helper()
		of := RollupsOf{Site: 1, Kind: 2, Lo: day0, Hi: day0.AddDate(0, 0, len(days)), Packs: new(PackDims)}
		var got []string
		err := SumRollupCounters(ctx, db, of, 1|2|8, false, func(d *RollupDayCounts) {
			got = append(got, fmt.Sprintln(d.Day.Format(time.DateOnly), d.version != nil, d.Dims, d.Events, d.PageViews, d.KeyEvents == nil, d.EngagementMs))
		})
		if err != nil {
			t.Fatal(err)
		}
		return got, of.Packs
	}
	halves, keptHalves := read(s.pool)
	one, keptOne := read(oneConn{s.pool})
	if !slices.Equal(halves, one) {
		t.Fatalf("days read in halves:\n%v\nin one statement:\n%v", halves, one)
	}
	if len(one) != len(days)+1 || !strings.HasPrefix(one[len(days)-1], days[0].Format(time.DateOnly)+" false") {
		t.Fatalf("want %d packs in day order, then the rollup_days days; got %v", len(days)-1, one)
	}
	if !maps.EqualFunc(keptHalves.days, keptOne.days, func(a, b packDims) bool { return a.xmin == b.xmin && slices.Equal(a.dims, b.dims) }) || len(keptOne.days) != len(days)-1 {
		t.Fatalf("kept dim_ids: halves %d packs, one statement %d", len(keptHalves.days), len(keptOne.days))
	}
	// The simple protocol sends text: pgx decodes.
	cfg := s.pool.Config().Copy()
	cfg.ConnConfig.DefaultQueryExecMode = pgx.QueryExecModeSimpleProtocol
	simple, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer simple.Close()
	if text, _ := read(simple); !slices.Equal(text, one) {
		t.Fatalf("days read as text:\n%v\nas binary:\n%v", text, one)
	}
}
