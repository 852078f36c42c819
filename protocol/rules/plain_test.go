package rules

import (
	"strings"
	"testing"
	"unicode/utf8"
)

// plainBytewise is plain one byte at a time, the definition plain's
// word-at-a-time reading is held to.
func plainBytewise(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c == 0 || c >= utf8.RuneSelf {
			return false
		}
	}
	return true
}

func TestPlain(t *testing.T) {
	f := func(s string) {
		t.Helper()
		if got, want := plain(s), plainBytewise(s); got != want {
			t.Fatalf("plain(%q) = %v, want %v", s, got, want)
		}
	}
	long := "https://www.example.com/blog/post-17?x=1"
	f("")
	f(long)
	// A NUL or a non-ASCII byte at every position of a word and of the
	// tail, and the bytes next to the bounds (0x01, 0x7f, 0x80, 0xff),
	// which a wrong borrow or mask would misread.
	for _, bad := range []byte{0x00, 0x80, 0xc3, 0xff} {
		for i := range len(long) {
			f(long[:i] + string([]byte{bad}) + long[i+1:])
		}
	}
	for _, c := range []byte{0x01, 0x7f} {
		for n := range 20 {
			f(strings.Repeat(string([]byte{c}), n))
		}
	}
	f("\x01\x00\x01\x01\x01\x01\x01\x01") // a zero above a one: the borrow case
	f("\x00\x01\x01\x01\x01\x01\x01\x01")
	// Every length up to three words and a half (plainShort's, the
	// overlapping last word's), with one odd byte at each position, so
	// that no byte falls between the words read.
	for n := range 29 {
		for i := range n {
			for _, bad := range []byte{0x00, 0x80, 0xff} {
				b := []byte(strings.Repeat("a", n))
				b[i] = bad
				f(string(b))
			}
		}
		f(strings.Repeat("\x01", n))
		f(strings.Repeat("\x7f", n))
	}
}

func FuzzPlain(f *testing.F) {
	for _, s := range []string{"", "abc", "abcdefgh\x00", "\x01\x00\x01\x01\x01\x01\x01\x01x", "café au lait, s'il vous plaît"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if got, want := plain(s), plainBytewise(s); got != want {
			t.Fatalf("plain(%q) = %v, want %v", s, got, want)
		}
	})
}
