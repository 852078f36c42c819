package query

import (
	"strings"
	"unicode"
	"unicode/utf8"
)

// Case-insensitive comparison and ordering lower-case both sides the way Go
// does (strings.ToLower, rune by rune with unicode.ToLower). PostgreSQL's
// lower() follows the database's locale (ASCII only under "C"), so SQL
// lower-cases with translate() over a fixed table instead: the same result
// on every server, and the same as the values lower-cased here.

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

// lowerSQL lower-cases the text expression x like strings.ToLower.
func (w *sqlWriter) lowerSQL(x string) string {
	from := w.bindShared("lower.from", lowerRunes.from)
	to := w.bindShared("lower.to", lowerRunes.to)
	return "translate(" + x + ", " + from + "::text, " + to + "::text)"
}
