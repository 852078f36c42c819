package collect

import (
	"math/rand/v2"
	"net/url"
	"reflect"
	"strconv"
	"strings"
	"testing"
)

// sameAsNetURL fails unless parseQuery and url.ParseQuery agree on q: the
// same error text, and when there is no error the same values (a known
// parameter's first one in its slot, every other key's all in the map),
// with the shape counting the keys that have a dot and the item keys.
func sameAsNetURL(t *testing.T, q string) {
	t.Helper()
	got, gotErr := parseQuery(q)
	want, wantErr := url.ParseQuery(q)
	if (gotErr == nil) != (wantErr == nil) || (gotErr != nil && gotErr.Error() != wantErr.Error()) {
		t.Fatalf("parseQuery(%q) error = %v, url.ParseQuery says %v", q, gotErr, wantErr)
	}
	if gotErr != nil {
		return
	}
	wantOther := url.Values{}
	var wantKnown [numKnown]string
	var wantSent uint32
	for k, vs := range want {
		if i := knownSlot(k); i >= 0 {
			wantKnown[i], wantSent = vs[0], wantSent|1<<i
			continue
		}
		wantOther[k] = vs
	}
	if got.known != wantKnown || got.sent != wantSent {
		t.Fatalf("parseQuery(%q) known = %q (sent %b), url.ParseQuery says %q (%b)", q, got.known, got.sent, wantKnown, wantSent)
	}
	gotOther := url.Values{}
	for i, o := range got.other {
		if _, ok := gotOther[o.key]; ok {
			t.Fatalf("parseQuery(%q) holds %q twice", q, o.key)
		}
		if j := got.find(o.key); j != i {
			t.Fatalf("parseQuery(%q) finds %q at %d, not %d", q, o.key, j, i)
		}
		gotOther[o.key] = o.vals
	}
	if (len(gotOther) > 0 || len(wantOther) > 0) && !reflect.DeepEqual(gotOther, wantOther) {
		t.Fatalf("parseQuery(%q) = %v, url.ParseQuery says %v", q, gotOther, wantOther)
	}
	for k := range want {
		if knownSlot(k) < 0 && got.find(k) < 0 {
			t.Fatalf("parseQuery(%q) does not find %q", q, k)
		}
	}
	if got.find("\x00absent") >= 0 {
		t.Fatalf("parseQuery(%q) finds a key it was not sent", q)
	}
	var wantShape queryShape
	for k := range wantOther {
		if strings.Contains(k, ".") {
			wantShape.dotted++
		}
		if len(k) >= 3 && strings.HasPrefix(k, "pr") && strings.ContainsAny(k[2:3], "123456789") {
			wantShape.items++
		}
	}
	if got.shape != wantShape {
		t.Fatalf("parseQuery(%q) has shape %+v, want %+v", q, got.shape, wantShape)
	}
}

func TestParseQueryMatchesNetURL(t *testing.T) {
	for _, q := range []string{
		"",
		"&&&",
		"v=2&tid=G-1&en=page_view",
		pageView,
		// A repeated key appends to its own values, never over the next key's.
		"a=1&b=2&a=3&c=4&a=5",
		"a&b=&=c&==&a",
		"dl=https%3A%2F%2Fex.com%2F%3Fq%3D1&dt=A+B%20C",
		"ok=1&bad=%zz&worse=%",
		"k%zz=1&ok=2",
		"a=1;b=2&c=3",
		"a=%zz&b=1;c&d=%",
		"a=1&b=2;c=3&d=4;e",
		// Known parameters keep their first value, escaped or not.
		"tid=G-1&tid=G-2&en=&en=x&t%69d=G-3&dl=https%3A%2F%2Fa.test%2F&dt=A+b%2B&_ss&cu=EUR",
		"v=2&%zz=1&sid=%&sid=1&dr=%4&dr=%41%42",
		"dt=%e2%82%ac+%C3%A9&ul=en%2DUS",
		"dt=%25zz%4&dl=%2541%zz&x=a+%2B+b&y=%41&z=%4",
		// Item keys: pr and a digit from 1, each counted once.
		"pr1=id1~nmA&pr2=id2&pr=3&prx=1&pr0=1&pr10=x&pr1=dup&ep.x=1&ep.x=2",
		strings.Repeat("p=1&", 200),
		strings.Repeat("&", maxQueryParams-1) + "a=1",
		strings.Repeat("&", maxQueryParams) + "a=1",
	} {
		sameAsNetURL(t, q)
	}
}

