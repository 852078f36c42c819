package protocol

import (
	"bytes"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"unsafe"

	"github.com/google/go-cmp/cmp"
	"github.com/klauspost/compress/zstd"
	"github.com/vmihailenco/msgpack/v5"
)

func sampleEvents() []Event {
	return []Event{
		{Site: 1, TimeMicros: 1_764_000_000_000_000, Name: "page_view", Visitor: 0xfeedfacecafebeef, SessionID: 1764000000,
			SessionNum: 2, Flags: FlagSessionStart | FlagEngaged, Host: "example.com", Path: "/pricing?utm_source=x",
			Title: "Pricing", Referrer: "https://news.example.org/", Language: "en-us", Screen: "1920x1080",
			Country: "DE", Browser: "Chrome", OS: "Linux", Device: "desktop"},
		{Site: 1, TimeMicros: 1_764_000_000_500_000, Name: "click", Visitor: 1, EngageMs: 1500,
			Params: map[string]string{"link_url": "https://out.example/"}, NumParams: map[string]float64{"value": 9.5},
			UserProps: map[string]string{"plan": "pro"}},
		{Site: 7, Name: "x"},
	}
}

func TestBatchRoundTrip(t *testing.T) {
	in := &Batch{Version: Version, AgentID: "agent-1", Seq: 42, Created: 1_764_000_001_000_000, Events: sampleEvents()}
	wire, err := EncodeBatch(in)
	if err != nil {
		t.Fatal(err)
	}
	out, err := DecodeBatch(wire)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(in, out); diff != "" {
		t.Fatalf("round trip changed the batch (-in +out):\n%s", diff)
	}
}

// A batch sealed from queued raw events decodes to the same events.
func TestRawBatchMatchesEncodedEvents(t *testing.T) {
	evs := sampleEvents()
	raw := make([][]byte, len(evs))
	for i := range evs {
		b, err := EncodeEvent(&evs[i])
		if err != nil {
			t.Fatal(err)
		}
		raw[i] = b
	}
	wire, err := EncodeRawBatch("a", 3, 99, raw)
	if err != nil {
		t.Fatal(err)
	}
	out, err := DecodeBatch(wire)
	if err != nil {
		t.Fatal(err)
	}
	want := &Batch{Version: Version, AgentID: "a", Seq: 3, Created: 99, Events: evs}
	if diff := cmp.Diff(want, out); diff != "" {
		t.Fatalf("(-want +got):\n%s", diff)
	}
	var e Event
	if err := DecodeEvent(raw[1], &e); err != nil || e.Name != "click" {
		t.Fatalf("DecodeEvent = %+v, %v", e, err)
	}
}

func TestDecodeBatchRefuses(t *testing.T) {
	good, _ := EncodeBatch(&Batch{Version: Version, AgentID: "a", Seq: 1})
	compress := func(v any) []byte {
		b, err := msgpack.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		enc, _ := zstd.NewWriter(nil)
		return enc.EncodeAll(b, nil)
	}
	f := func(name string, wire []byte, wantIn string) {
		t.Helper()
		_, err := DecodeBatch(wire)
		if !errors.Is(err, ErrBadBatch) {
			t.Fatalf("%s: err = %v, want ErrBadBatch", name, err)
		}
		if !bytes.Contains([]byte(err.Error()), []byte(wantIn)) {
			t.Fatalf("%s: err %q does not say %q", name, err, wantIn)
		}
	}
	f("empty", nil, "msgpack")
	f("truncated zstd", good[:len(good)-3], "zstd")
	f("not zstd", []byte("hello world, not a frame"), "zstd")
	f("not msgpack", compress("just a string"), "msgpack")
	f("wrong version", compress(&Batch{Version: 9, AgentID: "a", Seq: 1}), "version 9")
	f("no agent", compress(&Batch{Version: Version, Seq: 1}), "agent id")
	f("zero seq", compress(&Batch{Version: Version, AgentID: "a"}), "seq")
}

// A zstd bomb (small on the wire, huge decompressed) is refused without
// allocating its decompressed size.
func TestDecodeBatchBomb(t *testing.T) {
	enc, _ := zstd.NewWriter(nil)
	wire := enc.EncodeAll(make([]byte, MaxDecodedBytes+1024), nil)
	if len(wire) > 1<<20 {
		t.Fatalf("bomb is %d bytes on the wire, expected small", len(wire))
	}
	if _, err := DecodeBatch(wire); !errors.Is(err, ErrBadBatch) {
		t.Fatalf("err = %v, want ErrBadBatch", err)
	}
}

