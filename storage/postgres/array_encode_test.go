package postgres

import (
	"bytes"
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
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

// arrayParamValues are generated parameter values of the types the flat
// plans take, and of types pgx encodes itself, with nil slices, empty
// ones, NULL elements and extremes, from small to large.
func arrayParamValues(rng *rand.Rand) (oids []uint32, values []any) {
	n := []int{0, 1, 3, 40, 300, 5000}[rng.IntN(6)]
	switch rng.IntN(9) {
	case 0:
		a := make([]int16, n)
		for i := range a {
			a[i] = int16(rng.Uint32())
		}
		if n > 1 {
			a[0], a[1] = math.MinInt16, math.MaxInt16
		}
		return []uint32{pgtype.Int2ArrayOID}, []any{a}
	case 1:
		a := make([]int32, n)
		for i := range a {
			a[i] = int32(rng.Uint32())
		}
		if n > 1 {
			a[0], a[1] = math.MinInt32, math.MaxInt32
		}
		return []uint32{pgtype.Int4ArrayOID}, []any{a}
	case 2:
		a := make([]int64, n)
		for i := range a {
			a[i] = int64(rng.Uint64())
		}
		if n > 1 {
			a[0], a[1] = math.MinInt64, math.MaxInt64
		}
		return []uint32{pgtype.Int8ArrayOID}, []any{a}
	case 3, 4:
		a := make([]time.Time, n)
		for i := range a {
			a[i] = time.Unix(rng.Int64N(4e9)-1e9, rng.Int64N(1e9)).UTC()
		}
		oid := uint32(pgtype.TimestamptzArrayOID)
		if rng.IntN(2) == 0 {
			oid = pgtype.DateArrayOID
		}
		return []uint32{oid}, []any{a}
	case 5, 6:
		a := make([][]byte, n)
		for i := range a {
			switch rng.IntN(5) {
			case 0: // NULL
			case 1:
				a[i] = []byte{}
			default:
				a[i] = make([]byte, rng.IntN(60))
				for j := range a[i] {
					a[i][j] = byte(rng.Uint32())
				}
			}
		}
		return []uint32{pgtype.ByteaArrayOID}, []any{a}
	case 7:
		a := make([]string, n)
		for i := range a {
			a[i] = strings.Repeat("x", rng.IntN(20))
		}
		return []uint32{pgtype.TextArrayOID}, []any{a}
	default:
		if rng.IntN(4) == 0 {
			return []uint32{pgtype.Int4ArrayOID}, []any{[]int32(nil)}
		}
		return []uint32{pgtype.Int4OID}, []any{int32(rng.Uint32())}
	}
}

// A connection's flat plans encode each statement's arrays into the
// buffer they keep from the statement before: every parameter of every
// statement, built as pgx builds them (one buffer per statement, dropped
// for a new one of 256 bytes when it grew past that), holds the bytes
// pgx's own codecs write, and a statement the kept buffer has room for
// allocates nothing.
func TestParamBufReuse(t *testing.T) {
	plain := pgtype.NewMap()
	flat := pgtype.NewMap()
	registerFlatArrays(flat)
	rng := rand.New(rand.NewPCG(1, 2))
	var buf []byte
	for stmt := range 400 {
		var oids []uint32
		var values []any
		for range 1 + rng.IntN(8) {
			o, v := arrayParamValues(rng)
			oids, values = append(oids, o...), append(values, v...)
		}
		params := make([][]byte, len(values))
		for i, v := range values {
			pos := len(buf)
			b, err := flat.Encode(oids[i], pgtype.BinaryFormatCode, v, buf)
			if err != nil {
				t.Fatal(err)
			}
			if b == nil {
				continue
			}
			buf = b
			params[i] = buf[pos:]
		}
		var all []byte // the statement's buffer: each parameter appended
		for i, v := range values {
			want, err := plain.Encode(oids[i], pgtype.BinaryFormatCode, v, nil)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(params[i], want) || (params[i] == nil) != (want == nil) {
				t.Fatalf("statement %d parameter %d (oid %d): got %d bytes, want %d", stmt, i, oids[i], len(params[i]), len(want))
			}
			all = append(all, want...)
		}
		if !bytes.Equal(buf, all) {
			t.Fatalf("statement %d: its buffer does not hold its parameters", stmt)
		}
		if buf = buf[:0]; cap(buf) > 256 {
			buf = make([]byte, 0, 256)
		}
	}
	large := [][]byte{bytes.Repeat([]byte{1}, 1<<16), nil, {}}
	ints := make([]int32, 1<<14)
	values := []any{ints, large, ints}
	encode := func() {
		b := make([]byte, 0, 256)
		for _, v := range values {
			var err error
			oid := uint32(pgtype.Int4ArrayOID)
			if _, ok := v.([][]byte); ok {
				oid = pgtype.ByteaArrayOID
			}
			if b, err = flat.Encode(oid, pgtype.BinaryFormatCode, v, b); err != nil {
				t.Fatal(err)
			}
		}
	}
	encode()
	// The 256 bytes pgx gives each statement are the one allocation.
	if n := testing.AllocsPerRun(20, encode); n > 1 {
		t.Errorf("a statement the kept buffer has room for allocates %v times", n)
	}
}

// Through PostgreSQL, statements and batches of array parameters on a
// connection of the store's pool (flat plans keeping their buffer) read
// back as on a connection with pgx's own codecs.
func TestParamBufRoundTrip(t *testing.T) {
	s := newStore(t)
	ctx := context.Background()
	pc, err := s.pool.Acquire(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Release()
	plainConn, err := pgx.ConnectConfig(ctx, s.pool.Config().ConnConfig.Copy())
	if err != nil {
		t.Fatal(err)
	}
	defer plainConn.Close(ctx)
	if _, ok := plainConn.TypeMap().PlanEncode(pgtype.Int4ArrayOID, pgtype.BinaryFormatCode, []int32{1}).(intArrayPlan[int32]); ok {
		t.Fatal("the plain connection has flat plans")
	}
	types := map[uint32]string{
		pgtype.Int2ArrayOID: "int2[]", pgtype.Int4ArrayOID: "int4[]", pgtype.Int8ArrayOID: "int8[]",
		pgtype.TimestamptzArrayOID: "timestamptz[]", pgtype.DateArrayOID: "date[]",
		pgtype.ByteaArrayOID: "bytea[]", pgtype.TextArrayOID: "text[]", pgtype.Int4OID: "int4",
	}
	// query is a statement returning the text of each parameter.
	query := func(oids []uint32) string {
		cols := make([]string, len(oids))
		for i, o := range oids {
			cols[i] = fmt.Sprintf("md5(coalesce($%d::%s::text, 'NULL'))", i+1, types[o])
		}
		return "SELECT " + strings.Join(cols, " || ")
	}
	tx, err := pc.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback(ctx)
	rtx := newBindRoomTx(tx)
	if _, ok := rtx.(bindRoomTx); !ok {
		t.Fatalf("the store's connection's transaction is a %T", rtx)
	}
	// A round's statements run on the transaction, their arrays making
	// room for the Bind message, or straight on the connection, or through
	// describeExec (making room too); its batch on the transaction or the
	// connection.
	var q interface {
		SendBatch(context.Context, *pgx.Batch) pgx.BatchResults
	}
	var one Querier
	de := describeExec{pc.Conn(), paramBufOf(pc.Conn())}
	if de.pb == nil {
		t.Fatal("the store's connection has no paramBuf")
	}
	rng := rand.New(rand.NewPCG(3, 4))
	for round := range 60 {
		q, one = pc, pc
		switch round % 3 {
		case 1:
			q = rtx
		case 2:
			one = de
		}
		var b pgx.Batch
		var want []string
		for range 1 + rng.IntN(4) {
			var oids []uint32
			var values []any
			for range 1 + rng.IntN(6) {
				o, v := arrayParamValues(rng)
				oids, values = append(oids, o...), append(values, v...)
			}
			b.Queue(query(oids), values...)
			var w string
			if err := plainConn.QueryRow(ctx, query(oids), values...).Scan(&w); err != nil {
				t.Fatal(err)
			}
			var got string
			if round%3 == 1 {
				err = rtx.QueryRow(ctx, query(oids), values...).Scan(&got)
			} else {
				var rows pgx.Rows
				if rows, err = one.Query(ctx, query(oids), values...); err == nil {
					got, err = pgx.CollectExactlyOneRow(rows, pgx.RowTo[string])
				}
			}
			if err != nil {
				t.Fatal(err)
			}
			if got != w {
				t.Fatalf("round %d: statement of %v reads back otherwise", round, oids)
			}
			want = append(want, w)
		}
		br := q.SendBatch(ctx, &b)
		for i, w := range want {
			var got string
			if err := br.QueryRow().Scan(&got); err != nil {
				t.Fatal(err)
			}
			if got != w {
				t.Fatalf("round %d: batched statement %d reads back otherwise", round, i)
			}
		}
		if err := br.Close(); err != nil {
			t.Fatal(err)
		}
	}
}

// bindRoom writes nothing: it returns the frontend's buffer with its
// messages and room for n more, in the kept wire buffer unless the
// frontend's buffer is that one.
func TestBindRoom(t *testing.T) {
	p := &paramBuf{}
	r := &bindRoom{p: p}
	rng := rand.New(rand.NewPCG(5, 6))
	var dst []byte
	for i := range 300 {
		pending := dst[:rng.IntN(min(len(dst), 2000)+1)]
		for j := range pending {
			pending[j] = byte(rng.Uint32())
		}
		want := bytes.Clone(pending)
		if rng.IntN(3) == 0 { // the frontend's own buffer, as after a flush
			pending = append(make([]byte, 0, 1024), pending...)
		}
		r.n = rng.IntN(100_000)
		wasWire := sameArray(pending, p.wire)
		oldWire := p.wire
		got, err := r.Encode(pending)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, want) || cap(got)-len(got) < r.n {
			t.Fatalf("%d: got %d bytes of room %d, want %d with room %d", i, len(got), cap(got)-len(got), len(want), r.n)
		}
		if cap(pending)-len(pending) < r.n && !wasWire && cap(oldWire) >= len(pending)+r.n && !sameArray(got, oldWire) {
			t.Fatalf("%d: the kept wire buffer had room but was not used", i)
		}
		dst = got
	}
	if err := r.Decode(nil); err == nil {
		t.Error("bindRoom decodes")
	}
}

// TestDateDaysUTC holds dateDays' division for times in UTC to the date's
// calendar walk, around midnights on both sides of 1970 and 2000 and over
// random instants, and a date array of them to pgx's encoding.
func TestDateDaysUTC(t *testing.T) {
	calendar := func(t time.Time) int64 {
		y, m, d := t.Date()
		return time.Date(y, m, d, 0, 0, 0, 0, time.UTC).Unix() / 86400
	}
	var times []time.Time
	for _, day := range []int64{-800_000, -1, 0, 1, y2kDays - 1, y2kDays, 20_429, 2_932_896} {
		for _, off := range []time.Duration{-time.Nanosecond, 0, time.Nanosecond, 12 * time.Hour} {
			times = append(times, time.Unix(day*86400, 0).UTC().Add(off))
		}
		times = append(times, dayDate(int32(day)))
	}
	rng := rand.New(rand.NewPCG(3, 4))
	for range 100_000 {
		times = append(times, time.Unix(rng.Int64N(1<<40)-1<<39, rng.Int64N(1e9)).UTC())
	}
	for _, tm := range times {
		if got, want := dateDays(tm), calendar(tm); got != want {
			t.Fatalf("dateDays(%v) = %d, calendar %d", tm, got, want)
		}
	}
	plain := pgtype.NewMap()
	flat := pgtype.NewMap()
	registerFlatArrays(flat)
	window := times[:2000]
	want, werr := plain.Encode(pgtype.DateArrayOID, pgtype.BinaryFormatCode, window, nil)
	got, gerr := flat.Encode(pgtype.DateArrayOID, pgtype.BinaryFormatCode, window, nil)
	if werr != nil || gerr != nil || !bytes.Equal(got, want) {
		t.Fatalf("date array: got %x (%v), want %x (%v)", got, gerr, want, werr)
	}
}
