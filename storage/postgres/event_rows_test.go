package postgres

import (
	"testing"
	"time"
)

// TestEventsCopySize: the room CopyEvents makes for its rows is what
// appendEventsCopy writes for them, so the buffer is never grown (and
// copied) while it is filled.
func TestEventsCopySize(t *testing.T) {
	rows := []EventRow{
		{Site: 1, TS: time.Now(), Visitor: 2, Session: 3, Params: []byte{0x80}},
		{Site: 1, TS: time.Now(), Visitor: 2, Session: 3, Params: noParams, Commerce: 9},
		{Site: 1, TS: time.Now(), Visitor: 4, Session: 5, Params: make([]byte, 300)},
	}
	for n := range len(rows) + 1 {
		b := make([]byte, 0, eventsCopySize(rows[:n]))
		if got := appendEventsCopy(b, rows[:n]); len(got) != cap(b) || &got[0] != &b[:1][0] {
			t.Fatalf("%d rows: %d bytes written in a buffer made for %d", n, len(got), cap(b))
		}
	}
}
