package ingest

import (
	"strings"
	"testing"
	"time"

	"github.com/avila-analytics/avila/protocol"
)

func TestCheckEvent(t *testing.T) {
	ok := protocol.Event{Site: 1, TimeMicros: now0.UnixMicro(), Name: "page_view", Path: "/a", Title: "A"}
	f := func(mutate func(e *protocol.Event), want string) {
		t.Helper()
		e := ok
		mutate(&e)
		got := checkEvent(&e, now0, time.Hour)
		if want == "" && got != "" || want != "" && !strings.Contains(got, want) {
			t.Errorf("checkEvent = %q, want %q", got, want)
		}
	}
	f(func(e *protocol.Event) {}, "")
	f(func(e *protocol.Event) { e.Name = strings.Repeat("é", 40) }, "")
	f(func(e *protocol.Event) { e.Name = "" }, "event name is empty")
	f(func(e *protocol.Event) { e.TimeMicros = now0.Add(time.Hour).UnixMicro() }, "")
	f(func(e *protocol.Event) { e.TimeMicros = now0.Add(time.Hour + time.Microsecond).UnixMicro() }, "ahead")
	f(func(e *protocol.Event) { e.TimeMicros = -1 << 62 }, "before 2000-01-01")
	f(func(e *protocol.Event) { e.Path = strings.Repeat("p", 1000) }, "")
	f(func(e *protocol.Event) { e.Referrer = strings.Repeat("r", 1001) }, "referrer is 1001 bytes")
	f(func(e *protocol.Event) { e.Title = strings.Repeat("t", 301) }, "title is 301 bytes")
	f(func(e *protocol.Event) { e.Host = "\xc3" }, "host is not valid UTF-8")
	f(func(e *protocol.Event) { e.Params = map[string]string{"": "x"} }, "parameter with an empty name")
	f(func(e *protocol.Event) { e.UserProps = map[string]string{"tier": "\x00"} }, "contains a NUL byte")
	f(func(e *protocol.Event) { e.NumParams = map[string]float64{strings.Repeat("k", 101): 1} }, "numeric parameter name is 101 bytes")
	f(func(e *protocol.Event) {
		e.Params = map[string]string{}
		for i := range 101 {
			e.Params[strings.Repeat("k", i+1)] = "v"
		}
	}, "101 parameters")
}
