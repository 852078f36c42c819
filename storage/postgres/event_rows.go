package postgres

import "time"

// NumDimKinds is the number of dictionary-coded fields of an event: the
// length of EventRow.Dims, indexed by DimKind-1.
const NumDimKinds = numDimKinds

// EventRow is one events row, typed and compact, with the dims ids of its
// profiles; values are boxed for pgx only while the row is encoded. (pgx
// encodes plain values without allocating, pointers through reflection at
// ~1 allocation each.)
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
}

// eventSource feeds rows to CopyFrom (pgx.CopyFromSource). Values returns the
// same slice each time: pgx encodes a row before asking for the next.
type eventSource struct {
	rows []EventRow
	i    int
	vals []any
}

func newEventSource(rows []EventRow) *eventSource {
	return &eventSource{rows: rows, i: -1, vals: make([]any, len(EventColumns))}
}

func (s *eventSource) Next() bool { s.i++; return s.i < len(s.rows) }

func (s *eventSource) Values() ([]any, error) {
	r := &s.rows[s.i]
	v := s.vals
	v[0], v[1], v[2], v[3], v[4], v[5] = r.TS, r.Visitor, r.Session, r.Site, r.Dims[DimEventName-1], r.Dims[DimReferrer-1]
	v[6], v[7], v[8], v[9], v[10], v[11], v[12] = r.Content, r.Client, r.Traffic, r.Engage, r.Flags, r.Params, r.Commerce
	return v, nil
}

func (s *eventSource) Err() error { return nil }
