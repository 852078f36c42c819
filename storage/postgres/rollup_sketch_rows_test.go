package postgres

import (
	"bytes"
	"context"
	"strings"
	"testing"
)

// TestSketchRowsRawEqualsScan: sketch rows decoded from their raw values
// are what pgx's Scan gives (ordinality, NULL as nil, the empty marker as
// empty but not nil, bytes past a quarter of the arena's chunk), over a
// read as readAndMergeSketches makes it, and through readApart's
// connection mode; fields of other types are left to Scan.
func TestSketchRowsRawEqualsScan(t *testing.T) {
	ctx := context.Background()
	s := newStore(t)
	sql := `SELECT n::int8, ` + sketchCol("n") + `, ` + sketchCol("n + 1") + `, ` + sketchCol("n + 2") + `
		FROM generate_series(1, 3000) n`
	type row struct {
		i  int64
		sk [3][]byte
	}
	read := func(q Querier, pgxOnly bool) ([]row, bool) {
		t.Helper()
		res, err := q.Query(ctx, sql)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Close()
		var arena sketchArena
		sc := newSketchRows(res.FieldDescriptions(), &arena)
		sc.raw = sc.raw && !pgxOnly
		var out []row
		for res.Next() {
			if err := sc.scan(res); err != nil {
				t.Fatal(err)
			}
			out = append(out, row{sc.i, [3][]byte{sc.scanned[0].v, sc.scanned[1].v, sc.scanned[2].v}})
		}
		if err := res.Err(); err != nil {
			t.Fatal(err)
		}
		return out, sc.raw
	}
	want, raw := read(s.pool, true)
	if raw {
		t.Fatal("pgx's Scan was not used")
	}
	conn, err := s.pool.Acquire(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Release()
	for _, q := range []Querier{s.pool, describeExec{conn.Conn(), paramBufOf(conn.Conn())}} {
		got, raw := read(q, false)
		if !raw {
			t.Fatal("the raw values were not decoded")
		}
		if len(got) != len(want) || len(got) != 3000 {
			t.Fatalf("%d rows decoded, %d scanned", len(got), len(want))
		}
		for r := range got {
			g, w := got[r], want[r]
			if g.i != w.i {
				t.Fatalf("row %d: ordinality %d, scanned %d", r, g.i, w.i)
			}
			for j := range g.sk {
				if (g.sk[j] == nil) != (w.sk[j] == nil) || !bytes.Equal(g.sk[j], w.sk[j]) {
					t.Fatalf("row %d sketch %d: %x, scanned %x", r, j, g.sk[j], w.sk[j])
				}
			}
		}
	}
	res, err := s.pool.Query(ctx, `SELECT 1::int4, ''::bytea, ''::bytea, ''::bytea`)
	if err != nil {
		t.Fatal(err)
	}
	if newSketchRows(res.FieldDescriptions(), nil).raw {
		t.Fatal("an int4 ordinality taken as raw")
	}
	res.Close()
}

// sketchCol is a bytea column of m, an SQL integer: NULL, the empty
// marker, or bytes of m, mostly short, some over a quarter of a chunk.
func sketchCol(m string) string {
	return strings.NewReplacer("m", "("+m+")").Replace(`CASE WHEN m % 5 = 0 THEN NULL WHEN m % 5 = 1 THEN ''::bytea
		ELSE decode(repeat(lpad(to_hex(m % 256), 2, '0'), CASE WHEN m % 97 = 2 THEN 20000 ELSE 1 + m % 700 END), 'hex') END`)
}
