package postgres

import "time"

// eventRow is one events row, typed and compact; values are boxed for pgx
// only while the row is encoded. (pgx encodes plain values without
// allocating, pointers through reflection at ~1 allocation each.)
type eventRow struct {
	site             int32
	ts               time.Time
	visitor, session int64
	engage           int32
	flags            int16
	params           []byte // nil → NULL
	dims             [numDimKinds]int32
	pageView         bool // a page_view event, for rollups (not a column)
}

// eventSource feeds rows to CopyFrom (pgx.CopyFromSource). Values returns the
// same slice each time: pgx encodes a row before asking for the next.
type eventSource struct {
	rows []eventRow
	i    int
	vals []any
}

func newEventSource(rows []eventRow) *eventSource {
	return &eventSource{rows: rows, i: -1, vals: make([]any, len(eventColumns))}
}

func (s *eventSource) Next() bool { s.i++; return s.i < len(s.rows) }

func (s *eventSource) Values() ([]any, error) {
	r := &s.rows[s.i]
	v := s.vals
	v[0], v[1], v[2], v[3], v[4], v[5] = r.site, r.ts, r.visitor, r.session, r.engage, r.flags
	if r.params == nil {
		v[6] = nil // an untyped nil: NULL
	} else {
		v[6] = r.params
	}
	for k, id := range r.dims {
		v[7+k] = id
	}
	return v, nil
}

func (s *eventSource) Err() error { return nil }
