package postgres

import (
	"encoding/binary"
	"slices"
	"time"
	"unsafe"

	"github.com/jackc/pgx/v5/pgtype"
)

// The derivation passes its rows as arrays of tens of thousands of
// elements (unnest). pgx encodes a Go slice into an array parameter
// element by element through interfaces: each element is boxed (an
// allocation; a time.Time's also wrapped), and the parameter's buffer
// grows by doubling. flatArrayCodec encodes the slices of the element
// types the store passes ([]int16, []int32, []int64, []time.Time,
// [][]byte) straight into the binary array form, sized once; the bytes
// are those pgx writes (TestFlatArrayEncoding). Any other value, and the
// text format, go to pgx's own array codec.

// registerFlatArrays makes m encode the store's slices into arrays with
// flatArrayCodec (pgxpool.Config.AfterConnect, for every connection).
func registerFlatArrays(m *pgtype.Map) {
	for _, a := range []struct {
		oid  uint32
		plan flatArrayPlan
	}{
		{pgtype.Int2ArrayOID, intArrayPlan[int16]{pgtype.Int2OID}},
		{pgtype.Int4ArrayOID, intArrayPlan[int32]{pgtype.Int4OID}},
		{pgtype.Int8ArrayOID, intArrayPlan[int64]{pgtype.Int8OID}},
		{pgtype.TimestamptzArrayOID, timestamptzArrayPlan{}},
		{pgtype.DateArrayOID, dateArrayPlan{}},
		{pgtype.ByteaArrayOID, byteaArrayPlan{}},
	} {
		t, ok := m.TypeForOID(a.oid)
		if !ok {
			continue
		}
		if _, done := t.Codec.(*flatArrayCodec); done {
			continue
		}
		m.RegisterType(&pgtype.Type{Name: t.Name, OID: t.OID, Codec: &flatArrayCodec{Codec: t.Codec, plan: a.plan}})
	}
}

// flatArrayCodec is pgx's codec of an array type (Codec), with plan for
// the one Go slice type it encodes itself, in the binary format.
type flatArrayCodec struct {
	pgtype.Codec
	plan flatArrayPlan
}

// flatArrayPlan encodes the values it takes into the binary array form.
type flatArrayPlan interface {
	pgtype.EncodePlan
	takes(value any) bool
}

func (c *flatArrayCodec) PlanEncode(m *pgtype.Map, oid uint32, format int16, value any) pgtype.EncodePlan {
	if format == pgtype.BinaryFormatCode && c.plan.takes(value) {
		return c.plan
	}
	return c.Codec.PlanEncode(m, oid, format, value)
}

// Bytes of the binary array form: its header (dimensions, has nulls,
// element type, then length and lower bound of its one dimension) and
// each element's length before the element.
const (
	arrayHeaderBytes = 5 * 4
	elemLenBytes     = 4
)

// appendArrayHeader appends the header of a one-dimensional array of n
// elements of type elem (an empty slice too has its dimension, of length
// 0, as pgx writes it), with room for size more bytes. buf holds the
// statement's parameters before this one (pgx appends them all to one
// buffer): when it must grow, it grows to at least twice what it holds,
// so a statement of many large arrays copies its parameters a few times,
// not once per array.
func appendArrayHeader(buf []byte, n int, elem uint32, size int) []byte {
	if need := arrayHeaderBytes + size; cap(buf)-len(buf) < need {
		buf = slices.Grow(buf, need+len(buf))
	}
	buf = binary.BigEndian.AppendUint32(buf, 1) // dimensions
	buf = binary.BigEndian.AppendUint32(buf, 0) // no nulls
	buf = binary.BigEndian.AppendUint32(buf, elem)
	buf = binary.BigEndian.AppendUint32(buf, uint32(n))
	buf = binary.BigEndian.AppendUint32(buf, 1) // lower bound
	return buf
}

// A nil slice is NULL, as pgx encodes it: the plans return nil.

