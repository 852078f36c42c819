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
	params           []byte             // empty: no parameters
	dims             [numDimKinds]int32 // by DimKind-1; the profile kinds are stored through the profile ids
	content          int32              // content_profiles id
	client, traffic  int32              // client_profiles and traffic_profiles ids
	pageView         bool               // a page_view event, for rollups (not a column)
}

// eventSource feeds rows to CopyFrom (pgx.CopyFromSource). Values returns the
// same slice each time: pgx encodes a row before asking for the next.
type eventSource struct {
	rows []eventRow
	i    int
	vals []any
}

func newEventSource(rows []eventRow) *eventSource {
	return &eventSource{rows: rows, i: -1, vals: make([]any, len(EventColumns))}
}

func (s *eventSource) Next() bool { s.i++; return s.i < len(s.rows) }

func (s *eventSource) Values() ([]any, error) {
	r := &s.rows[s.i]
	v := s.vals
	v[0], v[1], v[2], v[3], v[4], v[5] = r.ts, r.visitor, r.session, r.site, r.dims[DimEventName-1], r.dims[DimReferrer-1]
	v[6], v[7], v[8], v[9], v[10], v[11] = r.content, r.client, r.traffic, r.engage, r.flags, r.params
	return v, nil
}

func (s *eventSource) Err() error { return nil }
