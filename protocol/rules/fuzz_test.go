package rules

import (
	"math"
	"reflect"
	"strings"
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

// Check's shortcut (passes) gives what the rules one by one give (check):
// whatever an event holds, Check's answer is check's, and an event the
// shortcut passes breaks no rule.
func FuzzCheckShortcut(f *testing.F) {
	f.Add("page_view", "/a", "Title", "https://r.example/", "DE", "k", "v", "u", "w", 1.5, int64(1_700_000_000_000_000), "", 0.0)
	f.Add("", "/\x00", "caf\xe9", "\xff", "\x00", "", "\xc3", "€€€", "\x00\x00", math.NaN(), int64(1), "EUR", 2.0)
	f.Add(strings.Repeat("n", 41), strings.Repeat("p", 1001), "t", "r", strings.Repeat("c", 101), strings.Repeat("k", 41), strings.Repeat("v", 101),
		strings.Repeat("u", 25), strings.Repeat("w", 37), math.Inf(1), int64(-1), "T-1", 0.0)
	f.Fuzz(func(t *testing.T, name, path, title, ref, country, pk, pv, uk, uv string, num float64, ts int64, txn string, value float64) {
		e := protocol.Event{Name: name, Path: path, Title: title, Referrer: ref, Country: country, City: pv, Device: uv,
			TimeMicros: ts, TransactionID: txn, Value: value}
		if pk != "x" {
			e.Params = map[string]string{pk: pv, "link": uv}
		}
		if uk != "x" {
			e.UserProps = map[string]string{uk: uv}
		}
		if pv != "x" {
			e.NumParams = map[string]float64{uk + "n": num}
		}
		want := check(&e)
		if passes(&e) && want != nil {
			t.Fatalf("the shortcut passes an event that breaks %v", want)
		}
		if got := Check(&e); !reflect.DeepEqual(got, want) {
			t.Fatalf("Check = %v, the rules one by one %v", got, want)
		}
	})
}
