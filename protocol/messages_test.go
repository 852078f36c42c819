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

// Member states and incarnations travel in acks; an ack of an aggregator
// that predates them decodes as alive members, usable unless draining.
func TestAckMembersRoundTripAndUsable(t *testing.T) {
	in := Ack{Status: AckOK, Members: []Member{
		{Name: "a", QUICAddr: "127.0.0.2:4433", State: MemberAlive, Incarnation: 1764000000000},
		{Name: "b", QUICAddr: "127.0.0.3:4433", State: MemberSuspect, Incarnation: 1764000000001},
		{Name: "c", QUICAddr: "127.0.0.4:4433", State: MemberDead, Draining: true, Incarnation: 1764000000002},
	}}
	b, err := EncodeMsg(&in)
	if err != nil {
		t.Fatal(err)
	}
	var out Ack
	if err := DecodeMsg(b, &out); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(in, out); diff != "" {
		t.Fatalf("round trip (-in +out):\n%s", diff)
	}
	type oldMember struct {
		Name     string `msgpack:"n"`
		QUICAddr string `msgpack:"q"`
		Draining bool   `msgpack:"d,omitempty"`
	}
	old, err := EncodeMsg(&struct {
		Status  AckStatus   `msgpack:"s"`
		Members []oldMember `msgpack:"m"`
	}{AckOK, []oldMember{{"a", "127.0.0.2:4433", false}, {"b", "127.0.0.3:4433", true}}})
	if err != nil {
		t.Fatal(err)
	}
	var fromOld Ack
	if err := DecodeMsg(old, &fromOld); err != nil {
		t.Fatal(err)
	}
	f := func(m Member, want bool) {
		t.Helper()
		if got := m.Usable(); got != want {
			t.Errorf("%+v usable %v, want %v", m, got, want)
		}
	}
	f(fromOld.Members[0], true)
	f(fromOld.Members[1], false)
	f(in.Members[0], true)
	f(in.Members[1], false)
	f(in.Members[2], false)
	f(Member{State: MemberAlive, Draining: true}, false)
}
