package rules

import (
	"testing"

	"github.com/avila-analytics/avila/protocol"
)

// Whatever an event holds, once Repair accepts it Check passes, and a second
// Repair changes nothing: the aggregator's guard never refuses what the
// agent accepted.
func FuzzRepairThenCheck(f *testing.F) {
	f.Add("page_view", "/a", "Title", "https://r.example/", "en-us", "k", "v", "u", "w", int64(1_700_000_000_000_000))
	f.Add("x", "/\x00", "caf\xe9", "\xff", "\x00", "a\x00", "\xc3", "€€€", "\x00\x00", int64(1))
	f.Fuzz(func(t *testing.T, name, path, title, ref, lang, pk, pv, uk, uv string, ts int64) {
		e := protocol.Event{Name: name, Path: path, Title: title, Referrer: ref, Language: lang, Screen: pv, City: uv,
			TimeMicros: ts, Params: map[string]string{pk: pv}, UserProps: map[string]string{uk: uv}, NumParams: map[string]float64{uk + "n": 1}}
		_, v := Repair(&e)
		if v != nil {
			if Check(&e) == nil {
				t.Fatalf("Repair refused (%v) what Check accepts", v)
			}
			return
		}
		if cv := Check(&e); cv != nil {
			t.Fatalf("Repair accepted, Check refuses: %v", cv)
		}
		if again, v := Repair(&e); again != 0 || v != nil {
			t.Fatalf("second Repair: %q %v", again.Codes(), v)
		}
	})
}