func BenchmarkEncodeRawBatch(b *testing.B) {
	evs := sampleEvents()
	raw := make([][]byte, 0, 5000)
	for i := 0; i < 5000; i++ {
		e, _ := EncodeEvent(&evs[i%2])
		raw = append(raw, e)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := EncodeRawBatch("agent", 1, 1, raw); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N*len(raw))/b.Elapsed().Seconds(), "events/s")
}

func BenchmarkDecodeBatch(b *testing.B) {
	evs := sampleEvents()
	batch := &Batch{Version: Version, AgentID: "agent", Seq: 1}
	for i := 0; i < 5000; i++ {
		batch.Events = append(batch.Events, evs[i%2])
	}
	wire, _ := EncodeBatch(batch)
	b.Run("new", func(b *testing.B) {
		b.ReportAllocs()
		b.SetBytes(int64(len(wire)))
		for b.Loop() {
			if _, err := DecodeBatch(wire); err != nil {
				b.Fatal(err)
			}
		}
	})
	// into: one Batch decoded into again and again, as ingest does.
	b.Run("into", func(b *testing.B) {
		var into Batch
		b.ReportAllocs()
		b.SetBytes(int64(len(wire)))
		for b.Loop() {
			if err := DecodeBatchInto(&into, wire); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// rawBatch is Batch with events kept as encoded MessagePack: what an
// agent's segment holds, as msgpack.Marshal writes it.
type rawBatch struct {
	Version uint8                `msgpack:"ver"`
	AgentID string               `msgpack:"a"`
	Seq     uint64               `msgpack:"q"`
	Created int64                `msgpack:"c"`
	Events  []msgpack.RawMessage `msgpack:"e"`
}

// AppendBatchHead and the events after it are the bytes msgpack.Marshal
// writes for the batch, for every size of array header and agent id.
func TestBatchHeadMatchesMsgpack(t *testing.T) {
	ev, _ := EncodeEvent(&sampleEvents()[0])
	for _, n := range []int{0, 1, 15, 16, 65535, 65536} {
		for _, id := range []string{"a", strings.Repeat("i", 31), strings.Repeat("i", 32), strings.Repeat("i", 64)} {
			rb := rawBatch{Version: Version, AgentID: id, Seq: 1<<40 + 7, Created: -12345, Events: make([]msgpack.RawMessage, n)}
			got := AppendBatchHead(nil, id, rb.Seq, rb.Created, n)
			for i := range rb.Events {
				rb.Events[i] = ev
				got = append(got, ev...)
			}
			want, err := msgpack.Marshal(&rb)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, want) {
				t.Fatalf("%d events, agent id of %d bytes: head % x, msgpack % x", n, len(id), got[:min(len(got), 64)], want[:min(len(want), 64)])
			}
		}
	}
}

// EventDecoder.Append gives what DecodeBatch gives, appended after what dst
// held, on the plain reader's path and on msgpack's (an item), and zeroes
// the capacity it reuses: events decoded there carry nothing of what the
// caller's array held before.
func TestAppendBatchEvents(t *testing.T) {
	plain := AppendBatchHead(nil, "agent-1", 1, 1_764_000_001_000_000, len(sampleEvents()))
	for _, e := range sampleEvents() {
		plain = AppendEvent(plain, &e)
	}
	fast := CompressBatch(nil, plain)
	withItem := sampleEvents()[:1]
	withItem[0].Name, withItem[0].Items = "purchase", []Item{{ID: "sku-1", Name: "Shirt", Price: 20, Quantity: 1}}
	slow, err := EncodeBatch(&Batch{Version: Version, AgentID: "agent-1", Seq: 2, Events: withItem})
	if err != nil {
		t.Fatal(err)
	}
	stale := make([]Event, 16)
	for i := range stale {
		stale[i] = Event{Site: 99, Name: "stale", Region: "left over", Params: map[string]string{"old": "yes"}}
	}
	got := stale[:1]
	want := []Event{stale[0]}
	var dec EventDecoder
	for _, wire := range [][]byte{fast, slow} {
		b, err := DecodeBatch(wire)
		if err != nil {
			t.Fatal(err)
		}
		want = append(want, b.Events...)
		if got, err = dec.Append(got, wire); err != nil {
			t.Fatal(err)
		}
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Fatalf("appended events differ from DecodeBatch's (-want +got):\n%s", diff)
	}
	n := len(got)
	got, err = dec.Append(got, fast[:len(fast)-3])
	if !errors.Is(err, ErrBadBatch) || len(got) != n {
		t.Fatalf("a bad batch: err %v, %d events, want ErrBadBatch and %d", err, len(got), n)
	}
}

// An EventDecoder gives what DecodeBatch gives for each of its batches
// (on the plain reader's path and on msgpack's), keeps each batch's
// strings intact while it reuses its buffer for the next, and gives equal
// strings of different batches one string.
func TestEventDecoder(t *testing.T) {
	wireOf := func(seq uint64, events []Event) []byte {
		plain := AppendBatchHead(nil, "agent-1", seq, 1_764_000_001_000_000, len(events))
		for _, e := range events {
			plain = AppendEvent(plain, &e)
		}
		return CompressBatch(nil, plain)
	}
	first := sampleEvents()
	second := sampleEvents()
	for i := range second {
		second[i].Path, second[i].Title = "/other/"+strings.Repeat("x", i), "Other"
	}
	withItem := sampleEvents()[:1]
	withItem[0].Name, withItem[0].Items = "purchase", []Item{{ID: "sku-1", Name: "Shirt", Price: 20, Quantity: 1}}
	slow, err := EncodeBatch(&Batch{Version: Version, AgentID: "agent-1", Seq: 3, Events: withItem})
	if err != nil {
		t.Fatal(err)
	}
	var dec EventDecoder
	var got, want []Event
	for _, wire := range [][]byte{wireOf(1, first), wireOf(2, second), slow} {
		b, err := DecodeBatch(wire)
		if err != nil {
			t.Fatal(err)
		}
		want = append(want, b.Events...)
		if got, err = dec.Append(got, wire); err != nil {
			t.Fatal(err)
		}
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Fatalf("decoded events differ from DecodeBatch's (-want +got):\n%s", diff)
	}
	n := len(first)
	if unsafe.StringData(got[0].Host) != unsafe.StringData(got[n].Host) {
		t.Fatal("the host of two batches is two strings")
	}
	// Maps written alike are one map, within the decoder's batches only.
	if !sameMap(got[1].Params, got[n+1].Params) || !sameMap(got[1].NumParams, got[n+1].NumParams) ||
		!sameMap(got[1].UserProps, got[n+1].UserProps) {
		t.Fatal("equal parameter maps of two batches are two maps")
	}
	dec.Release()
	again, err := dec.Append(nil, wireOf(1, first))
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(first, again); diff != "" {
		t.Fatalf("decoded again (-want +got):\n%s", diff)
	}
	if sameMap(got[1].Params, again[1].Params) || sameMap(got[1].NumParams, again[1].NumParams) {
		t.Fatal("a released decoder's maps reached the next decoding")
	}
	dec.Release()
}

// sameMap reports whether a and b are one map.
func sameMap[M ~map[string]V, V any](a, b M) bool {
	return reflect.ValueOf(a).UnsafePointer() == reflect.ValueOf(b).UnsafePointer()
}

// DecodeBatch gives every event maps of its own, for its caller to keep
// and change; DecodeBatchInto's events share the maps written alike
// within their batch, not with the batch before.
func TestDecodeBatchMaps(t *testing.T) {
	events := []Event{sampleEvents()[1], sampleEvents()[1]}
	plain := AppendBatchHead(nil, "agent-1", 1, 1_764_000_001_000_000, len(events))
	for _, e := range events {
		plain = AppendEvent(plain, &e)
	}
	b, err := DecodeBatch(CompressBatch(nil, plain))
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(events, b.Events); diff != "" {
		t.Fatalf("(-want +got):\n%s", diff)
	}
	if sameMap(b.Events[0].Params, b.Events[1].Params) || sameMap(b.Events[0].NumParams, b.Events[1].NumParams) ||
		sameMap(b.Events[0].UserProps, b.Events[1].UserProps) {
		t.Fatal("two events of DecodeBatch share a map")
	}
	wire := CompressBatch(nil, plain)
	var into, next Batch
	for _, b := range []*Batch{&into, &next} {
		if err := DecodeBatchInto(b, wire); err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(events, b.Events); diff != "" {
			t.Fatalf("DecodeBatchInto (-want +got):\n%s", diff)
		}
		if !sameMap(b.Events[0].Params, b.Events[1].Params) || !sameMap(b.Events[0].NumParams, b.Events[1].NumParams) ||
			!sameMap(b.Events[0].UserProps, b.Events[1].UserProps) {
			t.Fatal("two events of DecodeBatchInto written alike have maps of their own")
		}
	}
	if sameMap(into.Events[0].Params, next.Events[0].Params) || sameMap(into.Events[0].NumParams, next.Events[0].NumParams) {
		t.Fatal("a batch's events share a map with the batch decoded before")
	}
}

// BenchmarkAppendBatchEvents gathers 25 staged batches of 1000 events
// into one slice, as a derivation does: "append" decodes them in place
// (EventDecoder), "copy" decodes each into its own slice and copies
// it (DecodeBatch, the way before).
func BenchmarkAppendBatchEvents(b *testing.B) {
	evs := sampleEvents()
	batch := &Batch{Version: Version, AgentID: "agent", Seq: 1}
	for i := range 1000 {
		batch.Events = append(batch.Events, evs[i%2])
	}
	wire, err := EncodeBatch(batch)
	if err != nil {
		b.Fatal(err)
	}
	const rows = 25
	b.Run("append", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			all := make([]Event, 0, rows*1000)
			var dec EventDecoder
			for range rows {
				if all, err = dec.Append(all, wire); err != nil {
					b.Fatal(err)
				}
			}
			sink = all
		}
	})
	b.Run("copy", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			all := make([]Event, 0, rows*1000)
			for range rows {
				d, err := DecodeBatch(wire)
				if err != nil {
					b.Fatal(err)
				}
				all = append(all, d.Events...)
			}
			sink = all
		}
	})
}

