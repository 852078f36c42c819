package postgres

import (
	"bytes"
	"encoding/binary"
	"io"
	"testing"
	"time"
)

// TestEventsCopyReader: the reader gives appendEventsCopy's bytes, whatever
// the size of the reads (rows split across reads, reads smaller than a
// row or than the header, a row larger than a read), and then io.EOF.
func TestEventsCopyReader(t *testing.T) {
	rows := []EventRow{
		{Site: 1, TS: time.Now(), Visitor: 2, Session: 3, Params: []byte{0x80}},
		{Site: 1, TS: time.Now(), Visitor: 2, Session: 3, Params: noParams, Commerce: 9},
		{Site: 1, TS: time.Now(), Visitor: 4, Session: 5, Params: make([]byte, 300)},
	}
	for i := range rows[2].Params {
		rows[2].Params[i] = byte(i)
	}
	for n := range len(rows) + 1 {
		want := appendEventsCopy(nil, rows[:n])
		for _, size := range []int{1, 2, 7, 19, eventCopyFixed, eventCopyFixed + 1, 200, 400, 65531} {
			r := newEventsCopyReader(rows[:n])
			var got []byte
			buf := make([]byte, size)
			for {
				k, err := r.Read(buf)
				got = append(got, buf[:k]...)
				if err == io.EOF {
					break
				}
				if err != nil {
					t.Fatal(err)
				}
				if k == 0 {
					t.Fatalf("%d rows, reads of %d: an empty read before the end", n, size)
				}
			}
			if !bytes.Equal(got, want) {
				t.Fatalf("%d rows, reads of %d: %d bytes read, want appendEventsCopy's %d", n, size, len(got), len(want))
			}
		}
	}
}

// appendEventsCopy appends rows in PostgreSQL's binary COPY format, columns
// in EventColumns order, trailer included (what eventsCopyReader reads).
func appendEventsCopy(b []byte, rows []EventRow) []byte {
	b = append(b, copyHeader...)
	for i := range rows {
		b = appendEventCopyRow(b, &rows[i])
	}
	return binary.BigEndian.AppendUint16(b, 0xffff) // trailer: -1
}
