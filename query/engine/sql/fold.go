package sql

import (
	"strings"
	"unicode"
	"unicode/utf8"
)

// CASE_INSENSITIVE_ALPHANUMERIC orders by values lower-cased the way Go
// does (strings.ToLower, rune by rune with unicode.ToLower). PostgreSQL's
// lower() follows the database's locale (ASCII only under "C", dotless i
// under Turkish), so SQL lower-cases with translate() over fixed tables
// instead: the same order on every server. (Case-insensitive filters match
// with case-fold patterns instead, see regex.go.)

// lowerTable holds every rune that unicode.ToLower changes (from) and its
// lower-case form (to), in the same order, for translate(x, from, to).
type lowerTable struct{ from, to string }

var lowerRunes = newLowerTable()

func newLowerTable() lowerTable {
	var from, to strings.Builder
	for r := rune(1); r <= unicode.MaxRune; r++ {
		if !utf8.ValidRune(r) {
			continue // surrogates: never in text
		}
		if l := unicode.ToLower(r); l != r {
			from.WriteRune(r)
			to.WriteRune(l)
		}
	}
	return lowerTable{from: from.String(), to: to.String()}
}

// asciiUpper and asciiLower map A-Z to a-z.
const (
	asciiUpper = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
	asciiLower = "abcdefghijklmnopqrstuvwxyz"
)

// lowerSQL lower-cases the text expression x like strings.ToLower. The cost
// of translate() grows with its table, so ASCII values (as many bytes as
// characters) use the 26-letter one.
func (w *Writer) lowerSQL(x string) string {
	from := w.bindShared("lower.from", lowerRunes.from)
	to := w.bindShared("lower.to", lowerRunes.to)
	return "CASE WHEN octet_length(" + x + ") = char_length(" + x + ") THEN translate(" + x + ", '" + asciiUpper + "', '" + asciiLower +
		"') ELSE translate(" + x + ", " + from + "::text, " + to + "::text) END"
}
