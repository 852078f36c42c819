package collect

import (
	"bytes"
	"encoding/json"
	"reflect"
	"strings"
	"testing"
	"unicode/utf8"
)

// samePlainMPEvent fails unless readPlainMPEvent, when it reads raw, gives
// what encoding/json gives; it reports whether it read raw.
func samePlainMPEvent(t *testing.T, raw string) (plain bool) {
	t.Helper()
	got, ok := readPlainMPEvent([]byte(raw))
	if !ok {
		return false
	}
	var want mpEvent
	dec := json.NewDecoder(bytes.NewReader([]byte(raw)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&want); err != nil || dec.More() {
		t.Fatalf("readPlainMPEvent read %q, which encoding/json refuses: %v", raw, err)
	}
	got.plain = false // how it was read, not what
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("readPlainMPEvent(%q) = %s; encoding/json gives %s", raw, describeMPEvent(got), describeMPEvent(want))
	}
	return true
}

func describeMPEvent(ev mpEvent) string {
	name := "<nil>"
	if ev.Name != nil {
		name = *ev.Name
	}
	params := map[string]string{}
	for k, v := range ev.Params {
		params[k] = string(v)
	}
	b, _ := json.Marshal(params)
	return "name " + name + ", params " + string(b)
}

func TestPlainMPEvent(t *testing.T) {
	for _, raw := range []string{
		`{"name":"page_view","params":{"page_location":"https://a.test/x","session_id":"17","engagement_time_msec":120}}`,
		" {\n\t\"params\" : { \"a\" : true , \"b\":false,\"c\":-1.5e3 } , \"name\" : \"x\" }\r\n",
		`{"name":"e"}`, `{"params":{}}`, `{}`, `{"name":"","params":{"é":"ü"}}`,
	} {
		if !samePlainMPEvent(t, raw) {
			t.Fatalf("readPlainMPEvent(%q) left a plain event to encoding/json", raw)
		}
	}
	for _, raw := range []string{
		`{"Name":"x"}`, `{"name":"x","name":"y"}`, `{"name":"x","extra":1}`, `{"name":null}`, `{"params":null}`,
		`{"params":{"a":1,"a":2}}`, `{"params":{"a":{"b":1}}}`, `{"params":{"items":[]}}`, `{"params":{"a":null}}`,
		`{"name":"a\"b"}`, `{"params":{"k\u0041":1}}`, `{"params":{"a":01}}`, `{"params":{"a":tru}}`, `{"params":{"a":1,}}`,
		`{"name":"x",}`, `{"name":"x"} x`, "{\"name\":\"\xff\"}", `[1]`, `{"name":"x"`, "{\"name\":\"x\"}\v",
	} {
		if samePlainMPEvent(t, raw) {
			t.Fatalf("readPlainMPEvent(%q) read an event it must leave to encoding/json", raw)
		}
	}
}

func FuzzPlainMPEvent(f *testing.F) {
	for _, raw := range []string{`{"name":"a","params":{"b":"c","d":1,"e":true}}`, `{"params":{"x":-0.5e-3}}`, `{"name":"x","name":"y"}`} {
		f.Add(raw)
	}
	f.Fuzz(func(t *testing.T, raw string) { samePlainMPEvent(t, raw) })
}

// plainJSONStringRef is plainJSONString byte by byte, the reference its
// eight-byte steps are held to.
func plainJSONStringRef(b []byte) bool {
	for _, c := range b {
		if c < 0x20 || c == '"' || c == '\\' {
			return false
		}
	}
	return utf8.Valid(b)
}

func TestPlainJSONStringMatchesReference(t *testing.T) {
	base := []byte("https://www.bench.example/blog/post-12 | Bench Example blog")
	for _, c := range []byte{0, 0x1f, 0x20, '"', '\\', '!', '#', 0x7f, 0x80, 0xc3, 0xff, '~'} {
		for at := range len(base) {
			b := append([]byte(nil), base...)
			b[at] = c
			for cut := range len(b) + 1 {
				if got, want := plainJSONString(b[:cut]), plainJSONStringRef(b[:cut]); got != want {
					t.Fatalf("plainJSONString(%q) = %v, want %v", b[:cut], got, want)
				}
			}
		}
	}
	for _, s := range []string{"", "é", "Sé  café ☕ ok", "12345678\xc3", "1234567\xc3\xa9", "\xe2\x82", strings.Repeat("a", 64) + "\""} {
		if got, want := plainJSONString([]byte(s)), plainJSONStringRef([]byte(s)); got != want {
			t.Fatalf("plainJSONString(%q) = %v, want %v", s, got, want)
		}
	}
}

func FuzzPlainJSONString(f *testing.F) {
	f.Add([]byte("https://www.bench.example/blog/post-12"))
	f.Add([]byte("Post 12 | Bench\x1f Example \"blog\""))
	f.Add([]byte("caf\xc3\xa9 and \xff"))
	f.Fuzz(func(t *testing.T, b []byte) {
		if got, want := plainJSONString(b), plainJSONStringRef(b); got != want {
			t.Fatalf("plainJSONString(%q) = %v, want %v", b, got, want)
		}
	})
}

// plainStringEndRef is plainStringEnd as a search for the quote and
// then plainJSONString of what comes before it.
func plainStringEndRef(b []byte) (int, bool) {
	end := bytes.IndexByte(b, '"')
	if end < 0 || !plainJSONString(b[:end]) {
		return 0, false
	}
	return end, true
}

// plainStringEnd finds what the search for the quote and plainJSONString
// find, with every byte at every position of texts up to five words long,
// before and after the closing quote, and with none.
func TestPlainStringEndEveryByte(t *testing.T) {
	f := func(b []byte) {
		t.Helper()
		end, ok := plainStringEnd(b)
		wantEnd, wantOK := plainStringEndRef(b)
		if end != wantEnd || ok != wantOK {
			t.Fatalf("plainStringEnd(%q) = %d, %v; want %d, %v", b, end, ok, wantEnd, wantOK)
		}
	}
	text := []byte(`https://www.bench.example/blog/post-12" , "x\"`)
	for n := range 41 {
		for _, tail := range []string{`"`, `", "k":1}`, "", `\"`, "é\""} {
			s := append(append([]byte(nil), text[:n]...), tail...)
			f(s)
			for at := range len(s) {
				for c := range 256 {
					b := append([]byte(nil), s...)
					b[at] = byte(c)
					f(b)
				}
			}
		}
	}
	for _, s := range []string{"é\"", "caf\xc3\xa9 ok\"", "\xe2\x82\"", "12345678\xc3\xa9\"", "\xff\"", "☕☕☕☕\"x"} {
		f([]byte(s))
	}
}

// The table of a scalar's bytes holds those of "-+.0123456789eEtrufals"
// and no other.
func TestScalarBytes(t *testing.T) {
	for c := range 256 {
		if got, want := scalarBytes[c], strings.IndexByte("-+.0123456789eEtrufals", byte(c)) >= 0; got != want {
			t.Fatalf("scalarBytes[%q] = %v, want %v", byte(c), got, want)
		}
	}
}
