package sessions

import (
	"testing"
	"time"

	"github.com/avila-analytics/avila/internal/benchtraffic"
	"github.com/avila-analytics/avila/protocol"
)

// benchEvents are n events of the end-to-end bench's traffic
// (benchtraffic.Event), in the order they arrive.
func benchEvents(n int) []protocol.Event {
	first := time.Date(2026, 12, 6, 10, 0, 0, 0, time.UTC)
	events := make([]protocol.Event, n)
	for j := range events {
		events[j] = benchtraffic.Event(1, first, j)
	}
	return events
}

// BenchmarkAssign measures Assign on 25,000 events of the end-to-end
// bench's traffic (2048 visitors, 20-event requests interleaved), each
// visitor's session committed by an earlier derivation, as on a busy site.
func BenchmarkAssign(b *testing.B) {
	events := benchEvents(25_000)
	known := make(map[Key][]Session)
	for i := range events {
		e := &events[i]
		k := Key{e.Site, e.Visitor}
		if _, ok := known[k]; !ok {
			start := e.TimeMicros - time.Minute.Microseconds()
			known[k] = []Session{{ID: e.SessionID, Start: start, Last: start}}
		}
	}
	b.ReportAllocs()
	for b.Loop() {
		Assign(events, known)
	}
}

// BenchmarkAssignInto is BenchmarkAssign into one Assignment, reused.
func BenchmarkAssignInto(b *testing.B) {
	events := benchEvents(25_000)
	known := make(map[Key][]Session)
	for i := range events {
		e := &events[i]
		k := Key{e.Site, e.Visitor}
		if _, ok := known[k]; !ok {
			start := e.TimeMicros - time.Minute.Microseconds()
			known[k] = []Session{{ID: e.SessionID, Start: start, Last: start}}
		}
	}
	var as Assignment
	b.ReportAllocs()
	for b.Loop() {
		AssignInto(&as, events, known)
	}
}