func FuzzParseQuery(f *testing.F) {
	for _, q := range []string{pageView, "a=1&a=2&b=%zz;", "x=%41+%42&y"} {
		f.Add(q)
	}
	f.Fuzz(func(t *testing.T, q string) { sameAsNetURL(t, q) })
}

// oddQueryText is a key or value as a sender may write it: known keys,
// custom and item keys, upper case, escapes good and bad (cut short, not
// hex, of invalid UTF-8), plus signs, raw bytes that are not UTF-8, and
// texts on both sides of shortText's length with an escape at its edge.
func oddQueryText(r *rand.Rand) string {
	pieces := [...]string{"", "v", "tid", "en", "dl", "dt", "dr", "ul", "_et", "sid", "cid", "ep.x", "epn.y", "up.z", "pr1", "pr10",
		"DL", "T%69d", "%", "%4", "%zz", "%41", "%2B", "+", "a+b", "%e2%82%ac", "%ff%fe", "\xff\xfe", "page_view", "G-TEST1",
		"https%3A%2F%2Fwww.bench.example%2Fblog%2Fpost-1", "Post+7+%7C+Blog", "UPPER", "é", ".", "="}
	var b strings.Builder
	for range r.IntN(4) {
		b.WriteString(pieces[r.IntN(len(pieces))])
	}
	if r.IntN(4) == 0 {
		// An escape, plus or bad escape just before, at or after byte 16.
		b.WriteString(strings.Repeat("a", 13+r.IntN(6)))
		b.WriteString([...]string{"%41", "+", "%4", "%", "%zz", "="}[r.IntN(6)])
	}
	return b.String()
}

// parseQuery gives what url.ParseQuery gives over queries of every kind
// of key, value and separator (&, &&, ;, a second =), short and long.
func TestParseQueryGenerated(t *testing.T) {
	r := rand.New(rand.NewPCG(7, 8))
	for range 30_000 {
		var b strings.Builder
		for i := range r.IntN(8) {
			if i > 0 {
				b.WriteString([...]string{"&", "&", "&", "&&", ";", "&;"}[r.IntN(6)])
			}
			b.WriteString(oddQueryText(r))
			if r.IntN(5) != 0 {
				b.WriteString([...]string{"=", "=", "=", "=="}[r.IntN(4)])
				b.WriteString(oddQueryText(r))
			}
		}
		sameAsNetURL(t, b.String())
	}
}

// unescape decodes as url.QueryUnescape does, and fails as it does, with
// an escape, a plus or a bad escape at every position of texts of every
// length up to five words, and with two of them together.
func TestUnescapeEveryPosition(t *testing.T) {
	f := func(s string) {
		t.Helper()
		b := newQueryBuf(len(s))
		got, err := b.unescape(s)
		want, wantErr := url.QueryUnescape(s)
		if (err == nil) != (wantErr == nil) || err != nil && err.Error() != wantErr.Error() || got != want {
			t.Fatalf("unescape(%q) = %q, %v; url.QueryUnescape gives %q, %v", s, got, err, want, wantErr)
		}
	}
	for n := range 41 {
		base := strings.Repeat("aB\xff-", 11)[:n]
		f(base)
		for at := range n + 1 {
			for _, x := range []string{"%41", "+", "%e2%82%ac", "%4", "%", "%zz", "%%", "+%2B+", "%2"} {
				f(base[:at] + x + base[at:])
				f(base[:at] + x + base[at:] + "+")
			}
		}
	}
}

// unescape's eight-byte steps decode as url.QueryUnescape does over texts
// of bytes next to the escapes' ('$', '&', '*', ',', NUL, and those with
// the high bit set: '%'|0x80, '+'|0x80) with escapes at random places,
// and the texts it decoded earlier into the same arena, sized as parse
// sizes it, stay as they were while later ones are written after them.
func TestUnescapeWordsGenerated(t *testing.T) {
	r := rand.New(rand.NewPCG(11, 12))
	alphabet := []string{"a", "$", "&", "*", ",", "\x00", "\x01", "\xa5", "\xab", "\xff", "%41", "%2b", "%C3%A9", "+", "%", "%4", "%g1"}
	for range 3000 {
		texts := make([]string, 1+r.IntN(12))
		total := 0
		for i := range texts {
			var b strings.Builder
			for range r.IntN(40) {
				if r.IntN(3) == 0 {
					b.WriteString(alphabet[r.IntN(len(alphabet))])
				} else {
					b.WriteString(alphabet[r.IntN(10)])
				}
			}
			texts[i] = b.String()
			total += len(texts[i])
		}
		b := newQueryBuf(total)
		got := make([]string, len(texts))
		for i, s := range texts {
			var err error
			got[i], err = b.unescape(s)
			want, wantErr := url.QueryUnescape(s)
			if (err == nil) != (wantErr == nil) || err != nil && err.Error() != wantErr.Error() || got[i] != want {
				t.Fatalf("unescape(%q) = %q, %v; url.QueryUnescape gives %q, %v", s, got[i], err, want, wantErr)
			}
		}
		for i, s := range texts {
			if want, err := url.QueryUnescape(s); err == nil && got[i] != want {
				t.Fatalf("unescape(%q) became %q after later texts; want %q", s, got[i], want)
			}
		}
	}
}

