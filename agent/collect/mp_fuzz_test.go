package collect

import (
	"net/netip"
	"os"
	"path/filepath"
	"reflect"
	"testing"

	"github.com/avila-analytics/avila/protocol"
)

// FuzzParseMP feeds arbitrary bodies to the Measurement Protocol parser and
// the event builder. Neither may panic; a refusal lists at least one rule
// with a validation code, and an accepted body yields 1 to 25 named hits
// that build into events which survive an encode/decode round trip. The
// fixtures in testdata/mp and the corpus in testdata/fuzz/FuzzParseMP run
// with every `go test`.
func FuzzParseMP(f *testing.F) {
	addMPFixtures(f)
	sites := testSites(f, testNow)
	site, _ := sites.Lookup(testTID)
	key, err := sites.Key(site.ID, testNow)
	if err != nil {
		f.Fatal(err)
	}
	ip := netip.MustParseAddr("198.51.100.7")
	f.Fuzz(func(t *testing.T, body []byte) {
		req, msgs := ParseMP(testTID, body, testNow)
		for _, m := range msgs {
			if m.ValidationCode == "" || m.Description == "" {
				t.Fatalf("message without code or description: %+v", m)
			}
		}
		if req == nil {
			if len(msgs) == 0 {
				t.Fatal("a body was refused without a validation message")
			}
			return
		}
		if n := len(req.Hits) + len(req.Rejected); n == 0 || n > maxMPEvents {
			t.Fatalf("accepted body gave %d events (%d rejected)", n, len(req.Rejected))
		}
		if len(req.Rejected) > len(msgs) || (len(req.Rejected) > 0) != (len(msgs) > 0) {
			t.Fatalf("%d events rejected with %d messages", len(req.Rejected), len(msgs))
		}
		for i := range req.Hits {
			h := &req.Hits[i]
			if h.Name == "" || h.ClientID == "" || h.MeasurementID != testTID {
				t.Fatalf("accepted a hit without name or client id: %+v", h)
			}
			e, perr := buildEvent(h, site, key, nil, ip, "fuzz-server", testNow, nil)
			if perr != nil {
				if perr.Param != "dl" && perr.Param != "dr" {
					t.Fatalf("build refused %q: %v", perr.Param, perr)
				}
				continue
			}
			b, err := protocol.EncodeEvent(&e)
			if err != nil {
				t.Fatalf("encode: %v", err)
			}
			var back protocol.Event
			if err := protocol.DecodeEvent(b, &back); err != nil {
				t.Fatalf("decode: %v", err)
			}
			if back.Name != e.Name || back.Visitor != e.Visitor || back.TimeMicros != e.TimeMicros {
				t.Fatalf("round trip changed the event: %+v vs %+v", back, e)
			}
		}
	})
}

// samePlainMP fails unless ParseMP answers body exactly as it does when
// every payload goes through encoding/json: the same hits, rejections and
// validation messages.
func samePlainMP(t *testing.T, body []byte) {
	t.Helper()
	gotReq, gotMsgs := parseMP(testTID, body, testNow, true)
	wantReq, wantMsgs := parseMP(testTID, body, testNow, false)
	if !reflect.DeepEqual(gotReq, wantReq) || !reflect.DeepEqual(gotMsgs, wantMsgs) {
		t.Fatalf("body %q:\nread plain: %+v %+v\nencoding/json: %+v %+v", body, gotReq, gotMsgs, wantReq, wantMsgs)
	}
}

// FuzzParseMPPlain holds the plain payload reader to encoding/json's
// decoding on any body, from the fixtures and the bench's shape.
func FuzzParseMPPlain(f *testing.F) {
	addMPFixtures(f)
	f.Add(benchMP(3).body)
	f.Fuzz(samePlainMP)
}

func TestParseMPPlainMatchesJSON(t *testing.T) {
	for _, body := range []string{
		string(benchMP(1).body),
		`{"client_id":"1.2","events":[{"name":"page_view"}]}`,
		` {"user_id":"u1", "client_id":"1.2","events":[ {"name":"x","params":{"a":1,"b":"t","c":true}} ] } `,
		`{"client_id":"1.2","events":[]}`,
		`{"client_id":"1.2","events":[{"name":"a"},{"name":"b","params":{}}]}`,
		`{"client_id":"1.2","events":[{"name":"a"}]}}`,                  // encoding/json's Decoder stops at the object
		`{"client_id":"1.2","events":[{"name":"a"}]} {}`,                // data after the object
		`{"client_id":"1.2","client_id":"3.4","events":[{"name":"a"}]}`, // the last one counts
		`{"Client_ID":"1.2","events":[{"name":"a"}]}`,                   // folded case
		`{"client_id":"1.2","events":[{"name":"a"},]}`,
		`{"client_id":"1.2","events":[{"name":"a"}],"timestamp_micros":1}`,
		`{"client_id":null,"events":[{"name":"a"}]}`,
		`{"client_id":"1.\u0032","events":[{"name":"a"}]}`,
		`{"client_id":"1.2","events":[{"name":"a","params":{"items":[{"item_id":"x"}]}}]}`,
		`{"client_id":"1.2","events":[{"name":"a","params":{"v":01}}]}`,
		`{"client_id":"1.2","events":{"name":"a"}}`,
		`{"client_id":"1.2","events":[{"name":"a"}]`,
		`[]`, ``, `{}`, `{"client_id":"` + "\xff" + `","events":[{"name":"a"}]}`,
	} {
		samePlainMP(t, []byte(body))
	}
	// The bench's shape is read plain.
	if _, events, ok := readPlainMPPayload(string(benchMP(1).body)); !ok || len(events) != 25 {
		t.Fatalf("the bench's payload was not read plain: ok %v, %d events", ok, len(events))
	}
}

// addMPFixtures adds the bodies in testdata/mp to f's corpus.
func addMPFixtures(f *testing.F) {
	f.Helper()
	fixtures, err := filepath.Glob(filepath.Join("testdata", "mp", "*.json"))
	if err != nil || len(fixtures) == 0 {
		f.Fatalf("no fixtures: %v", err)
	}
	for _, name := range fixtures {
		b, err := os.ReadFile(name)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
}
