package collect

import (
	"errors"
	"net/netip"
	"testing"
	"time"

	"github.com/avila-analytics/avila/protocol"
)

// FuzzParseGtag feeds arbitrary query strings and bodies to the gtag parser
// and the event builder. Neither may panic; an accepted hit must carry the
// two required parameters and build into an event that encodes and decodes;
// a refusal must be a *ParamError naming a parameter. The seed corpus under
// testdata/fuzz/FuzzParseGtag runs with every `go test`.
func FuzzParseGtag(f *testing.F) {
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	sites := testSites(f, now)
	site, _ := sites.Lookup(testTID)
	key, err := sites.Key(site.ID, now)
	if err != nil {
		f.Fatal(err)
	}
	ip := netip.MustParseAddr("203.0.113.7")
	f.Fuzz(func(t *testing.T, query string, body []byte) {
		hits, err := ParseGtag(query, body)
		if err != nil {
			var pe *ParamError
			if !errors.As(err, &pe) || pe.Param == "" {
				t.Fatalf("error %v (%T) names no parameter", err, err)
			}
			return
		}
		if len(hits) == 0 {
			t.Fatal("no error and no hits")
		}
		for i := range hits {
			h := &hits[i]
			if h.MeasurementID == "" || h.Name == "" {
				t.Fatalf("accepted a hit without tid or en: %+v", h)
			}
			e, perr := buildEvent(h, site, key, nil, ip, "fuzz-agent", now, nil)
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
			if back.Name != h.Name || back.Visitor != e.Visitor {
				t.Fatalf("round trip changed the event: %+v vs %+v", back, e)
			}
		}
	})
}
