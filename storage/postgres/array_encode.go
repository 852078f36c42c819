package postgres

import (
	"context"
	"encoding/binary"
	"errors"
	"slices"
	"time"
	"unsafe"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgproto3"
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
// The plans of one map share one paramBuf: m is one connection's, and
// one statement's array parameters all go into the same buffer.
func registerFlatArrays(m *pgtype.Map) {
	pb := &paramBuf{}
	pb.room.p = pb
	for _, a := range []struct {
		oid  uint32
		plan flatArrayPlan
	}{
		{pgtype.Int2ArrayOID, intArrayPlan[int16]{pgtype.Int2OID, pb}},
		{pgtype.Int4ArrayOID, intArrayPlan[int32]{pgtype.Int4OID, pb}},
		{pgtype.Int8ArrayOID, intArrayPlan[int64]{pgtype.Int8OID, pb}},
		{pgtype.TimestamptzArrayOID, timestamptzArrayPlan{pb}},
		{pgtype.DateArrayOID, dateArrayPlan{pb}},
		{pgtype.ByteaArrayOID, byteaArrayPlan{pb}},
	} {
		t, ok := m.TypeForOID(a.oid)
		if !ok {
			continue
		}
		if _, done := t.Codec.(*flatArrayCodec); done {
			continue
		}
		m.RegisterType(&pgtype.Type{Name: t.Name, OID: t.OID, Codec: &flatArrayCodec{Codec: t.Codec, plan: a.plan, pb: pb}})
	}
}

// flatArrayCodec is pgx's codec of an array type (Codec), with plan for
// the one Go slice type it encodes itself, in the binary format.
type flatArrayCodec struct {
	pgtype.Codec
	plan flatArrayPlan
	pb   *paramBuf
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

// paramBuf is the buffer a connection's array parameters are encoded
// into, kept from one statement to the next. pgx appends a statement's
// parameters to one buffer, and after the statement drops it for a new
// one of 256 bytes when it grew past that: without paramBuf, each
// statement of large arrays grew a new buffer.
//
// pgx hands a statement's parameter bytes to the connection (copies them
// into its Bind message) before it encodes the next statement's (as it
// does with its own buffer when it keeps it), and a connection runs one
// statement at a time: a buffer that is not b's is a new statement's (or
// a later one of the same statement, holding its earlier parameters at
// the same offsets), and b is then free to take its bytes.
type paramBuf struct {
	b []byte
	// fe is, while a statement is sent on a bindRoomTx, its connection's
	// frontend: the arrays make room for the statement's Bind message in
	// the frontend's write buffer (bindRoom), wire when it fits.
	fe   *pgproto3.Frontend
	wire []byte
	room bindRoom
}

// grow returns buf, or a copy of it in p's buffer, with room for need
// more bytes. When p's buffer must grow, it grows to at least twice what
// buf holds, so a statement of many large arrays copies its parameters a
// few times, not once per array. A nil p grows buf.
func (p *paramBuf) grow(buf []byte, need int) []byte {
	if cap(buf)-len(buf) >= need {
		return buf
	}
	if p == nil {
		return slices.Grow(buf, need+len(buf))
	}
	if !sameArray(buf, p.b) && cap(p.b) >= len(buf)+need {
		p.b = append(p.b[:0], buf...)
		return p.b
	}
	b := make([]byte, len(buf), 2*len(buf)+need)
	copy(b, buf)
	p.b = b
	return b
}

// sameArray reports whether a and b start at the same element of one
// backing array.
func sameArray(a, b []byte) bool {
	return cap(a) > 0 && cap(b) > 0 && unsafe.SliceData(a) == unsafe.SliceData(b)
}

// appendArrayHeader appends the header of a one-dimensional array of n
// elements of type elem (an empty slice too has its dimension, of length
// 0, as pgx writes it), with room (p.grow) for size more bytes. buf holds
// the statement's parameters before this one.
func (p *paramBuf) appendArrayHeader(buf []byte, n int, elem uint32, size int) []byte {
	buf = p.grow(buf, arrayHeaderBytes+size)
	if p != nil && p.fe != nil {
		p.room.n = len(buf) + arrayHeaderBytes + size + bindSlack
		p.fe.Send(&p.room)
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
type intArrayPlan[T int16 | int32 | int64] struct {
	elem uint32
	pb   *paramBuf
}

func (intArrayPlan[T]) takes(v any) bool { _, ok := v.([]T); return ok }

func (p intArrayPlan[T]) Encode(value any, buf []byte) ([]byte, error) {
	a := value.([]T)
	if a == nil {
		return nil, nil
	}
	width := int(unsafe.Sizeof(T(0)))
	buf = p.pb.appendArrayHeader(buf, len(a), p.elem, len(a)*(elemLenBytes+width))
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

type timestamptzArrayPlan struct{ pb *paramBuf }

func (timestamptzArrayPlan) takes(v any) bool { _, ok := v.([]time.Time); return ok }

func (p timestamptzArrayPlan) Encode(value any, buf []byte) ([]byte, error) {
	a := value.([]time.Time)
	if a == nil {
		return nil, nil
	}
	buf = p.pb.appendArrayHeader(buf, len(a), pgtype.TimestamptzOID, len(a)*(elemLenBytes+8))
	for i := range a {
		t := &a[i]
		buf = binary.BigEndian.AppendUint32(buf, 8)
		buf = binary.BigEndian.AppendUint64(buf, uint64(t.Unix()*1_000_000+int64(t.Nanosecond())/1000-y2kMicros))
	}
	return buf, nil
}

// dateArrayPlan encodes each time's date in its own location, as pgx does.
type dateArrayPlan struct{ pb *paramBuf }

func (dateArrayPlan) takes(v any) bool { _, ok := v.([]time.Time); return ok }

func (p dateArrayPlan) Encode(value any, buf []byte) ([]byte, error) {
	a := value.([]time.Time)
	if a == nil {
		return nil, nil
	}
	buf = p.pb.appendArrayHeader(buf, len(a), pgtype.DateOID, len(a)*(elemLenBytes+4))
	for i := range a {
		buf = binary.BigEndian.AppendUint32(buf, 4)
		buf = binary.BigEndian.AppendUint32(buf, uint32(int32(dateDays(a[i])-y2kDays)))
	}
	return buf, nil
}

// dateDays is the Unix day of t's date in its own location. A time in UTC
// (the rollup statements' days, dayDate) takes it by a floor division,
// not the calendar walk of Date and back.
func dateDays(t time.Time) int64 {
	if t.Location() == time.UTC {
		return floorDiv(t.Unix(), 86400)
	}
	y, m, d := t.Date()
	return time.Date(y, m, d, 0, 0, 0, 0, time.UTC).Unix() / 86400
}

// byteaArrayPlan writes a nil element as NULL, as pgx does.
type byteaArrayPlan struct{ pb *paramBuf }

func (byteaArrayPlan) takes(v any) bool { _, ok := v.([][]byte); return ok }

func (p byteaArrayPlan) Encode(value any, buf []byte) ([]byte, error) {
	a := value.([][]byte)
	if a == nil {
		return nil, nil
	}
	size := len(a) * elemLenBytes
	for _, b := range a {
		size += len(b)
	}
	start := len(buf)
	buf = p.pb.appendArrayHeader(buf, len(a), pgtype.ByteaOID, size)
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

// The Bind message pgx sends a statement's parameters in is appended to
// the connection's write buffer (pgproto3.Frontend), which pgx drops
// after each statement when it grew past 1 KiB: a statement of large
// arrays grew a new one, copying the parameters before it at each
// parameter that did not fit. A statement sent on a bindRoomTx has its
// arrays give that buffer room for the parameters encoded so far, plus
// bindSlack for the message's header and any parameters after them, from
// the connection's kept wire buffer.

// bindSlack is the room for a Bind message's header (statement name,
// formats) and the parameters after the last array.
const bindSlack = 1024

// bindRoom is a frontend message of no bytes: it makes room for n more
// in the frontend's write buffer (dst), in p.wire. wire is free when dst
// is not it: the frontend drops its buffer for a new one after it wrote
// it (when dst is wire, that holds messages to send).
type bindRoom struct {
	p *paramBuf
	n int
}

func (*bindRoom) Frontend() {}

func (*bindRoom) Decode([]byte) error { return errors.New("postgres: bindRoom is not decoded") }

func (r *bindRoom) Encode(dst []byte) ([]byte, error) {
	need := len(dst) + r.n
	if cap(dst) >= need {
		return dst, nil
	}
	w := r.p.wire
	if sameArray(dst, w) || cap(w) < need {
		w = make([]byte, 0, need+need/4)
	}
	w = append(w[:0], dst...)
	r.p.wire = w
	return w, nil
}

// bindRoomTx is a transaction whose Exec, Query, QueryRow and SendBatch
// encode their array parameters with room for the Bind message
// (paramBuf.fe): pgx encodes them on the calling goroutine, before it
// sends them. Not CopyFrom: pgx encodes its rows on a goroutine of its
// own while it sends them.
type bindRoomTx struct {
	pgx.Tx
	pb *paramBuf
}

// newBindRoomTx is tx, a bindRoomTx when its connection has flat plans.
func newBindRoomTx(tx pgx.Tx) pgx.Tx {
	if pb := paramBufOf(tx.Conn()); pb != nil {
		return bindRoomTx{Tx: tx, pb: pb}
	}
	return tx
}

// paramBufOf is the paramBuf of c's flat plans, nil when it has none.
func paramBufOf(c *pgx.Conn) *paramBuf {
	t, ok := c.TypeMap().TypeForOID(pgtype.Int4ArrayOID)
	if !ok {
		return nil
	}
	if fc, ok := t.Codec.(*flatArrayCodec); ok {
		return fc.pb
	}
	return nil
}

// arm makes p's arrays make room for the Bind message of the statement
// sent on c (of which p is the paramBuf) until disarm; nil p does nothing.
func (p *paramBuf) arm(c *pgx.Conn) {
	if p != nil {
		p.fe = c.PgConn().Frontend()
	}
}

func (p *paramBuf) disarm() {
	if p != nil {
		p.fe = nil
	}
}

func (t bindRoomTx) arm() { t.pb.arm(t.Conn()) }

func (t bindRoomTx) disarm() { t.pb.disarm() }

func (t bindRoomTx) Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error) {
	t.arm()
	defer t.disarm()
	return t.Tx.Exec(ctx, sql, args...)
}

func (t bindRoomTx) Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error) {
	t.arm()
	defer t.disarm()
	return t.Tx.Query(ctx, sql, args...)
}

func (t bindRoomTx) QueryRow(ctx context.Context, sql string, args ...any) pgx.Row {
	t.arm()
	defer t.disarm()
	return t.Tx.QueryRow(ctx, sql, args...)
}

func (t bindRoomTx) SendBatch(ctx context.Context, b *pgx.Batch) pgx.BatchResults {
	t.arm()
	defer t.disarm()
	return t.Tx.SendBatch(ctx, b)
}
