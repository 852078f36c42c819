package collect

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"math/bits"
	"unicode/utf8"
	"unsafe"
)

// decodeMPEvent decodes one Measurement Protocol event: its name and
// params, no other field. The commonest shape — {"name": …, "params":
// {…}} with plain strings, numbers and booleans, each key once, in
// JSON's white space — is read directly, its params' values slices of
// raw; anything else goes through encoding/json (DisallowUnknownFields),
// which also words the errors.
func decodeMPEvent(raw []byte) (mpEvent, error) {
	if ev, ok := readPlainMPEvent(raw); ok {
		return ev, nil
	}
	var ev mpEvent
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	err := dec.Decode(&ev)
	return ev, err
}

// readPlainMPEvent reads an event of the commonest shape (decodeMPEvent);
// ok is false for any other input, which it leaves to encoding/json.
func readPlainMPEvent(raw []byte) (ev mpEvent, ok bool) {
	r := jsonReader{b: raw}
	if ev, ok = r.plainEvent(); !ok {
		return mpEvent{}, false
	}
	r.space()
	return ev, r.i == len(r.b)
}

// plainEvent reads an event of the commonest shape (decodeMPEvent) from
// r's position, leaving r after its closing brace.
func (r *jsonReader) plainEvent() (ev mpEvent, ok bool) {
	if !r.byte('{') {
		return mpEvent{}, false
	}
	var seenName, seenParams bool
	for first := true; ; first = false {
		key, done, ok := r.member(first)
		if !ok {
			return mpEvent{}, false
		}
		if done {
			break
		}
		switch {
		case string(key) == "name" && !seenName:
			seenName = true
			name, ok := r.plainString()
			if !ok {
				return mpEvent{}, false
			}
			s := r.str(name)
			ev.Name = &s
		case string(key) == "params" && !seenParams:
			seenParams = true
			if ev.Params, ok = r.plainParams(); !ok {
				return mpEvent{}, false
			}
		default:
			// Another field (or a case encoding/json folds), or a repeat.
			return mpEvent{}, false
		}
	}
	ev.shared, ev.plain = r.shared, true
	return ev, true
}

// readPlainMPPayload reads a payload of the commonest shape, as
// encoding/json would decode it (DisallowUnknownFields, then nothing but
// white space after the object): an object of client_id and user_id as
// plain strings and events as an array of events of the commonest shape
// (decodeMPEvent), each key once. It returns those events decoded, one
// for each of p.Events, whose raw text is a slice of text. ok is false for
// any other input, which ParseMP leaves to encoding/json: other fields,
// null, escapes, a case encoding/json folds, a repeated key, or anything
// encoding/json refuses.
//
// text is a string, so its bytes are never written: the strings read
// from it (ids, event names, and, through mpEvent.shared, parameter
// values) are its bytes, not copies, and p.Events and the events' params
// are slices of them, to be read only. The strings keep all of text
// alive while the request's hits are in use, as a gtag.js body's lines
// keep theirs (appendGtag).
func readPlainMPPayload(text string) (p mpPayload, events []mpEvent, ok bool) {
	body := unsafe.Slice(unsafe.StringData(text), len(text))
	r := jsonReader{b: body, shared: true}
	if !r.byte('{') {
		return mpPayload{}, nil, false
	}
	var seenClient, seenUser, seenEvents bool
	for first := true; ; first = false {
		key, done, ok := r.member(first)
		if !ok {
			return mpPayload{}, nil, false
		}
		if done {
			break
		}
		switch {
		case string(key) == "client_id" && !seenClient, string(key) == "user_id" && !seenUser:
			v, ok := r.plainString()
			if !ok {
				return mpPayload{}, nil, false
			}
			s := r.str(v)
			if string(key) == "client_id" {
				seenClient, p.ClientID = true, &s
			} else {
				seenUser, p.UserID = true, &s
			}
		case string(key) == "events" && !seenEvents:
			seenEvents = true
			if !r.byte('[') {
				return mpPayload{}, nil, false
			}
			p.Events = []json.RawMessage{}
			for first := true; ; first = false {
				if r.byte(']') {
					break
				}
				if !first && !r.byte(',') {
					return mpPayload{}, nil, false
				}
				r.space()
				start := r.i
				ev, ok := r.plainEvent()
				if !ok {
					return mpPayload{}, nil, false
				}
				p.Events = append(p.Events, json.RawMessage(body[start:r.i:r.i]))
				events = append(events, ev)
			}
		default:
			return mpPayload{}, nil, false
		}
	}
	r.space()
	if r.i != len(r.b) {
		return mpPayload{}, nil, false
	}
	return p, events, true
}

// jsonReader reads plain JSON tokens from b at i.
type jsonReader struct {
	b []byte
	i int
	// shared: b is a string's bytes, never written, so the strings read
	// from it share them (str) instead of copying them.
	shared bool
}

// str is the text of b, a slice of r.b: its bytes themselves when r.b is
// shared, else a copy.
func (r *jsonReader) str(b []byte) string {
	if r.shared && len(b) > 0 {
		return unsafe.String(unsafe.SliceData(b), len(b))
	}
	return string(b)
}

