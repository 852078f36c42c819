package query

import (
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/avila-analytics/avila/query/engine/sql"
	"github.com/vmihailenco/msgpack/v5"
)

// eventParamSQL reads one parameter with the event_param function that
// migration 003 installs.
const eventParamSQL = "SELECT event_param($1::bytea, $2, $3)"

// TestEventParam reads parameters out of params blobs in every MessagePack
// shape the writer can produce (fix, 8-, 16- and 32-bit strings and maps;
// sections before and after the one read; numbers, arrays and nested maps
// to skip) and compares with the values encoded.
func TestEventParam(t *testing.T) {
	f := newFixture(t, 0)
	ctx := context.Background()
	ps := map[string]any{"plan": "pro", "empty": "", "num": 7, "ü": "ünï", "long": strings.Repeat("x", 300), "huge": strings.Repeat("y", 70000)}
	for i := range 20 { // more than 15 entries: a map16
		ps[fmt.Sprintf("k%02d", i)] = fmt.Sprintf("v%d", i)
	}
	blob := map[string]any{
		"pn": map[string]any{"plan": 1.5, "arr": []any{int64(-1), uint64(1 << 40), "s", nil, true, map[string]any{"k": float32(2)}}, "bin": []byte{1, 2, 3}},
		"ps": ps,
		"up": map[string]any{"tier": "gold", "plan": "user-level"},
	}
	var buf bytes.Buffer
	enc := msgpack.NewEncoder(&buf)
	enc.SetSortMapKeys(true) // pn before ps: reading ps skips pn
	if err := enc.Encode(blob); err != nil {
		t.Fatal(err)
	}
	encoded := buf.Bytes()
	check := func(b []byte, section, name string, want *string) {
		t.Helper()
		var got *string
		if err := f.pool.QueryRow(ctx, eventParamSQL, b, section, name).Scan(&got); err != nil {
			t.Fatalf("event_param(%s, %s): %v", section, name, err)
		}
		if (got == nil) != (want == nil) || (got != nil && *got != *want) {
			t.Fatalf("event_param(%s, %s) = %v, want %v", section, name, sql.Deref(got), sql.Deref(want))
		}
	}
	str := func(s string) *string { return &s }
	for k, v := range ps {
		if s, ok := v.(string); ok {
			check(encoded, "ps", k, str(s))
		} else {
			check(encoded, "ps", k, nil) // not a string
		}
	}
	check(encoded, "up", "tier", str("gold"))
	check(encoded, "up", "plan", str("user-level"))
	check(encoded, "pn", "plan", nil)
	check(encoded, "ps", "absent", nil)
	check(encoded, "zz", "plan", nil)
	check(nil, "ps", "plan", nil)

	// Every truncation of a valid blob, and random bytes, read as NULL or
	// a value, never as an error.
	small, err := msgpack.Marshal(map[string]any{"pn": map[string]any{"a": []any{1.5, "x"}}, "ps": map[string]string{"plan": "pro"}})
	if err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(3, 4))
	var blobs [][]byte
	for i := range small {
		blobs = append(blobs, small[:i])
	}
	for range 300 {
		b := make([]byte, rng.IntN(40))
		for i := range b {
			b[i] = byte(rng.IntN(256))
		}
		if len(b) > 0 && rng.IntN(2) == 0 {
			b[0] = 0x80 | byte(rng.IntN(16)) // a map header, to go deeper
		}
		blobs = append(blobs, b)
	}
	var n int
	if err := f.pool.QueryRow(ctx, "SELECT count(event_param(b, 'ps', 'plan')) FROM unnest($1::bytea[]) AS u(b)", blobs).Scan(&n); err != nil {
		t.Fatalf("event_param over broken blobs: %v", err)
	}
}