// intArrayPlan encodes []T into an array of elem (int2, int4 or int8, of
// T's width).
type intArrayPlan[T int16 | int32 | int64] struct{ elem uint32 }

func (intArrayPlan[T]) takes(v any) bool { _, ok := v.([]T); return ok }

func (p intArrayPlan[T]) Encode(value any, buf []byte) ([]byte, error) {
	a := value.([]T)
	if a == nil {
		return nil, nil
	}
	width := int(unsafe.Sizeof(T(0)))
	buf = appendArrayHeader(buf, len(a), p.elem, len(a)*(elemLenBytes+width))
	for _, v := range a {
		buf = binary.BigEndian.AppendUint32(buf, uint32(width))
		switch width {
		case 2:
			buf = binary.BigEndian.AppendUint16(buf, uint16(v))
		case 4:
			buf = binary.BigEndian.AppendUint32(buf, uint32(v))
		default:
			buf = binary.BigEndian.AppendUint64(buf, uint64(v))
		}
	}
	return buf, nil
}

// y2kMicros is PostgreSQL's timestamp epoch, 2000-01-01 UTC, in Unix
// microseconds; y2kDays its date epoch in Unix days.
const (
	y2kMicros = 946_684_800 * 1_000_000
	y2kDays   = 946_684_800 / 86400
)

type timestamptzArrayPlan struct{}

func (timestamptzArrayPlan) takes(v any) bool { _, ok := v.([]time.Time); return ok }

func (timestamptzArrayPlan) Encode(value any, buf []byte) ([]byte, error) {
	a := value.([]time.Time)
	if a == nil {
		return nil, nil
	}
	buf = appendArrayHeader(buf, len(a), pgtype.TimestamptzOID, len(a)*(elemLenBytes+8))
	for i := range a {
		t := &a[i]
		buf = binary.BigEndian.AppendUint32(buf, 8)
		buf = binary.BigEndian.AppendUint64(buf, uint64(t.Unix()*1_000_000+int64(t.Nanosecond())/1000-y2kMicros))
	}
	return buf, nil
}

// dateArrayPlan encodes each time's date in its own location, as pgx does.
type dateArrayPlan struct{}

func (dateArrayPlan) takes(v any) bool { _, ok := v.([]time.Time); return ok }

func (dateArrayPlan) Encode(value any, buf []byte) ([]byte, error) {
	a := value.([]time.Time)
	if a == nil {
		return nil, nil
	}
	buf = appendArrayHeader(buf, len(a), pgtype.DateOID, len(a)*(elemLenBytes+4))
	for i := range a {
		y, m, d := a[i].Date()
		days := time.Date(y, m, d, 0, 0, 0, 0, time.UTC).Unix()/86400 - y2kDays
		buf = binary.BigEndian.AppendUint32(buf, 4)
		buf = binary.BigEndian.AppendUint32(buf, uint32(int32(days)))
	}
	return buf, nil
}

// byteaArrayPlan writes a nil element as NULL, as pgx does.
type byteaArrayPlan struct{}

func (byteaArrayPlan) takes(v any) bool { _, ok := v.([][]byte); return ok }

func (byteaArrayPlan) Encode(value any, buf []byte) ([]byte, error) {
	a := value.([][]byte)
	if a == nil {
		return nil, nil
	}
	size := len(a) * elemLenBytes
	for _, b := range a {
		size += len(b)
	}
	start := len(buf)
	buf = appendArrayHeader(buf, len(a), pgtype.ByteaOID, size)
	for _, b := range a {
		if b == nil {
			binary.BigEndian.PutUint32(buf[start+4:], 1) // has nulls
			buf = binary.BigEndian.AppendUint32(buf, 0xffffffff)
			continue
		}
		buf = binary.BigEndian.AppendUint32(buf, uint32(len(b)))
		buf = append(buf, b...)
	}
	return buf, nil
}
