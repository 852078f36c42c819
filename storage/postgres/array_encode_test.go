package postgres

import (
	"bytes"
	"math"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgtype"
)

// flatArrayCodec writes the bytes pgx's array codec writes, for every
// slice it takes (nil, empty, extremes, times in other locations and
// before 2000, nil and empty byte strings), and leaves other values and
// the text format to pgx.
func TestFlatArrayEncoding(t *testing.T) {
	berlin, err := time.LoadLocation("Europe/Berlin")
	if err != nil {
		t.Fatal(err)
	}
	times := []time.Time{
		time.Date(2026, 12, 6, 23, 30, 0, 123456789, time.UTC),
		time.Date(2026, 12, 6, 0, 30, 0, 999, berlin), // the day before in UTC
		time.Date(1999, 12, 31, 23, 59, 59, 999999999, time.UTC),
		time.Date(1970, 1, 1, 0, 0, 0, 0, time.UTC),
		time.Date(1900, 3, 1, 12, 0, 0, 0, berlin),
		time.Unix(0, 0),
		{},
	}
	plain := pgtype.NewMap()
	flat := pgtype.NewMap()
	registerFlatArrays(flat)
	registerFlatArrays(flat) // twice: wraps once
	for _, oid := range []uint32{pgtype.Int2ArrayOID, pgtype.Int4ArrayOID, pgtype.Int8ArrayOID, pgtype.TimestamptzArrayOID, pgtype.DateArrayOID, pgtype.ByteaArrayOID} {
		dt, _ := flat.TypeForOID(oid)
		if c, ok := dt.Codec.(*flatArrayCodec); !ok {
			t.Fatalf("oid %d: codec %T", oid, dt.Codec)
		} else if _, twice := c.Codec.(*flatArrayCodec); twice {
			t.Fatalf("oid %d: wrapped twice", oid)
		}
	}
	if _, ok := flat.PlanEncode(pgtype.Int4ArrayOID, pgtype.BinaryFormatCode, []int32{1}).(intArrayPlan[int32]); !ok {
		t.Fatal("[]int32 into int4[] is not intArrayPlan[int32]'s")
	}
	type namedInts []int32
	f := func(oid uint32, format int16, value any) {
		t.Helper()
		want, werr := plain.Encode(oid, format, value, []byte("prefix"))
		got, gerr := flat.Encode(oid, format, value, []byte("prefix"))
		if (werr != nil) != (gerr != nil) || !bytes.Equal(want, got) || (want == nil) != (got == nil) {
			t.Errorf("oid %d format %d %#v:\ngot  %x (%v)\nwant %x (%v)", oid, format, value, got, gerr, want, werr)
		}
	}
	for _, format := range []int16{pgtype.BinaryFormatCode, pgtype.TextFormatCode} {
		f(pgtype.Int2ArrayOID, format, []int16(nil))
		f(pgtype.Int2ArrayOID, format, []int16{})
		f(pgtype.Int2ArrayOID, format, []int16{0, 1, -1, math.MaxInt16, math.MinInt16})
		f(pgtype.Int4ArrayOID, format, []int32(nil))
		f(pgtype.Int4ArrayOID, format, []int32{})
		f(pgtype.Int4ArrayOID, format, []int32{0, 7, -7, math.MaxInt32, math.MinInt32})
		f(pgtype.Int4ArrayOID, format, namedInts{1, 2})
		f(pgtype.Int4ArrayOID, format, []int64{1, 2})
		f(pgtype.Int8ArrayOID, format, []int64(nil))
		f(pgtype.Int8ArrayOID, format, []int64{})
		f(pgtype.Int8ArrayOID, format, []int64{0, 1 << 40, -1, math.MaxInt64, math.MinInt64})
		f(pgtype.Int8ArrayOID, format, []int32{3})
		f(pgtype.TimestamptzArrayOID, format, []time.Time(nil))
		f(pgtype.TimestamptzArrayOID, format, []time.Time{})
		f(pgtype.TimestamptzArrayOID, format, times)
		f(pgtype.DateArrayOID, format, []time.Time(nil))
		f(pgtype.DateArrayOID, format, []time.Time{})
		f(pgtype.DateArrayOID, format, times)
		f(pgtype.ByteaArrayOID, format, [][]byte(nil))
		f(pgtype.ByteaArrayOID, format, [][]byte{})
		f(pgtype.ByteaArrayOID, format, [][]byte{{1, 2, 3}, {}, nil, bytes.Repeat([]byte{9}, 300)})
		f(pgtype.ByteaArrayOID, format, [][]byte{{1}, {2}})
		f(pgtype.TextArrayOID, format, []string{"a", ""})
	}
}