// sink keeps a benchmark's result alive.
var sink []Event

// DecodeBatchInto decodes batch after batch into one Batch: each equals
// DecodeBatch's answer (nothing of the batch before left in its events or
// envelope, whatever fields the next one lacks), and a batch no larger
// than the one before reuses its events' array.
func TestDecodeBatchInto(t *testing.T) {
	full := &Batch{Version: Version, AgentID: "agent-1", Seq: 42, Created: 1_764_000_001_000_000, Events: sampleEvents()}
	bare := &Batch{Version: Version, AgentID: "a", Seq: 43, Events: []Event{{Site: 2, Name: "y"}, {Site: 2, Name: "z", Visitor: 5}}}
	var b Batch
	var array *Event
	for i, in := range []*Batch{full, bare, full, bare} {
		wire, err := EncodeBatch(in)
		if err != nil {
			t.Fatal(err)
		}
		if err := DecodeBatchInto(&b, wire); err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(in, &b); diff != "" {
			t.Fatalf("batch %d decoded into a used Batch differs (-want +got):\n%s", i, diff)
		}
		if i > 0 && &b.Events[0] != array {
			t.Fatalf("batch %d: its events got a new array; the used one had room", i)
		}
		array = &b.Events[0]
	}
	if err := DecodeBatchInto(&b, []byte("not zstd")); !errors.Is(err, ErrBadBatch) {
		t.Fatalf("bad wire: got %v, want ErrBadBatch", err)
	}
}

