package ingest

import (
	"strings"
	"testing"
	"time"

	"github.com/avila-analytics/avila/protocol"
)

// The guard is protocol/rules' Check plus the aggregator's clock; each
// dead letter names its rule.
func TestCheckEvent(t *testing.T) {
	ok := protocol.Event{Site: 1, TimeMicros: now0.UnixMicro(), Name: "page_view", Path: "/a", Title: "A"}
	f := func(mutate func(e *protocol.Event), wantRule, want string) {
		t.Helper()
		e := ok
		mutate(&e)
		rule, got := checkEvent(&e, now0, time.Hour, nil)
		if rule != wantRule || want == "" && got != "" || want != "" && !strings.Contains(got, want) {
			t.Errorf("checkEvent = %q, %q; want %q, %q", rule, got, wantRule, want)
		}
		if rule != "" && !strings.Contains(got, "(rule "+rule+")") {
			t.Errorf("reason %q does not name rule %s", got, rule)
		}
	}
	f(func(e *protocol.Event) {}, "", "")
	f(func(e *protocol.Event) { e.Name = strings.Repeat("é", 40) }, "", "")
	f(func(e *protocol.Event) { e.Title = strings.Repeat("€", 101) }, "", "") // 303 bytes, 101 characters: GA4 counts characters
	f(func(e *protocol.Event) { e.Path = strings.Repeat("p", 1000) }, "", "")
	f(func(e *protocol.Event) { e.Name = "" }, "event_name_required", "missing event name")
	f(func(e *protocol.Event) { e.TimeMicros = now0.Add(time.Hour).UnixMicro() }, "", "")
	f(func(e *protocol.Event) { e.TimeMicros = now0.Add(time.Hour + time.Microsecond).UnixMicro() }, "event_time", "ahead")
	f(func(e *protocol.Event) { e.TimeMicros = -1 << 62 }, "event_time", "before 2000-01-01")
	f(func(e *protocol.Event) { e.Referrer = strings.Repeat("r", 421) }, "page_referrer_length", "421 characters")
	f(func(e *protocol.Event) { e.Title = strings.Repeat("t", 301) }, "page_title_length", "301 characters")
	f(func(e *protocol.Event) { e.Host = "\xc3" }, "invalid_utf8", "host: not valid UTF-8")
	f(func(e *protocol.Event) { e.Params = map[string]string{"": "x"} }, "param_name_required", "empty parameter name")
	f(func(e *protocol.Event) { e.UserProps = map[string]string{"tier": "\x00"} }, "nul_byte", "NUL")
	f(func(e *protocol.Event) { e.NumParams = map[string]float64{strings.Repeat("k", 41): 1} }, "param_name_length", "41 characters")
	f(func(e *protocol.Event) {
		e.Params = map[string]string{}
		for i := range 26 {
			e.Params[strings.Repeat("k", i+1)] = "v"
		}
	}, "param_count", "26 parameters")
}
