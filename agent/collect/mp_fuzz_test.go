package collect

import (
	"net/netip"
	"os"
	"path/filepath"
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
