package protocol

import (
	"reflect"
	"testing"
)

// matchesMsgpack checks that the plain reader decodes plain as msgpack
// does, or leaves it to msgpack (fast false).
func matchesMsgpack(t *testing.T, name string, plain []byte, fast bool) {
	t.Helper()
	var got Batch
	ferr := decodeBatchFast(plain, &got, map[string]string{}, nil)
	if (ferr == nil) != fast {
		t.Fatalf("%s: fast path err = %v, want taken = %v", name, ferr, fast)
	}
	if ferr != nil {
		return
	}
	want, err := decodeSlow(plain)
	if err != nil {
		t.Fatalf("%s: msgpack refuses what the fast path took: %v", name, err)
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("%s:\n got %+v\nwant %+v", name, got, want)
	}
}

// entry is a map entry: a fixstr key and its value's MessagePack.
func entry(key string, value ...byte) []byte { return append(appendStr(nil, key), value...) }

// str is a string value's MessagePack.
func str(s string) []byte { return appendStr(nil, s) }

// eventOf is the MessagePack of an event of the entries, in their order.
func eventOf(entries ...[]byte) []byte {
	ev := appendMapLen(nil, len(entries))
	for _, e := range entries {
		ev = append(ev, e...)
	}
	return ev
}

// batchOf is a batch of the events' MessagePack.
func batchOf(events ...[]byte) []byte {
	plain := AppendBatchHead(nil, "a", 1, 0, len(events))
	for _, e := range events {
		plain = append(plain, e...)
	}
	return plain
}

// The in-order reader and the place fields taken from the event before
// (placeMemo) decode what msgpack decodes: events whose place fields are
// the previous event's, or one more, one fewer, one other value, of
// another length; fields written out of order; repeated keys.
func TestDecodeBatchFastInOrder(t *testing.T) {
	place := func(lang, city, device string) Event {
		return Event{Site: 1, TimeMicros: 2, Name: "page_view", Visitor: 3, Host: "h.example", Path: "/",
			Language: lang, Screen: "1x1", Country: "DE", City: city, Browser: "Chrome", Device: device}
	}
	a := place("en", "Berlin", "desktop")
	longer, shorter, other, lastByte := a, a, a, a
	longer.OS, shorter.Device, other.City, lastByte.Device = "Linux", "", "Bremen", "desktoP"
	otherLen := place("en-us", "Berlin", "desktop")
	noPlace := Event{Site: 1, TimeMicros: 2, Name: "scroll", Visitor: 3, NumParams: map[string]float64{"p": 90}}
	events := []Event{a, a, longer, longer, a, shorter, shorter, a, other, a, otherLen, a, lastByte, a, noPlace, a, a}
	matchesMsgpack(t, "agent's events", plainBatch(events), true)
	for i := range events {
		events[i].Visitor = uint64(i % 2) // same place fields, alternating visitors
	}
	matchesMsgpack(t, "alternating visitors", plainBatch(events), true)

	head := [][]byte{entry("s", 0x01), entry("t", 0x02), entry("n", str("x")...), entry("v", 0x03)}
	l, c, d := entry("l", str("en")...), entry("c", str("DE")...), entry("d", str("mobile")...)
	ev := func(entries ...[]byte) []byte { return eventOf(append(append([][]byte{}, head...), entries...)...) }
	matchesMsgpack(t, "place fields out of order, then in order", batchOf(ev(d, l, c), ev(l, c, d), ev(l, c, d)), true)
	matchesMsgpack(t, "in order, then out of order", batchOf(ev(l, c, d), ev(d, l, c), ev(l, c, d)), true)
	matchesMsgpack(t, "a place field after the others", batchOf(ev(d, l), ev(d, c)), true)
	matchesMsgpack(t, "place fields before the ids", batchOf(ev(l, c), eventOf(l, c, head[0], head[1], head[2], head[3])), true)
	matchesMsgpack(t, "a place field repeated after those taken", batchOf(ev(l, c), ev(l, c, l)), false)
	matchesMsgpack(t, "a place field repeated after the first", batchOf(ev(l, c), ev(l, l)), false)
	matchesMsgpack(t, "an event's place field again after its others", batchOf(ev(l, c, d), ev(l, c, d, c)), false)
	// An event of fewer entries than the place fields of the one before
	// that follow it: those bytes are not its entries. msgpack refuses
	// the batch; so must the plain reader (it leaves it to msgpack).
	short := append(eventOf(append(append([][]byte{}, head...), l)...), c...)
	matchesMsgpack(t, "the entries after an event's end", batchOf(ev(l, c), short, ev(l, c)), false)
}
