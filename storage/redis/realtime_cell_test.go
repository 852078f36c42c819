package redis

import (
	"bytes"
	"strings"
	"testing"

	"github.com/vmihailenco/msgpack/v5"
)

// Cell fields are written by appendCell and read by decodeCell on every
// node, and nodes of earlier versions wrote them with msgpack.Marshal:
// the two must agree byte for byte, or one cell would count under two
// fields.
func TestAppendCellIsMsgpack(t *testing.T) {
	f := func(c Cell) {
		t.Helper()
		want, err := msgpack.Marshal(&c)
		if err != nil {
			t.Fatal(err)
		}
		got := appendCell([]byte("kept"), &c)
		if !bytes.Equal(got[4:], want) || string(got[:4]) != "kept" {
			t.Fatalf("appendCell(%+v) = % x, msgpack writes % x", c, got, want)
		}
		back, err := decodeCell(got[4:])
		if err != nil || back != c {
			t.Fatalf("decodeCell gives %+v, %v, want %+v", back, err, c)
		}
	}
	f(Cell{})
	f(Cell{EventName: "page_view", Country: "DE", City: "Berlin", Device: "desktop", Screen: "Home", Visitor: 7, Active: true})
	f(Cell{Visitor: 1<<64 - 1})
	for _, n := range []int{31, 32, 255, 256, 65535, 65536} {
		s := strings.Repeat("é", n/2) + strings.Repeat("x", n%2)
		f(Cell{EventName: s, Screen: s[:n/3], City: strings.Repeat("c", n), Visitor: uint64(n)})
	}
}
