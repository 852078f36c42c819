package query

import (
	"context"
	"github.com/avila-analytics/avila/query/plan"
	"regexp"
	"strings"
	"testing"
)

// TestPgPatternMatchesRE2 is a differential test: every pattern, translated,
// must give PostgreSQL the same match/no-match answer as Go's RE2 on every
// subject, case-sensitive and not, anchored and not.
func TestPgPatternMatchesRE2(t *testing.T) {
	f := newFixture(t, 0)
	patterns := []string{
		`a`, `a.c`, `^a`, `b$`, `(?s)a.c`, `[a-c]+`, `[^a-c]`, `\d+`, `\D`, `\w+`, `\W`, `\s`, `\S+`, `\pL+`, `\PL`, `\p{Greek}`,
		`[[:alpha:]]+`, `[[:^digit:]]`, `ü`, `Straße`, `ǅ`, `k`, `x{2,3}`, `x{2}`, `x{2,}`, `(ab)*c`, `a|b|`, `(?:)`, `\.`, `\\`,
		`[\]\-^]`, `\x{1F600}`, `[\x{1F600}-\x{1F64F}]`, `.*`, `a+?b`, `(?U)a+b`, `\Aa`, `c\z`, `\Qa.b\E`, `[^\n]+`, `\n`, `\t`,
		`$^`, `a^`, `(?:^)*a`, `(?i)ü`, `(?-i:A)b`, `[\x{0}-\x{10}]`, `[\x{D7FF}-\x{E000}]`, `[^\x{0}-\x{10FFFF}]`, `(a|ab)(c|bcd)`,
		`'; DROP TABLE events; --`, `[a-z&&[^b]]`, `\x{FFFD}`, `(?i)[k-l]`, `(?i)STRASSE`, `α|Ω`, `^(?:a?){0,5}$`,
	}
	subjects := []string{
		"", "a", "abc", "ABC", "aXc", "a\nc", "ü", "Ü", "STRASSE", "straße", "Straße", "ǅ", "ǆ", "Ǆ", "K", "k", "\u212a", "L",
		"xx", "xxx", "xxxx", "ababc", "c", ".", `\`, "]", "-", "^", "&", "😀", "α", "Ω", "ω", "a.b", "tab\tx", "123", "x\ny",
		"aab", "abcd", "\u0001", "\u0010", "\ud7ff", "\ue000", "\ufffd", "'; DROP TABLE events; --", "aaaaa",
	}
	ctx := context.Background()
	for _, p := range patterns {
		for _, caseSensitive := range []bool{true, false} {
			for _, full := range []bool{false, true} {
				pg, err := plan.PgPattern(p, full, caseSensitive, plan.MaxPatternSQL)
				if err != nil {
					t.Fatalf("pgPattern(%q, full %v, cs %v): %v", p, full, caseSensitive, err)
				}
				goPattern := p
				if full {
					goPattern = "^(?:" + goPattern + ")$"
				}
				if !caseSensitive {
					goPattern = "(?i)" + goPattern
				}
				re := regexp.MustCompile(goPattern)
				var got []bool
				if err := f.pool.QueryRow(ctx, "SELECT array_agg(s ~ $2 ORDER BY i) FROM unnest($1::text[]) WITH ORDINALITY AS u(s, i)",
					subjects, pg).Scan(&got); err != nil {
					t.Fatalf("pattern %q as %q: %v", p, pg, err)
				}
				for i, s := range subjects {
					if want := re.MatchString(s); got[i] != want {
						t.Errorf("pattern %q (full %v, case-sensitive %v) as %q on %q: PostgreSQL %v, RE2 %v",
							p, full, caseSensitive, pg, s, got[i], want)
					}
				}
			}
		}
	}
}

// TestPgPatternRefuses: invalid RE2, and RE2 that PostgreSQL cannot mean
// the same way, are refused with a reason.
func TestPgPatternRefuses(t *testing.T) {
	f := func(pattern, wantInError string) {
		t.Helper()
		got, err := plan.PgPattern(pattern, false, true, plan.MaxPatternSQL)
		if err == nil || !strings.Contains(err.Error(), wantInError) {
			t.Fatalf("pgPattern(%q) = %q, %v; want an error containing %q", pattern, got, err, wantInError)
		}
	}
	f(`\bword`, `word boundaries`)
	f(`a\B`, `word boundaries`)
	f(`(?m)^a`, `multi-line`)
	f(`a(?m)$`, `multi-line`)
	f(`x{256}`, `above 255`)
	f(`x{1,300}`, `above 255`)
	f(`(`, `missing closing )`)
	f(`a**`, `invalid nested repetition`)
	f(`(?=a)`, `invalid or unsupported Perl syntax`)
	f(`(a)\1`, `invalid escape sequence`)
	f(strings.Repeat(`(?i)\pL`, 100), `too large`)
}

// FuzzPgPattern: translating any pattern never panics, and what it returns
// is bounded and holds no character outside the escape alphabet.
func FuzzPgPattern(f *testing.F) {
	for _, s := range []string{`a.c`, `(?i)straße`, `[^\x{0}-\x{10}]`, `x{2,5}|y*`, `\pL+\d?`, `(?s).`} {
		f.Add(s, true, false)
	}
	f.Fuzz(func(t *testing.T, pattern string, full, caseSensitive bool) {
		out, err := plan.PgPattern(pattern, full, caseSensitive, plan.MaxPatternSQL)
		if err != nil {
			return
		}
		if len(out) > plan.MaxPatternSQL {
			t.Fatalf("%d bytes", len(out))
		}
		if strings.Trim(out, `abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789\()[]{}?:*+|^$-,`) != "" {
			t.Fatalf("pgPattern(%q) = %q holds other characters", pattern, out)
		}
	})
}
