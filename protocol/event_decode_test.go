package protocol

import (
	"fmt"
	"math"
	"reflect"
	"runtime/debug"
	"testing"

	"github.com/vmihailenco/msgpack/v5"
)

// decodeSlow is the reference: msgpack's reflection decoder.
func decodeSlow(plain []byte) (Batch, error) {
	var b Batch
	err := msgpack.Unmarshal(plain, &b)
	return b, err
}

// plainBatch is the MessagePack of a batch as an agent builds it.
func plainBatch(events []Event) []byte {
	plain := AppendBatchHead(nil, "agent-1", 7, 1_700_000_000_000_000, len(events))
	for i := range events {
		plain = AppendEvent(plain, &events[i])
	}
	return plain
}

func wideEvent() Event {
	return Event{Site: math.MaxUint32, TimeMicros: -5, Name: "page_view", Visitor: math.MaxUint64, User: 1 << 40,
		SessionID: 1_718_000_000, SessionNum: -3, Flags: 0xff, EngageMs: 1 << 50, Host: "example.com", Path: "/a",
		Title: string(make([]byte, 300)), Referrer: "https://r.example/", Language: "en-us", Screen: "1x1", Country: "DE",
		Region: "Berlin", City: "Berlin", Browser: "Chrome", BrowserVer: "126", OS: "Linux", Device: "desktop",
		Params: map[string]string{"a": "b", "": ""}, NumParams: map[string]float64{"x": 1.5, "y": math.Inf(-1)},
		UserProps: map[string]string{"plan": "pro"}}
}

// TestDecodeBatchFastMatchesMsgpack: the plain reader decodes what agents
// send (and msgpack.Marshal's forms) exactly as msgpack.Unmarshal does,
// and leaves every other form to it.
func TestDecodeBatchFastMatchesMsgpack(t *testing.T) {
	marshalled, err := msgpack.Marshal(&Batch{Version: Version, AgentID: "a", Seq: 1, Events: append(sampleEvents(), wideEvent(), Event{})})
	if err != nil {
		t.Fatal(err)
	}
	f := func(name string, plain []byte, fast bool) {
		t.Helper()
		matchesMsgpack(t, name, plain, fast)
	}
	f("agent", plainBatch(append(sampleEvents(), wideEvent(), Event{})), true)
	f("msgpack.Marshal", marshalled, true)
	f("empty", plainBatch(nil), true)
	f("runs of visitors", plainBatch(visitorRuns(60)), true)
	identityCommerce := Event{Site: 1, TimeMicros: 2, Name: "purchase", Visitor: 1 << 63, Client: 1<<63 + 5, Flags: FlagPersistent,
		Currency: "EUR", Value: 25.5, Tax: 1.25, Shipping: 3, TransactionID: "T-1"}
	f("identity and commerce fields", plainBatch([]Event{identityCommerce}), true)
	withItems := identityCommerce
	withItems.Items = []Item{{ID: "sku", Price: 12.75, Quantity: 2}}
	f("items", plainBatch([]Event{withItems}), false)
	nilValue := append(AppendBatchHead(nil, "a", 1, 0, 1), 0x81, 0xa1, 'h', 0xc0)
	f("nil string", nilValue, false)
	unknown := append(AppendBatchHead(nil, "a", 1, 0, 1), 0x81, 0xa1, 'z', 0x01)
	f("unknown key", unknown, false)
	f("truncated", plainBatch(sampleEvents())[:40], false)
	twice := append(AppendBatchHead(nil, "a", 1, 0, 1), 0x82, 0xa1, 'h', 0xa1, 'x', 0xa1, 'h', 0xa1, 'y')
	f("repeated key", twice, false)
}

// FuzzDecodeBatchFast: whatever the plain reader takes, msgpack decodes
// to the same batch.
func FuzzDecodeBatchFast(f *testing.F) {
	f.Add(plainBatch(append(sampleEvents(), wideEvent())))
	f.Add(plainBatch(nil))
	f.Add(plainBatch(visitorRuns(8)))
	f.Fuzz(func(t *testing.T, plain []byte) {
		var got Batch
		if decodeBatchFast(plain, &got, map[string]string{}, nil) != nil {
			return
		}
		want, err := decodeSlow(plain)
		if err != nil {
			t.Fatalf("msgpack refuses what the fast path took: %v", err)
		}
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("\n got %+v\nwant %+v", got, want)
		}
	})
}

func benchEventsForDecode() []byte {
	events := make([]Event, 1000)
	for i := range events {
		e := wideEvent()
		e.Title = "A title"
		events[i] = e
	}
	return plainBatch(events)
}

// visitorRuns are n events of the shape agents send: visitors' runs of
// 20 events (a 20-event POST each), the host, screen, geo and browser of
// a visitor on all of them, a page shared by a run's page view and the
// events after it, and fields that come back to an earlier value
// (Region, Referrer) or go empty.
func visitorRuns(n int) []Event {
	evs := make([]Event, n)
	for i := range evs {
		v, page := i/20, i/4
		e := Event{Site: 1, TimeMicros: int64(1_764_000_000_000_000 + i*1000), Visitor: uint64(1000 + v), SessionID: int64(1_764_000_000 + v),
			Host: "www.example.com", Path: fmt.Sprintf("/page/%d", page%37), Title: fmt.Sprintf("Page %d", page%37),
			Language: []string{"en-us", "de-de", "fr"}[v%3], Screen: []string{"1440x900", "390x844"}[v%2], Country: "DE",
			City: []string{"Berlin", "Hamburg"}[v%2], Browser: "Chrome", BrowserVer: "126", OS: "Windows", Device: "desktop"}
		if i%3 == 0 {
			e.Region = "BE"
		}
		switch i % 4 {
		case 0:
			e.Name = "page_view"
			if i%8 == 0 {
				e.Referrer = fmt.Sprintf("https://ref%d.example/", i%5)
			}
		case 1:
			e.Name, e.NumParams = "scroll", map[string]float64{"percent_scrolled": 90}
		case 2:
			e.Name, e.EngageMs = "user_engagement", int64(1000+i)
		case 3:
			e.Name, e.Params = "click", map[string]string{"link_domain": "docs.example", "outbound": "true"}
		}
		evs[i] = e
	}
	return evs
}

