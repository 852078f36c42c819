package postgres

import (
	"context"
	"fmt"
	"math/rand/v2"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/avila-analytics/avila/internal/testenv"
)

// TestZipArraysEqualsUnnest: the subquery of zipArrays yields the rows, in
// order, of unnest over the same arrays in FROM, with and without
// ordinality, for the column lists of the write path's statements: empty
// arrays, one element, thousands, NULL elements and extreme values.
func TestZipArraysEqualsUnnest(t *testing.T) {
	ctx := context.Background()
	pool := testenv.Pool(t, testenv.PostgresURL(t))
	sessionCols := make([]arrayColumn, len(sessionColumns))
	for i, c := range sessionColumns {
		typ := "integer"
		switch c {
		case "ts", "last_ts":
			typ = "timestamptz"
		case "visitor_id", "session_id", "engagement_ms":
			typ = "bigint"
		case "flags":
			typ = "smallint"
		}
		sessionCols[i] = arrayColumn{name: c, typ: typ}
	}
	specs := map[string][]arrayColumn{
		"rollup keys":     arrayColumns(rollupKeyColumns),
		"rollup rows":     rollupRows,
		"session rollups": sessionRollupRows,
		"sessions":        sessionCols,
		"user days":       arrayColumns("day date, visitor_id int8, cells text, sessions text"),
	}
	rnd := rand.New(rand.NewPCG(1, 2))
	for name, cols := range specs {
		for _, n := range []int{0, 1, 7, 3000} {
			args := make([]any, len(cols))
			names := make([]string, len(cols))
			casts := make([]string, len(cols))
			for j, c := range cols {
				args[j] = randomArray(t, rnd, c.typ, n)
				names[j] = c.name
				casts[j] = "$" + strconv.Itoa(j+1) + "::" + c.typ + "[]"
			}
			from := "unnest(" + strings.Join(casts, ", ") + ")"
			for _, ord := range []string{"", "i"} {
				want := "SELECT * FROM " + from + " AS u(" + strings.Join(names, ", ") + ")"
				if ord != "" {
					want = "SELECT * FROM " + from + " WITH ORDINALITY AS u(" + strings.Join(names, ", ") + ", i)"
				}
				wantRows := queryValues(ctx, t, pool, want, args)
				gotRows := queryValues(ctx, t, pool, "SELECT * FROM "+zipArrays(1, cols, ord)+" AS u", args)
				if len(wantRows) != n {
					t.Fatalf("%s, %d rows: unnest gave %d", name, n, len(wantRows))
				}
				if !reflect.DeepEqual(gotRows, wantRows) {
					t.Fatalf("%s, %d rows, ordinality %q: zipArrays differs from unnest", name, n, ord)
				}
			}
		}
	}
}

// queryValues runs q and returns its rows' values.
func queryValues(ctx context.Context, t *testing.T, pool *pgxpool.Pool, q string, args []any) [][]any {
	t.Helper()
	rows, err := pool.Query(ctx, q, args...)
	if err != nil {
		t.Fatalf("%s: %v", q, err)
	}
	out, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) ([]any, error) { return row.Values() })
	if err != nil {
		t.Fatalf("%s: %v", q, err)
	}
	return out
}

// randomArray is n random elements of the SQL type typ as pgx encodes
// them, NULL elements among those that may be NULL.
func randomArray(t *testing.T, rnd *rand.Rand, typ string, n int) any {
	switch typ {
	case "int", "integer":
		a := make([]*int32, n)
		for i := range a {
			if rnd.IntN(10) > 0 {
				v := int32(rnd.Uint32())
				if i == 0 {
					v = -1 << 31
				}
				a[i] = &v
			}
		}
		return a
	case "int2", "smallint":
		a := make([]int16, n)
		for i := range a {
			a[i] = int16(rnd.Uint32())
		}
		return a
	case "int8", "bigint":
		a := make([]int64, n)
		for i := range a {
			a[i] = int64(rnd.Uint64())
		}
		return a
	case "date":
		a := make([]time.Time, n)
		for i := range a {
			a[i] = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC).AddDate(0, 0, rnd.IntN(800)-400)
		}
		return a
	case "timestamptz":
		a := make([]time.Time, n)
		for i := range a {
			a[i] = time.UnixMicro(rnd.Int64N(4e15)).UTC()
		}
		return a
	case "bytea":
		a := make([][]byte, n)
		for i := range a {
			switch rnd.IntN(4) {
			case 0: // NULL
			case 1:
				a[i] = []byte{}
			default:
				b := make([]byte, rnd.IntN(300))
				for k := range b {
					b[k] = byte(rnd.Uint32())
				}
				a[i] = b
			}
		}
		return a
	case "text":
		a := make([]*string, n)
		for i := range a {
			if rnd.IntN(3) > 0 {
				s := fmt.Sprintf("{%d,%g}", rnd.IntN(100), rnd.Float64())
				a[i] = &s
			}
		}
		return a
	}
	t.Fatalf("randomArray: no generator for %s", typ)
	return nil
}
