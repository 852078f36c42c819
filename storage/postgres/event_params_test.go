package postgres

import (
	"bytes"
	"math"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/vmihailenco/msgpack/v5"

	"github.com/avila-analytics/avila/protocol"
)

// TestEncodeParams: the hand-written params column decodes as what
// msgpack.Marshal writes for EventParams does, for every mix of fields
// and string and map sizes.
func TestEncodeParams(t *testing.T) {
	long := strings.Repeat("x", 300)
	many := make(map[string]string)
	for i := range 20 {
		many[strings.Repeat("k", i+1)] = long[:i*15]
	}
	// One buffer for every case, as ResolveEventsTo shares one between its
	// rows: a column must keep its bytes whatever is appended after it.
	var buf []byte
	type written struct{ col, copied []byte }
	var cols []written
	defer func() {
		for i, w := range cols {
			if !bytes.Equal(w.col, w.copied) {
				t.Fatalf("column %d changed by later appends: %x, written %x", i, w.col, w.copied)
			}
		}
	}()
	f := func(e protocol.Event) {
		t.Helper()
		var got []byte
		got, buf = appendParamsColumn(buf, &e, nil)
		cols = append(cols, written{got, bytes.Clone(got)})
		if len(e.Params)+len(e.NumParams)+len(e.UserProps) == 0 {
			if len(got) != 0 {
				t.Fatalf("no params encoded as %x", got)
			}
			return
		}
		want, err := msgpack.Marshal(&EventParams{Params: e.Params, NumParams: e.NumParams, UserProps: e.UserProps})
		if err != nil {
			t.Fatal(err)
		}
		g, err := DecodeParams(got)
		if err != nil {
			t.Fatal(err)
		}
		w, _ := DecodeParams(want)
		if d := cmp.Diff(w, g); d != "" {
			t.Fatalf("params differ (-msgpack +appendParamsColumn):\n%s", d)
		}
		if len(got) != len(want) {
			t.Fatalf("%d bytes, msgpack.Marshal writes %d", len(got), len(want))
		}
	}
	f(protocol.Event{})
	f(protocol.Event{Params: map[string]string{"a": "b"}})
	f(protocol.Event{NumParams: map[string]float64{"x": 1.5, "neg": -2, "inf": math.Inf(1)}})
	f(protocol.Event{UserProps: map[string]string{"plan": long}})
	f(protocol.Event{Params: many, NumParams: map[string]float64{"n": 0}, UserProps: map[string]string{"": ""}})
}