// space skips JSON's white space.
func (r *jsonReader) space() {
	if r.i < len(r.b) && r.b[r.i] > ' ' { // the common case: no white space
		return
	}
	for r.i < len(r.b) {
		switch r.b[r.i] {
		case ' ', '\t', '\n', '\r':
			r.i++
		default:
			return
		}
	}
}

// byte skips white space and c, reporting whether c was next.
func (r *jsonReader) byte(c byte) bool {
	r.space()
	if r.i < len(r.b) && r.b[r.i] == c {
		r.i++
		return true
	}
	return false
}

// plainString reads a string whose text is itself (plainJSONString) and
// returns that text.
func (r *jsonReader) plainString() ([]byte, bool) {
	if !r.byte('"') {
		return nil, false
	}
	end, ok := plainStringEnd(r.b[r.i:])
	if !ok {
		return nil, false
	}
	s := r.b[r.i : r.i+end]
	r.i += end + 1
	return s, true
}

// plainStringEnd is the index in b of the quote that closes a plain
// string (plainJSONString) b starts with; ok is false when b starts with
// none. One pass, eight bytes at a time, finds the first byte that is not
// printable ASCII without a quote or backslash: the closing quote ends a
// plain string; a backslash or control character makes the string not
// plain; a byte past ASCII is left to the search for the quote and
// plainJSONString, which validate the UTF-8.
func plainStringEnd(b []byte) (end int, ok bool) {
	const ones, highs = 0x0101010101010101, 0x8080808080808080
	i := 0
	for ; i+8 <= len(b); i += 8 {
		x := binary.LittleEndian.Uint64(b[i:])
		q, bs := x^(ones*'"'), x^(ones*'\\')
		// plainJSONString's test, whose lowest flag is the first such
		// byte exactly (a borrow runs only upwards from a byte flagged).
		if found := (x | (x-ones*0x20)&^x | (q-ones)&^q | (bs-ones)&^bs) & highs; found != 0 {
			i += bits.TrailingZeros64(found) >> 3
			break
		}
	}
	for ; i < len(b); i++ {
		if c := b[i]; c < 0x20 || c == '"' || c == '\\' || c >= utf8.RuneSelf {
			break
		}
	}
	switch {
	case i == len(b):
		return 0, false
	case b[i] == '"':
		return i, true
	case b[i] >= utf8.RuneSelf:
		end := bytes.IndexByte(b[i:], '"')
		if end < 0 || !plainJSONString(b[i:i+end]) {
			return 0, false
		}
		return i + end, true
	}
	return 0, false // a backslash or control character before the quote
}

// member reads the next member's key, plain (plainString), and the colon
// after it, in an object whose '{' was read; done: the object closed
// instead. first: no member came before, so no comma is due.
func (r *jsonReader) member(first bool) (key []byte, done, ok bool) {
	if r.byte('}') {
		return nil, true, true
	}
	if !first && !r.byte(',') {
		return nil, false, false
	}
	if key, ok = r.plainString(); !ok || !r.byte(':') {
		return nil, false, false
	}
	return key, false, true
}

// plainParams reads an object of plain scalars (plain strings, numbers,
// true, false), each key once.
func (r *jsonReader) plainParams() (map[string]json.RawMessage, bool) {
	if !r.byte('{') {
		return nil, false
	}
	params := make(map[string]json.RawMessage, 8)
	for first := true; ; first = false {
		key, done, ok := r.member(first)
		if !ok {
			return nil, false
		}
		if done {
			return params, true
		}
		if _, dup := params[string(key)]; dup {
			return nil, false
		}
		r.space()
		start := r.i
		switch {
		case r.i < len(r.b) && r.b[r.i] == '"':
			if _, ok := r.plainString(); !ok {
				return nil, false
			}
		default:
			for r.i < len(r.b) && scalarBytes[r.b[r.i]] {
				r.i++
			}
			v := r.b[start:r.i]
			if !jsonNumber(v) && string(v) != "true" && string(v) != "false" {
				return nil, false
			}
		}
		params[paramName(key)] = json.RawMessage(r.b[start:r.i:r.i])
	}
}

// scalarBytes are the bytes of a number, true or false: what plainParams
// takes as a value's text before it checks it.
var scalarBytes = func() (t [256]bool) {
	for _, c := range []byte("-+.0123456789eEtrufals") {
		t[c] = true
	}
	return t
}()

// paramName is string(key), without an allocation for the parameters
// GA4's own tags send most (mpSpecialParam's and the ecommerce ones).
func paramName(key []byte) string {
	switch string(key) { // compared without a conversion
	case "page_location":
		return "page_location"
	case "page_referrer":
		return "page_referrer"
	case "page_title":
		return "page_title"
	case "language":
		return "language"
	case "screen_resolution":
		return "screen_resolution"
	case "session_id":
		return "session_id"
	case "engagement_time_msec":
		return "engagement_time_msec"
	case "currency":
		return "currency"
	case "value":
		return "value"
	case "transaction_id":
		return "transaction_id"
	case "items":
		return "items"
	}
	return string(key)
}
