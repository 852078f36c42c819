package postgres

import (
	"errors"
	"math"
	"slices"
	"testing"

	"github.com/jackc/pgx/v5/pgtype"
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
