package collect

import (
	"bytes"
	"encoding/json"
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
	if !r.byte('{') {
		return mpEvent{}, false
	}
	var seenName, seenParams bool
	for first := true; ; first = false {
		if r.byte('}') {
			break
		}
		if !first && !r.byte(',') {
			return mpEvent{}, false
		}
		key, ok := r.plainString()
		if !ok || !r.byte(':') {
			return mpEvent{}, false
		}
		switch {
		case string(key) == "name" && !seenName:
			seenName = true
			name, ok := r.plainString()
			if !ok {
				return mpEvent{}, false
			}
			s := string(name)
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
	r.space()
	return ev, r.i == len(r.b)
}

// jsonReader reads plain JSON tokens from b at i.
type jsonReader struct {
	b []byte
	i int
}

// space skips JSON's white space.
func (r *jsonReader) space() {
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
	end := bytes.IndexByte(r.b[r.i:], '"')
	if end < 0 || !plainJSONString(r.b[r.i:r.i+end]) {
		return nil, false
	}
	s := r.b[r.i : r.i+end]
	r.i += end + 1
	return s, true
}

// plainParams reads an object of plain scalars (plain strings, numbers,
// true, false), each key once.
func (r *jsonReader) plainParams() (map[string]json.RawMessage, bool) {
	if !r.byte('{') {
		return nil, false
	}
	params := make(map[string]json.RawMessage, 8)
	for first := true; ; first = false {
		if r.byte('}') {
			return params, true
		}
		if !first && !r.byte(',') {
			return nil, false
		}
		key, ok := r.plainString()
		if !ok || !r.byte(':') {
			return nil, false
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
			for r.i < len(r.b) && bytes.IndexByte([]byte("-+.0123456789eEtrufals"), r.b[r.i]) >= 0 {
				r.i++
			}
			v := r.b[start:r.i]
			if !jsonNumber(v) && string(v) != "true" && string(v) != "false" {
				return nil, false
			}
		}
		params[string(key)] = json.RawMessage(r.b[start:r.i:r.i])
	}
}
