package postgres

import (
	"encoding/binary"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgtype"
)

// sketchRows scans the rows of readAndMergeSketches' read (ordinality,
// users, active_users, new_users) into i and the arena's copies of the
// sketches (arenaBytes). When the columns come in binary form as int8 and
// bytea (raw), it decodes them from the row's raw values: pgx's Scan
// looks up and runs a plan per column through interfaces, where the
// values are the bytes themselves.
type sketchRows struct {
	raw     bool
	i       int64
	scanned [3]arenaBytes
	dest    []any // Scan's destinations, when not raw
}

// newSketchRows scans rows of the fields fds into arena (nil: arrays of
// their own); raw as the fields allow.
func newSketchRows(fds []pgconn.FieldDescription, arena *sketchArena) *sketchRows {
	s := &sketchRows{raw: rawSketchFields(fds)}
	for j := range s.scanned {
		s.scanned[j].a = arena
	}
	return s
}

// rawSketchFields reports whether fds are an int8 and three bytea
// columns, all in binary form.
func rawSketchFields(fds []pgconn.FieldDescription) bool {
	if len(fds) != 4 || fds[0].Format != pgtype.BinaryFormatCode || fds[0].DataTypeOID != pgtype.Int8OID {
		return false
	}
	for _, fd := range fds[1:] {
		if fd.Format != pgtype.BinaryFormatCode || fd.DataTypeOID != pgtype.ByteaOID {
			return false
		}
	}
	return true
}

// scan reads res's current row: its ordinality into i and its sketches
// into scanned (nil for NULL, empty but not nil for an empty value, as
// pgx scans a bytea).
func (s *sketchRows) scan(res pgx.Rows) error {
	if !s.raw {
		if s.dest == nil {
			// Made once, not per row: Scan's destinations escape.
			s.dest = []any{&s.i, &s.scanned[0], &s.scanned[1], &s.scanned[2]}
		}
		return res.Scan(s.dest...)
	}
	vals := res.RawValues()
	if len(vals) != 4 {
		return fmt.Errorf("scan sketches: a row of %d values, want 4", len(vals))
	}
	if len(vals[0]) != 8 {
		return fmt.Errorf("scan sketches: an ordinality of %d bytes, want 8", len(vals[0]))
	}
	s.i = int64(binary.BigEndian.Uint64(vals[0]))
	for j := range s.scanned {
		if err := s.scanned[j].ScanBytes(vals[1+j]); err != nil {
			return err
		}
	}
	return nil
}
