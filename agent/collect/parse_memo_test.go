package collect

import (
	"errors"
	"math/rand/v2"
	"reflect"
	"strings"
	"testing"
)

// oddHitValue is a value of a parameter a hit reads as an integer or
// lowers: empty, integers in and out of range, signed, not numbers, upper
// case, escaped.
func oddHitValue(r *rand.Rand) string {
	values := [...]string{"", "0", "17", "1718000000", "-1", "abc", "99999999999", "9223372036854775808", "+5", "007", "1e3",
		"en-US", "EN-us", "de", "%C3%89", "%zz"}
	return values[r.IntN(len(values))]
}

// A POST's lines read the query string's integers and language once
// (query.ints, query.lowerUL): over POSTs of lines that send them or not,
// with values of every kind, each line gives the hit, or the refusal, that
// a GET of the line's parameters followed by the query string's gives (a
// known parameter's first value counts, as a line's over the query
// string's).
func TestParseGtagLinesMatchAlone(t *testing.T) {
	r := rand.New(rand.NewPCG(9, 10))
	keys := []string{"sid", "sct", "_et", "_s", "ul"}
	for i := range 20_000 {
		query := "v=2&tid=" + testTID + "&en=page_view"
		for _, k := range keys {
			if r.IntN(2) == 0 {
				query += "&" + k + "=" + oddHitValue(r)
			}
		}
		var lines []string
		for range 1 + r.IntN(5) {
			line := "en=scroll"
			for _, k := range keys {
				if r.IntN(4) == 0 {
					line += "&" + k + "=" + oddHitValue(r)
				}
			}
			if r.IntN(8) == 0 {
				lines = append(lines, "")
			}
			lines = append(lines, line)
		}
		hits, err := ParseGtag(query, []byte(strings.Join(lines, "\n")))
		var want []Hit
		var wantErr *ParamError
		for n, line := range lines {
			if line == "" {
				continue
			}
			alone, err := ParseGtag(line+"&"+query, nil)
			if err != nil {
				if !errors.As(err, &wantErr) {
					t.Fatalf("GET %q: %v is not a *ParamError", line+"&"+query, err)
				}
				break
			}
			alone[0].line = n + 1
			want = append(want, alone[0])
		}
		if wantErr != nil {
			var perr *ParamError
			if !errors.As(err, &perr) || perr.Reason != wantErr.Reason {
				t.Fatalf("POST %d (%q, %q): error %v; GETs of each line %v", i, query, lines, err, wantErr)
			}
			continue
		}
		if err != nil || !reflect.DeepEqual(hits, want) {
			t.Fatalf("POST %d (%q, %q):\n%+v, %v\nGETs of each line:\n%+v", i, query, lines, hits, err, want)
		}
	}
}
