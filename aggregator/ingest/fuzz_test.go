package ingest

import (
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/avila-analytics/avila/protocol"
	"github.com/avila-analytics/avila/protocol/rules"
)

// FuzzCheckEvent decodes arbitrary MessagePack as an event and checks that
// whatever checkEvent accepts can be stored: text PostgreSQL can hold, within
// the bounds the dictionaries' indexes allow (2000 bytes; a btree entry
// holds about 2700), at a time partitions exist for.
func FuzzCheckEvent(f *testing.F) {
	seed := func(e protocol.Event) {
		b, err := protocol.EncodeEvent(&e)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	seed(protocol.Event{Site: 1, TimeMicros: now0.UnixMicro(), Name: "page_view", Path: "/a?utm_source=x", Title: "Ä", Params: map[string]string{"k": "v"}})
	seed(protocol.Event{Site: 1, TimeMicros: now0.UnixMicro(), Name: "n\x00", City: "\xff"})
	seed(protocol.Event{TimeMicros: -1, Name: strings.Repeat("x", 41)})
	f.Add([]byte{0x80})
	f.Add([]byte("\xde\x00\x01\xa1n\xa0"))
	f.Fuzz(func(t *testing.T, b []byte) {
		var e protocol.Event
		if protocol.DecodeEvent(b, &e) != nil {
			return
		}
		if _, reason := checkEvent(&e, now0, time.Hour, nil); reason != "" {
			return
		}
		if n := utf8.RuneCountInString(e.Name); n == 0 || n > rules.MaxEventNameLen {
			t.Fatalf("accepted name of %d characters", n)
		}
		ts := time.UnixMicro(e.TimeMicros)
		if ts.Before(rules.MinEventTime) || ts.After(now0.Add(time.Hour)) {
			t.Fatalf("accepted time %s", ts)
		}
		texts := []string{e.Name, e.Path, e.Title, e.Referrer, e.Host, e.Language, e.Screen, e.Country, e.Region, e.City, e.Browser, e.BrowserVer, e.OS, e.Device}
		for k, v := range e.Params {
			texts = append(texts, k, v)
		}
		for k := range e.NumParams {
			texts = append(texts, k)
		}
		for k, v := range e.UserProps {
			texts = append(texts, k, v)
		}
		for _, s := range texts {
			if !utf8.ValidString(s) || strings.IndexByte(s, 0) >= 0 || len(s) > rules.MaxTextBytes {
				t.Fatalf("accepted text %q", s)
			}
		}
	})
}
