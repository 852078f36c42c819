package collect

import (
	"bytes"
	"encoding/json"
	"reflect"
	"testing"
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
