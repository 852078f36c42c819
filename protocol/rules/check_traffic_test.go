package rules

import (
	"testing"
	"time"

	"github.com/avila-analytics/avila/internal/benchtraffic"
	"github.com/avila-analytics/avila/protocol"
)

// BenchmarkCheckTraffic checks 25,000 events of the end-to-end bench's
// traffic (benchtraffic.Event), as the aggregator's guard does a batch's.
func BenchmarkCheckTraffic(b *testing.B) {
	first := time.Date(2026, 12, 6, 12, 0, 0, 0, time.UTC)
	events := make([]protocol.Event, 25_000)
	for j := range events {
		events[j] = benchtraffic.Event(1, first, j)
	}
	b.ReportAllocs()
	for b.Loop() {
		for i := range events {
			if v := Check(&events[i]); v != nil {
				b.Fatal(v)
			}
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(events)), "ns/event")
}

// The bench's traffic, events of every name it sends, takes Check's
// shortcut: no event of it needs the rules one by one.
func TestCheckShortcutTakesTraffic(t *testing.T) {
	first := time.Date(2026, 12, 6, 12, 0, 0, 0, time.UTC)
	for j := range 40 {
		e := benchtraffic.Event(1, first, j)
		if !passes(&e) {
			t.Fatalf("event %d (%s) does not take the shortcut", j, e.Name)
		}
	}
}
