package postgres

import (
	"encoding/binary"
	"io"
	"time"
)

// NumDimKinds is the number of dictionary-coded fields of an event: the
// length of EventRow.Dims, indexed by DimKind-1.
const NumDimKinds = numDimKinds

// EventRow is one events row, typed and compact, with the dims ids of its
// profiles; CopyEvents writes it in binary COPY form (eventsCopyReader).
type EventRow struct {
	Site             int32
	TS               time.Time
	Visitor, Session int64
	Engage           int32
	Flags            int16
	Params           []byte             // empty: no parameters
	Dims             [numDimKinds]int32 // by DimKind-1; the profile kinds are stored through the profile ids
	Content          int32              // content_profiles id
	Client, Traffic  int32              // client_profiles and traffic_profiles ids
	Commerce         int32              // event_commerce id; 0: none
	PageView         bool               // a page_view event, for rollups (not a column)
	Amounts          *Amounts           // ecommerce amounts for rollups (not a column); nil: none
	SessionTraffic   int32              // the session's traffic_profiles id, for rollups (not a column)
	SessionLanding   int32              // the session's landing page (sessions.page_id), for rollups (not a column)
	DayActive        bool               // the visitor is active on the event's local day (userDays), for rollups (not a column)
}

// pgEpochMicros is 2000-01-01 UTC, PostgreSQL's epoch, in Unix
// microseconds.
const pgEpochMicros = 946_684_800_000_000

// copyHeader starts PostgreSQL's binary COPY format: signature, flags,
// header extension length.
var copyHeader = []byte("PGCOPY\n\xff\r\n\x00\x00\x00\x00\x00\x00\x00\x00\x00")

// eventCopyFixed is the size of an events row in binary COPY but its
// params' bytes: field count, 13 lengths, 3 bigints, 8 integers, a smallint.
const eventCopyFixed = 2 + 13*4 + 3*8 + 8*4 + 2

// appendEventCopyRow appends r as one row of binary COPY
// (eventCopyFixed+len(r.Params) bytes). It writes what pgx's CopyFrom
// would for the column types (timestamptz in microseconds since 2000,
// bigint, integer, smallint, bytea), without boxing a value per column.
func appendEventCopyRow(b []byte, r *EventRow) []byte {
	i64 := func(b []byte, v int64) []byte {
		return binary.BigEndian.AppendUint64(append(b, 0, 0, 0, 8), uint64(v))
	}
	i32 := func(b []byte, v int32) []byte {
		return binary.BigEndian.AppendUint32(append(b, 0, 0, 0, 4), uint32(v))
	}
	b = binary.BigEndian.AppendUint16(b, uint16(len(EventColumns)))
	b = i64(b, r.TS.UnixMicro()-pgEpochMicros)
	b = i64(b, r.Visitor)
	b = i64(b, r.Session)
	b = i32(b, r.Site)
	b = i32(b, r.Dims[DimEventName-1])
	b = i32(b, r.Dims[DimReferrer-1])
	b = i32(b, r.Content)
	b = i32(b, r.Client)
	b = i32(b, r.Traffic)
	b = i32(b, r.Engage)
	b = binary.BigEndian.AppendUint16(append(b, 0, 0, 0, 2), uint16(r.Flags))
	b = binary.BigEndian.AppendUint32(b, uint32(len(r.Params)))
	b = append(b, r.Params...)
	return i32(b, r.Commerce)
}

// eventsCopyReader reads rows in PostgreSQL's binary COPY form, columns in
// EventColumns order, trailer included, encoding them as they are read,
// straight into the reader's buffer: a COPY sends them as they are made,
// with no buffer of the whole copy.
type eventsCopyReader struct {
	rows  []EventRow
	next  int    // the next piece: -1 the header, rows[next], len(rows) the trailer
	rest  []byte // the bytes of the last piece not read yet
	spill []byte // room for a piece larger than a read's room left
}

func newEventsCopyReader(rows []EventRow) *eventsCopyReader {
	return &eventsCopyReader{rows: rows, next: -1}
}

// pieceSize is the size of the next piece.
func (r *eventsCopyReader) pieceSize() int {
	switch {
	case r.next < 0:
		return len(copyHeader)
	case r.next < len(r.rows):
		return eventCopyFixed + len(r.rows[r.next].Params)
	default:
		return 2
	}
}

// piece appends the next piece to b.
func (r *eventsCopyReader) piece(b []byte) []byte {
	switch {
	case r.next < 0:
		b = append(b, copyHeader...)
	case r.next < len(r.rows):
		b = appendEventCopyRow(b, &r.rows[r.next])
	default:
		b = binary.BigEndian.AppendUint16(b, 0xffff) // trailer: -1
	}
	r.next++
	return b
}

func (r *eventsCopyReader) Read(p []byte) (int, error) {
	n := copy(p, r.rest)
	r.rest = r.rest[n:]
	for len(r.rest) == 0 && r.next <= len(r.rows) && n < len(p) {
		if r.pieceSize() <= len(p)-n {
			n += len(r.piece(p[n:n]))
			continue
		}
		r.spill = r.piece(r.spill[:0])
		c := copy(p[n:], r.spill)
		n += c
		r.rest = r.spill[c:]
	}
	if n == 0 && len(p) > 0 {
		return 0, io.EOF
	}
	return n, nil
}