func BenchmarkDecodeBatchFast(b *testing.B) {
	f := func(name string, plain []byte) {
		b.Run(name, func(b *testing.B) {
			b.ReportAllocs()
			for range b.N {
				var got Batch
				if err := decodeBatchFast(plain, &got, map[string]string{}, nil); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
	f("same", benchEventsForDecode())
	f("visitors", plainBatch(visitorRuns(1000)))
}

func BenchmarkDecodeBatchMsgpack(b *testing.B) {
	plain := benchEventsForDecode()
	b.ReportAllocs()
	for range b.N {
		if _, err := decodeSlow(plain); err != nil {
			b.Fatal(err)
		}
	}
}

// DecodeBatchInto, batch after batch on pooled decoders, gives what
// msgpack gives for each, also once the strings its decoder keeps from
// earlier batches pass maxInterned (the set is emptied and refilled); and
// with the strings of an earlier batch kept, a batch of the same strings
// decodes without allocating them (nor entering them in a map) again.
func TestDecodeBatchIntoAcrossBatches(t *testing.T) {
	batches := make([][]Event, 6)
	for i := range batches {
		evs := visitorRuns(2000)
		for j := range evs {
			evs[j].Path = fmt.Sprintf("/unique/%d/%d", i, j) // 12,000 paths in all: past maxInterned
		}
		batches[i] = evs
	}
	var into Batch
	for round := range 2 {
		for i, evs := range batches {
			plain := plainBatch(evs)
			want, err := decodeSlow(plain)
			if err != nil {
				t.Fatal(err)
			}
			if err := DecodeBatchInto(&into, CompressBatch(nil, plain)); err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(into, want) {
				t.Fatalf("round %d, batch %d: DecodeBatchInto differs from msgpack", round, i)
			}
		}
	}

	// No parameters: their maps are the allocations a decode cannot spare.
	evs := visitorRuns(1000)
	for i := range evs {
		evs[i].Params, evs[i].NumParams = nil, nil
		evs[i].Path = fmt.Sprintf("/p/%d", i%300) // 300 paths, 300 titles … to intern
	}
	wire := CompressBatch(nil, plainBatch(evs))
	if err := DecodeBatchInto(&into, wire); err != nil {
		t.Fatal(err)
	}
	// A collection empties the pool of decoders, and the next decode
	// makes a decoder and interns its strings anew: under a loaded test
	// run one fell inside the measure. The count is of a decode with its
	// pooled decoder, so none runs meanwhile. The pool may still hold
	// another decoder of the rounds above (one put back on another P),
	// whose strings pass maxInterned once it takes this batch's: it
	// empties them and interns the batch again once, ~400 allocations.
	// The mean over 100 decodes holds a few such to a few allocations
	// each; a decoder that did not keep its strings allocates ~400 every
	// time.
	gc := debug.SetGCPercent(-1)
	defer debug.SetGCPercent(gc)
	allocs := testing.AllocsPerRun(100, func() {
		if err := DecodeBatchInto(&into, wire); err != nil {
			t.Fatal(err)
		}
	})
	if allocs > 20 {
		t.Fatalf("decoding a batch of strings decoded before: %.0f allocations, want at most 20", allocs)
	}
	// An EventDecoder takes the pooled decoders' strings and gives them back.
	dst := make([]Event, 0, len(evs))
	allocs = testing.AllocsPerRun(100, func() {
		var d EventDecoder
		if _, err := d.Append(dst[:0], wire); err != nil {
			t.Fatal(err)
		}
		d.Release()
	})
	if allocs > 20 {
		t.Fatalf("an EventDecoder's batch of strings decoded before: %.0f allocations, want at most 20", allocs)
	}
}

// The plain reader's caches of recent strings (event names, parameters'
// keys and values, in any order) give every event its own values: a
// name, key or value that comes back after others, or changes in length
// only, is read as sent.
func TestDecodeBatchFastRecentStrings(t *testing.T) {
	names := []string{"page_view", "scroll", "click", "page_view", "a", "b", "c", "d", "e", "page_view", "ab", "ba", "ab"}
	evs := make([]Event, len(names))
	for i, n := range names {
		evs[i] = Event{Site: 1, TimeMicros: int64(i), Name: n, Visitor: 7,
			Params:    map[string]string{"k" + n: "v", "x": n, "y": names[(i+1)%len(names)]},
			NumParams: map[string]float64{n: float64(i), "z": 1},
			UserProps: map[string]string{"plan": n + n}}
	}
	plain := plainBatch(evs)
	var got Batch
	if err := decodeBatchFast(plain, &got, map[string]string{}, nil); err != nil {
		t.Fatal(err)
	}
	want, err := decodeSlow(plain)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, want) || !reflect.DeepEqual(got.Events, evs) {
		t.Fatalf("\n got %+v\nwant %+v", got.Events, evs)
	}
}
