package postgres

import (
	"bytes"
	"context"
	"testing"
)

// TestArenaBytesScansAsBytes: sketches scanned into an arena are the
// bytes pgx scans into a []byte, NULL as nil and the empty marker as
// empty but not nil, rows after rows (past a chunk, and one over a
// quarter of it), each its own slice: an append to one changes no other.
func TestArenaBytesScansAsBytes(t *testing.T) {
	ctx := context.Background()
	s := newStore(t)
	rows, err := s.pool.Query(ctx, `SELECT CASE WHEN n % 5 = 0 THEN NULL WHEN n % 5 = 1 THEN ''::bytea
			ELSE decode(repeat(lpad(to_hex(n % 256), 2, '0'), CASE WHEN n % 97 = 2 THEN 20000 ELSE 1 + n % 700 END), 'hex') END
		FROM generate_series(0, 2999) n`)
	if err != nil {
		t.Fatal(err)
	}
	var (
		arena   sketchArena
		scanned = arenaBytes{a: &arena}
		got     [][]byte
	)
	for rows.Next() {
		if err := rows.Scan(&scanned); err != nil {
			t.Fatal(err)
		}
		got = append(got, scanned.v)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	rows, err = s.pool.Query(ctx, `SELECT CASE WHEN n % 5 = 0 THEN NULL WHEN n % 5 = 1 THEN ''::bytea
			ELSE decode(repeat(lpad(to_hex(n % 256), 2, '0'), CASE WHEN n % 97 = 2 THEN 20000 ELSE 1 + n % 700 END), 'hex') END
		FROM generate_series(0, 2999) n`)
	if err != nil {
		t.Fatal(err)
	}
	var want [][]byte
	for rows.Next() {
		var b []byte
		if err := rows.Scan(&b); err != nil {
			t.Fatal(err)
		}
		want = append(want, b)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	if len(got) != len(want) {
		t.Fatalf("%d rows scanned into the arena, %d into slices", len(got), len(want))
	}
	for i := range got {
		_ = append(got[i], 0xff) // must not reach the next row's bytes
	}
	for i := range want {
		if (got[i] == nil) != (want[i] == nil) || !bytes.Equal(got[i], want[i]) {
			t.Fatalf("row %d: arena %v (nil %v), slice %v (nil %v)", i, len(got[i]), got[i] == nil, len(want[i]), want[i] == nil)
		}
	}
}

// TestSketchArenaReset: after reset, the arena hands out its arrays again,
// zeroed (a sparse encoding's header and list are written over them),
// keeping at most maxSpareChunks; a large sketch gets an array of its own.
func TestSketchArenaReset(t *testing.T) {
	var a sketchArena
	var got [][]byte
	for range 3 * chunkBytes / 100 {
		b := a.alloc(100)
		for i := range b {
			b[i] = 0xff
		}
		got = append(got, b)
	}
	chunks := len(a.used)
	if chunks != 3 && chunks != 4 {
		t.Fatalf("%d arrays for %d allocations of 100 bytes in arrays of %d", chunks, len(got), chunkBytes)
	}
	if big := a.alloc(chunkBytes/4 + 1); len(a.used) != chunks || len(big) != chunkBytes/4+1 {
		t.Fatal("a large sketch went into the arena's arrays")
	}
	a.reset()
	if len(a.used) != 0 || len(a.spare) != chunks {
		t.Fatalf("after reset: %d arrays in use, %d spare, want 0 and %d", len(a.used), len(a.spare), chunks)
	}
	for range 3 * chunkBytes / 100 {
		b := a.alloc(100)
		if !bytes.Equal(b, make([]byte, 100)) {
			t.Fatal("an array handed out again is not zeroed")
		}
	}
	if len(a.spare) != 0 || len(a.used) != chunks {
		t.Fatalf("the second round made new arrays: %d spare, %d in use", len(a.spare), len(a.used))
	}
	for range (maxSpareChunks + 5) * chunkBytes / 100 {
		a.alloc(100)
	}
	a.reset()
	if len(a.spare) != maxSpareChunks {
		t.Fatalf("%d arrays kept, bound %d", len(a.spare), maxSpareChunks)
	}
}
