package plan

import (
	"errors"
	"fmt"
	"regexp/syntax"
	"strings"
	"unicode"
)

// GA4 filters take RE2 regular expressions; PostgreSQL's are Spencer AREs
// with other escapes, classes, word characters and case folding. A pattern
// is therefore parsed with Go's RE2 parser and written back as an ARE from
// the parsed tree, in a small subset whose meaning both engines share:
// every literal and class spelled as code points, case-insensitivity
// spelled out as classes of the case-fold orbit (so matching is
// case-sensitive and locale-free), groups non-capturing. Constructs without
// an exact ARE equivalent are refused. Only whether a value matches is
// used, so greedy and lazy repetition are the same.

// maxRepeat is PostgreSQL's bound on {n,m} counts.
const maxRepeat = 255

// Bounds on a translated pattern; case-insensitive classes such as \pL
// grow several times in translation. A case-insensitive inListFilter is one
// alternation of its values, hence the larger bound.
const (
	MaxPatternSQL     = 64 << 10
	maxListPatternSQL = 1 << 20
)

// PgPattern translates RE2 pattern to a PostgreSQL ARE of at most limit
// bytes. full anchors it to the whole value (FULL_REGEXP); caseSensitive
// false matches as (?i) does. Errors are for people: they say what in the
// pattern is not accepted.
func PgPattern(pattern string, full, caseSensitive bool, limit int) (string, error) {
	flags := syntax.Perl
	if !caseSensitive {
		flags |= syntax.FoldCase
	}
	re, err := syntax.Parse(pattern, flags)
	if err != nil {
		return "", err
	}
	var b strings.Builder
	if full {
		b.WriteString("^(?:")
	}
	if err := writeRegexp(&b, re); err != nil {
		return "", err
	}
	if full {
		b.WriteString(")$")
	}
	if b.Len() > limit {
		return "", fmt.Errorf("the pattern is too large once translated (over %d bytes)", limit)
	}
	return b.String(), nil
}

func writeRegexp(b *strings.Builder, re *syntax.Regexp) error {
	switch re.Op {
	case syntax.OpNoMatch:
		writeClass(b, nil)
	case syntax.OpEmptyMatch:
		b.WriteString("(?:)")
	case syntax.OpLiteral:
		for _, r := range re.Rune {
			if orbit := foldOrbit(r); re.Flags&syntax.FoldCase != 0 && len(orbit) > 2 {
				writeClass(b, orbit)
			} else {
				writeRune(b, r)
			}
		}
	case syntax.OpCharClass:
		writeClass(b, re.Rune)
	case syntax.OpAnyCharNotNL:
		writeClass(b, []rune{0, '\n' - 1, '\n' + 1, unicode.MaxRune})
	case syntax.OpAnyChar:
		writeClass(b, []rune{0, unicode.MaxRune})
	case syntax.OpBeginText:
		b.WriteString("^")
	case syntax.OpEndText:
		b.WriteString("$")
	case syntax.OpBeginLine, syntax.OpEndLine:
		return errors.New("multi-line mode (?m) is not supported")
	case syntax.OpWordBoundary, syntax.OpNoWordBoundary:
		return errors.New(`word boundaries \b and \B are not supported`)
	case syntax.OpCapture:
		return writeGroup(b, re.Sub[0], "")
	case syntax.OpStar:
		return writeGroup(b, re.Sub[0], "*")
	case syntax.OpPlus:
		return writeGroup(b, re.Sub[0], "+")
	case syntax.OpQuest:
		return writeGroup(b, re.Sub[0], "?")
	case syntax.OpRepeat:
		if re.Min > maxRepeat || re.Max > maxRepeat {
			return fmt.Errorf("repetition counts above %d are not supported", maxRepeat)
		}
		switch {
		case re.Max == -1:
			return writeGroup(b, re.Sub[0], fmt.Sprintf("{%d,}", re.Min))
		case re.Min == re.Max:
			return writeGroup(b, re.Sub[0], fmt.Sprintf("{%d}", re.Min))
		default:
			return writeGroup(b, re.Sub[0], fmt.Sprintf("{%d,%d}", re.Min, re.Max))
		}
	case syntax.OpConcat:
		if len(re.Sub) == 0 {
			b.WriteString("(?:)")
		}
		for _, sub := range re.Sub {
			if err := writeRegexp(b, sub); err != nil {
				return err
			}
		}
	case syntax.OpAlternate:
		b.WriteString("(?:")
		for i, sub := range re.Sub {
			if i > 0 {
				b.WriteString("|")
			}
			if err := writeRegexp(b, sub); err != nil {
				return err
			}
		}
		b.WriteString(")")
	default:
		return fmt.Errorf("the construct %s is not supported", re.Op)
	}
	return nil
}

// writeGroup writes sub as a non-capturing group followed by suffix.
func writeGroup(b *strings.Builder, sub *syntax.Regexp, suffix string) error {
	b.WriteString("(?:")
	if err := writeRegexp(b, sub); err != nil {
		return err
	}
	b.WriteString(")")
	b.WriteString(suffix)
	return nil
}

// writeRune writes r as itself when it is an ASCII letter or digit, else as
// a \u or \U code point escape: no character ever has a special meaning.
func writeRune(b *strings.Builder, r rune) {
	switch {
	case 'a' <= r && r <= 'z', 'A' <= r && r <= 'Z', '0' <= r && r <= '9':
		b.WriteRune(r)
	case r <= 0xFFFF:
		fmt.Fprintf(b, `\u%04x`, r)
	default:
		fmt.Fprintf(b, `\U%08x`, r)
	}
}

// writeClass writes a bracket expression of the sorted, disjoint rune
// ranges (lo, hi pairs) as RE2 stores them. NUL and surrogates cannot occur
// in PostgreSQL text and are left out; a class left empty matches nothing
// and is written as the complement of every character text may hold.
func writeClass(b *strings.Builder, ranges []rune) {
	var clipped []rune
	for i := 0; i+1 < len(ranges); i += 2 {
		lo, hi := max(ranges[i], 1), ranges[i+1]
		if lo <= 0xD7FF && hi >= 0xE000 {
			clipped = append(clipped, lo, 0xD7FF, 0xE000, hi)
			continue
		}
		if lo >= 0xD800 && lo <= 0xDFFF {
			lo = 0xE000
		}
		if hi >= 0xD800 && hi <= 0xDFFF {
			hi = 0xD7FF
		}
		if lo <= hi {
			clipped = append(clipped, lo, hi)
		}
	}
	if len(clipped) == 0 {
		b.WriteString(`[^\u0001-\ud7ff\ue000-\U0010ffff]`)
		return
	}
	b.WriteString("[")
	for i := 0; i < len(clipped); i += 2 {
		writeRune(b, clipped[i])
		if clipped[i+1] != clipped[i] {
			b.WriteString("-")
			writeRune(b, clipped[i+1])
		}
	}
	b.WriteString("]")
}

// foldOrbit is the ranges of every rune that matches r case-insensitively
// (its simple case-fold orbit), sorted.
func foldOrbit(r rune) []rune {
	runes := []rune{r}
	for f := unicode.SimpleFold(r); f != r; f = unicode.SimpleFold(f) {
		runes = append(runes, f)
	}
	// Orbits hold at most four runes: insertion sort.
	for i := 1; i < len(runes); i++ {
		for j := i; j > 0 && runes[j] < runes[j-1]; j-- {
			runes[j], runes[j-1] = runes[j-1], runes[j]
		}
	}
	out := make([]rune, 0, 2*len(runes))
	for _, x := range runes {
		out = append(out, x, x)
	}
	return out
}
