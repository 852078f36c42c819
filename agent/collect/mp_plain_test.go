package collect

import (
	"math/rand/v2"
	"reflect"
	"strings"
	"testing"
)

// oddMPValue is a parameter value as a sender may write it: plain strings
// short and long, in upper case and not ASCII, escapes, invalid UTF-8,
// control characters, numbers of every shape, booleans, null, an object.
func oddMPValue(r *rand.Rand) string {
	values := [...]string{`""`, `"a"`, `"Post 7 | Blog"`, `"UPPER Case"`, `"café ☕"`, `"https://www.example.com/p?q=1"`,
		`"` + strings.Repeat("x", 100) + `"`, `"` + strings.Repeat("X", 101) + `"`, `"` + strings.Repeat("é", 100) + `"`,
		`"` + strings.Repeat("é", 101) + `"`, `"` + strings.Repeat("€", 700) + `"`, `"a\"b"`, `"\u00e9"`, `"a\\b"`, `"%41+%zz"`,
		"\"tab\tx\"", "\"caf\xe9\"", "\"\xff\"", `"17"`, `"1.5e3"`, `"-3"`,
		`0`, `-0`, `1200`, `-1200`, `1e3`, `1.5`, `-1.5e-3`, `9007199254740993`, `1e400`, `123456789`, `01`,
		`true`, `false`, `null`, `{"a":1}`, `[1]`}
	return values[r.IntN(len(values))]
}

// oddMPName is a parameter name: GA4's special ones, ordinary, reserved,
// too long, empty, not ASCII.
func oddMPName(r *rand.Rand) string {
	names := [...]string{"page_location", "page_referrer", "page_title", "language", "screen_resolution", "session_id",
		"engagement_time_msec", "currency", "value", "transaction_id", "link_domain", "Percent", "_x", "ga_x", "",
		strings.Repeat("n", 41), "é", "a b", "x1", "outbound"}
	return names[r.IntN(len(names))]
}

// oddMPEvent is an event's JSON of up to 6 parameters of oddMPName and
// oddMPValue.
func oddMPEvent(r *rand.Rand) string {
	var b strings.Builder
	b.WriteString(`{"name":"click","params":{`)
	for i := range r.IntN(7) {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(`"` + oddMPName(r) + `":` + oddMPValue(r))
	}
	b.WriteString("}}")
	return b.String()
}

// A plain event's parameter values are read as they were found plain
// (plainScalar): over events of every kind of value, a hit made so is the
// hit, and the messages the messages, of reading each value afresh
// (scalarOf), whether the values share the body's bytes or not.
func TestPlainScalarMatchesScalar(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 6))
	read := 0
	for i := range 20_000 {
		raw := oddMPEvent(r)
		for _, shared := range []bool{false, true} {
			var ev mpEvent
			var ok bool
			if shared {
				var events []mpEvent
				_, events, ok = readPlainMPPayload(`{"client_id":"1.2","events":[` + raw + `]}`)
				if ok {
					ev = events[0]
				}
			} else {
				ev, ok = readPlainMPEvent([]byte(raw))
			}
			if !ok {
				continue
			}
			read++
			if !ev.plain || ev.shared != shared {
				t.Fatalf("event %d %s: read plain, but plain %v, shared %v", i, raw, ev.plain, ev.shared)
			}
			fresh := ev
			fresh.plain = false
			gotHit, gotMsgs := mpHitOf(ev)
			wantHit, wantMsgs := mpHitOf(fresh)
			if !reflect.DeepEqual(gotHit, wantHit) || !reflect.DeepEqual(gotMsgs, wantMsgs) {
				t.Fatalf("event %d %s (shared %v):\nas read plain: %+v %v\nread afresh:    %+v %v", i, raw, shared, gotHit, gotMsgs, wantHit, wantMsgs)
			}
		}
	}
	if read < 10_000 {
		t.Fatalf("only %d of 40,000 events were read plain", read)
	}
}

// mpHitOf is the hit mpEventHit makes of ev and the messages it adds.
func mpHitOf(ev mpEvent) (Hit, []ValidationMessage) {
	var msgs []ValidationMessage
	add := func(path, code, format string, args ...any) {
		msgs = append(msgs, ValidationMessage{FieldPath: path, Description: format, ValidationCode: code})
	}
	var h Hit
	mpEventHit(&h, 0, nil, &ev, add)
	return h, msgs
}
