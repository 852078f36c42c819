package protocol

import (
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestConfigRoundTrip(t *testing.T) {
	in := Config{Version: Version, Generated: 1764000000000000,
		Sites: []Site{
			{ID: 1, MeasurementID: "G-A", APISecret: "s", TimeZone: "Europe/Madrid", Domains: []string{"a.test"},
				DNT: "cookieless", KeepParams: []string{"ref", "page"}},
			{ID: 2, MeasurementID: "G-B"},
		},
		Salts: []Salt{{Site: 1, Day: "2026-11-25", Key: make([]byte, 32)}}}
	b, err := EncodeMsg(&in)
	if err != nil {
		t.Fatal(err)
	}
	var out Config
	if err := DecodeMsg(b, &out); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(in, out); diff != "" {
		t.Fatalf("round trip (-in +out):\n%s", diff)
	}
	// A config from an aggregator that predates the policy fields decodes
	// with an empty policy: the agent's own defaults.
	type oldSite struct {
		ID            uint32 `msgpack:"i"`
		MeasurementID string `msgpack:"m"`
	}
	old, err := EncodeMsg(&struct {
		Version uint8     `msgpack:"ver"`
		Sites   []oldSite `msgpack:"s"`
	}{Version, []oldSite{{7, "G-OLD"}}})
	if err != nil {
		t.Fatal(err)
	}
	out = Config{}
	if err := DecodeMsg(old, &out); err != nil {
		t.Fatal(err)
	}
	if len(out.Sites) != 1 || out.Sites[0].DNT != "" || out.Sites[0].KeepParams != nil || out.Sites[0].ID != 7 {
		t.Fatalf("old config: %+v", out.Sites)
	}
}