// An EventDecoder's buffer grows with room to spare for the batches
// after a larger one, and carries nothing of a batch into the next:
// batches of rising and falling sizes, with paths of varied lengths,
// decode as DecodeBatch decodes each.
func TestEventDecoderBufferAcrossSizes(t *testing.T) {
	wireOf := func(seq uint64, n int) []byte {
		events := make([]Event, 0, n)
		for i := range n {
			e := sampleEvents()[i%len(sampleEvents())]
			e.Path = fmt.Sprintf("/b%d/%s", seq, strings.Repeat("p", (i*7+int(seq))%90))
			events = append(events, e)
		}
		plain := AppendBatchHead(nil, "agent-1", seq, 1_764_000_001_000_000, len(events))
		for _, e := range events {
			plain = AppendEvent(plain, &e)
		}
		return CompressBatch(nil, plain)
	}
	var dec EventDecoder
	defer dec.Release()
	var got, want []Event
	var first *byte
	var size0 uint64
	for i, n := range []int{400, 3, 440, 40, 1200, 1, 900} {
		wire := wireOf(uint64(i+1), n)
		b, err := DecodeBatch(wire)
		if err != nil {
			t.Fatal(err)
		}
		want = append(want, b.Events...)
		if got, err = dec.Append(got, wire); err != nil {
			t.Fatal(err)
		}
		var h zstd.Header
		if err := h.Decode(wire); err != nil || (!h.HasFCS && n > 100) {
			t.Fatalf("batch %d: frame header %+v, %v", i, h, err)
		}
		if size := int(h.FrameContentSize); cap(dec.plain) < size {
			t.Fatalf("batch %d: buffer of %d bytes for %d", i, cap(dec.plain), size)
		}
		switch i {
		case 0:
			first = unsafe.SliceData(dec.plain)
		case 2:
			// Ten percent more than the first: the room it was given.
			if unsafe.SliceData(dec.plain) != first {
				t.Fatalf("a batch of %d bytes after one of %d: a new buffer", h.FrameContentSize, size0)
			}
		}
		if i == 0 {
			size0 = h.FrameContentSize
		}
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Fatalf("decoded events differ from DecodeBatch's (-want +got):\n%s", diff)
	}
}
