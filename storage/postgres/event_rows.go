package postgres

import (
	"encoding/binary"
	"time"
)

// NumDimKinds is the number of dictionary-coded fields of an event: the
// length of EventRow.Dims, indexed by DimKind-1.
const NumDimKinds = numDimKinds

// EventRow is one events row, typed and compact, with the dims ids of its
// profiles; CopyEvents writes it in binary COPY form (appendEventsCopy).
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

// appendEventsCopy appends rows in PostgreSQL's binary COPY format, columns
// in EventColumns order, trailer included. It writes what pgx's CopyFrom
// would for the column types (timestamptz in microseconds since 2000,
// bigint, integer, smallint, bytea), without boxing a value per column.
func appendEventsCopy(b []byte, rows []EventRow) []byte {
	b = append(b, copyHeader...)
	i64 := func(b []byte, v int64) []byte {
		return binary.BigEndian.AppendUint64(append(b, 0, 0, 0, 8), uint64(v))
	}
	i32 := func(b []byte, v int32) []byte {
		return binary.BigEndian.AppendUint32(append(b, 0, 0, 0, 4), uint32(v))
	}
	for i := range rows {
		r := &rows[i]
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
		b = i32(b, r.Commerce)
	}
	return binary.BigEndian.AppendUint16(b, 0xffff) // trailer: -1
}