// parseQuery gives what url.ParseQuery gives for queries of many
// parameters, few keys repeated often and many keys each once, on both
// sides of linearKeys, so that keys are found by looking at each and
// through the index; and one queryBuf parsing them in turn, as the lines
// of a POST are, gives each query's parameters alone.
func TestParseQueryManyKeys(t *testing.T) {
	r := rand.New(rand.NewPCG(31, 32))
	lines := newQueryBuf(1 << 16)
	for range 3000 {
		var b strings.Builder
		keys := 1 + r.IntN(2*linearKeys+4)
		for i := range r.IntN(3 * linearKeys) {
			if i > 0 {
				b.WriteString("&")
			}
			b.WriteString([...]string{"ep.k", "epn.n", "pr", "x", "dl"}[r.IntN(5)])
			b.WriteString(strconv.Itoa(1 + r.IntN(keys)))
			b.WriteString("=")
			b.WriteString(oddQueryText(r))
		}
		q := b.String()
		sameAsNetURL(t, q)
		got, err := lines.parse(q)
		want, wantErr := url.ParseQuery(q)
		if (err == nil) != (wantErr == nil) {
			t.Fatalf("lines.parse(%q) error = %v, url.ParseQuery says %v", q, err, wantErr)
		}
		if err != nil {
			continue
		}
		n := 0
		for k, vs := range want {
			if knownSlot(k) >= 0 {
				continue
			}
			n++
			if i := got.find(k); i < 0 || !reflect.DeepEqual(got.other[i].vals, vs) {
				t.Fatalf("lines.parse(%q): %q is at %d, want %q", q, k, i, vs)
			}
		}
		if len(got.other) != n {
			t.Fatalf("lines.parse(%q) holds %d other keys, want %d", q, len(got.other), n)
		}
	}
}

// firstEscape is strings.IndexAny(s, "%+") for texts of every length up
// to five words with '%', '+' or neither at every position, among bytes
// next to them and with the high bit set.
func TestFirstEscapeEveryPosition(t *testing.T) {
	for n := range 41 {
		base := strings.Repeat("a$&*,\x00\xa5\xab", 6)[:n]
		if got := firstEscape(base); got != -1 {
			t.Fatalf("firstEscape(%q) = %d, want -1", base, got)
		}
		for at := range n {
			for _, c := range []byte{'%', '+'} {
				b := []byte(base)
				b[at] = c
				for _, s := range []string{string(b), string(b) + "%", string(b[:at+1]) + strings.Repeat("+", n-at-1)} {
					if got, want := firstEscape(s), strings.IndexAny(s, "%+"); got != want {
						t.Fatalf("firstEscape(%q) = %d, want %d", s, got, want)
					}
				}
			}
		}
	}
}

// parseQuery parses a query string as url.ParseQuery does (same values,
// same first error), except that a known parameter keeps only its first
// value, which is the one a hit reads. It is sized for a hit: the map is
// made with room for every parameter, so it never grows, and the values
// share one backing array instead of a slice each. The shape counts the
// keys a hit is searched for by iterating over all of them, so a hit
// without any is not searched.
func parseQuery(raw string) (*query, error) {
	b := newQueryBuf(len(raw))
	return b.parse(raw)
}

// unescape is url.QueryUnescape of s. Text without '%' or '+' is s
// itself; other text is decoded into the arena, and the string returned
// is the arena's bytes, which are never written again: the arena is only
// appended to, and a new array, when it has to grow, leaves the old one to
// the strings that point into it.
func (b *queryBuf) unescape(s string) (string, error) {
	if i := firstEscape(s); i >= 0 {
		return b.unescapeFrom(s, i)
	}
	return s, nil
}
