package sessions

import (
	"slices"
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

// BenchmarkEventOrder measures the events order of 50,000 events, a
// chunk of a busy site's derivation: of the end-to-end bench's traffic
// (requests of 20 events, 2,500 runs), and interleaved as one-event
// requests of 2,048 visitors come (50,000 runs, as in the nodes bench).
func BenchmarkEventOrder(b *testing.B) {
	requests := benchEvents(50_000)
	interleaved := slices.Clone(requests)
	for j := range interleaved {
		interleaved[j].Visitor = 1 + uint64(j%2048)*7919
		interleaved[j].TimeMicros = requests[0].TimeMicros + int64(j)*1000
	}
	for _, bc := range []struct {
		name   string
		events []protocol.Event
	}{{"requests", requests}, {"interleaved", interleaved}} {
		b.Run(bc.name, func(b *testing.B) {
			sc := new(orderScratch)
			for b.Loop() {
				sc.of(bc.events)
			}
		})
	}
}
