package protocol

import (
	"reflect"
	"strings"
	"testing"

	"github.com/vmihailenco/msgpack/v5"
)

// Each field of an event, alone beside the four every event has, lands
// where msgpack puts it, its key as a fixstr (as agents write it) or a
// str8; a second copy of it sends the event to msgpack.
func TestDecodeBatchFastEachField(t *testing.T) {
	full := wideEvent()
	full.Client, full.Currency, full.TransactionID = 1<<62+3, "EUR", "T-9"
	full.Value, full.Tax, full.Shipping = 12.5, 0.25, -1
	fv := reflect.ValueOf(full)
	typ := fv.Type()
	entry := func(key string, long bool, v any) []byte {
		var b []byte
		if long {
			b = append([]byte{0xd9, byte(len(key))}, key...)
		} else {
			b = appendStr(nil, key)
		}
		val, err := msgpack.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		return append(b, val...)
	}
	for i := range typ.NumField() {
		tag, _, _ := strings.Cut(typ.Field(i).Tag.Get("msgpack"), ",")
		if tag == "s" || tag == "t" || tag == "n" || tag == "v" || tag == "it" {
			continue
		}
		want := Event{Site: 3, TimeMicros: 4, Name: "n", Visitor: 5}
		reflect.ValueOf(&want).Elem().Field(i).Set(fv.Field(i))
		for _, long := range []bool{false, true} {
			for _, copies := range []int{1, 2} {
				ev := []byte{0x80 | byte(4+copies)}
				ev = append(ev, entry("s", long, uint32(3))...)
				ev = append(ev, entry("t", long, int64(4))...)
				ev = append(ev, entry("n", long, "n")...)
				ev = append(ev, entry("v", long, uint64(5))...)
				for range copies {
					ev = append(ev, entry(tag, long, fv.Field(i).Interface())...)
				}
				plain := append(AppendBatchHead(nil, "a", 1, 0, 1), ev...)
				var got Batch
				err := decodeBatchFast(plain, &got, map[string]string{}, nil)
				if copies == 2 {
					if err == nil {
						t.Fatalf("%s twice (long key %v): the fast path took it", tag, long)
					}
					continue
				}
				if err != nil {
					t.Fatalf("%s (long key %v): fast path refused: %v", tag, long, err)
				}
				slow, err := decodeSlow(plain)
				if err != nil {
					t.Fatal(err)
				}
				if !reflect.DeepEqual(got, slow) || !reflect.DeepEqual(got.Events[0], want) {
					t.Fatalf("%s (long key %v):\n got %+v\nwant %+v", tag, long, got.Events[0], want)
				}
			}
		}
	}
}
