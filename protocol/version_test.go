package protocol

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/google/go-cmp/cmp"
)

var updateGolden = flag.Bool("update", false, "write testdata/staged-v<Version>.* from this build")

// withVersion is the wire batch of events with its "ver" set to v: the
// head AppendBatchHead writes holds it at byte 6 (fixmap, fixstr "ver",
// 0xcc).
func withVersion(t *testing.T, v uint8, events []Event) []byte {
	t.Helper()
	plain := AppendBatchHead(nil, "agent-1", 1, 0, len(events))
	if plain[5] != 0xcc || plain[6] != Version {
		t.Fatalf("batch head % x: no uint8 version at byte 6", plain[:8])
	}
	plain[6] = v
	for i := range events {
		plain = AppendEvent(plain, &events[i])
	}
	return CompressBatch(nil, plain)
}

// A batch of a newer version than this build's is told apart from other
// bad batches, whether the rest of it decodes or not, in every head form
// MessagePack allows; an older version or garbage is a bad batch only.
func TestNewerVersionRecognized(t *testing.T) {
	evs := sampleEvents()
	unknownBody := CompressBatch(nil, append([]byte{0x85, 0xa3, 'v', 'e', 'r', Version + 1, 0xa1, 'z'}, 0xc1)) // 0xc1: never used
	map16 := CompressBatch(nil, []byte{0xde, 0, 5, 0xa3, 'v', 'e', 'r', 0xcc, Version + 3, 0xc1})
	cases := []struct {
		name    string
		wire    []byte
		newer   bool
		version uint8 // the batch's, when newer
	}{
		{"newer, decodable", withVersion(t, Version+1, evs), true, Version + 1},
		{"newer, body of an unknown form", unknownBody, true, Version + 1},
		{"newer, map 16 head", map16, true, Version + 3},
		{"older", withVersion(t, Version-1, evs), false, 0},
		{"not msgpack", CompressBatch(nil, []byte("not a batch")), false, 0},
		{"this version", withVersion(t, Version, evs), false, 0},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := DecodeBatch(c.wire)
			var d EventDecoder
			defer d.Release()
			_, err2 := d.Append(nil, c.wire)
			for _, err := range []error{err, err2} {
				if c.name == "this version" {
					if err != nil {
						t.Fatalf("this version's batch: %v", err)
					}
					continue
				}
				if !errors.Is(err, ErrBadBatch) || errors.Is(err, ErrNewerVersion) != c.newer {
					t.Fatalf("%v: ErrBadBatch %v, ErrNewerVersion %v, want true, %v", err, errors.Is(err, ErrBadBatch), errors.Is(err, ErrNewerVersion), c.newer)
				}
				// Wrapped as a derivation wraps it, the batch's version is found.
				if v, ok := NewerVersion(fmt.Errorf("staged row 7: %w", err)); ok != c.newer || (ok && v != c.version) {
					t.Fatalf("%v: NewerVersion %d, %v; want %d, %v", err, v, ok, c.version, c.newer)
				}
			}
		})
	}
}

// Staged rows outlive the build that staged them: after an upgrade a node
// derives rows the nodes of every earlier version staged. So a batch
// stored by each version (testdata/staged-v*.batch, written by that
// version's `go test -run TestEarlierVersionsDecode -update`) must decode
// to the events stored beside it. A change of the encoding that breaks
// this needs a decoder for the earlier form, not a new golden file.
func TestEarlierVersionsDecode(t *testing.T) {
	events := goldenEvents()
	if *updateGolden {
		wire := EncodeEvents(events)
		js, err := json.MarshalIndent(events, "", "  ")
		if err != nil {
			t.Fatal(err)
		}
		base := filepath.Join("testdata", fmt.Sprintf("staged-v%d", Version))
		if err := os.WriteFile(base+".batch", wire, 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(base+".json", append(js, '\n'), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for v := 1; v <= Version; v++ {
		base := filepath.Join("testdata", fmt.Sprintf("staged-v%d", v))
		wire, err := os.ReadFile(base + ".batch")
		if err != nil {
			t.Fatalf("version %d: %v (each version keeps its golden batch)", v, err)
		}
		js, err := os.ReadFile(base + ".json")
		if err != nil {
			t.Fatal(err)
		}
		var want []Event
		if err := json.Unmarshal(js, &want); err != nil {
			t.Fatalf("%s.json: %v", base, err)
		}
		var d EventDecoder
		got, err := d.Append(nil, wire)
		d.Release()
		if err != nil {
			t.Fatalf("a batch staged by version %d does not decode: %v", v, err)
		}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Fatalf("a batch staged by version %d decodes to other events (-stored +decoded):\n%s", v, diff)
		}
	}
}

// goldenEvents fill every field of Event and Item once, so a golden batch
// holds each.
func goldenEvents() []Event {
	evs := sampleEvents()
	evs = append(evs, Event{Site: 3, TimeMicros: 1_764_000_002_000_000, Name: "purchase", Visitor: 77, User: 78, Client: 79,
		SessionID: 1764000001, SessionNum: 1, Flags: FlagPersistent | FlagKeyEvent | FlagNonInteraction | FlagFirstVisit,
		Host: "shop.example", Path: "/checkout/done", Title: "Thanks", Region: "Bavaria", City: "Munich", BrowserVer: "131",
		Currency: "EUR", Value: 59.9, Tax: 9.56, Shipping: 4.9, TransactionID: "T-1001",
		Items: []Item{{ID: "SKU-1", Name: "Mug", Brand: "Avila", Category: "Home", Category2: "Kitchen", Category3: "Cups",
			Category4: "Mugs", Category5: "Ceramic", Variant: "blue", ListID: "related", ListName: "Related products",
			PromotionName: "Spring", Affiliation: "web", Coupon: "WELCOME", Price: 27.5, Discount: 2.5, Quantity: 2}}})
	return evs
}
