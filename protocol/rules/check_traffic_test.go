package rules

import (
	"strings"
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

// BenchmarkCheckTrafficShared is BenchmarkCheckTraffic as the
// aggregator's guard checks a batch's events: 5 batches of the traffic
// as ingest decodes them (protocol.DecodeBatchInto: texts and parameter
// maps written alike are one string, one map), each through one
// SharedTexts.
func BenchmarkCheckTrafficShared(b *testing.B) {
	wires, err := benchtraffic.Wire(1, time.Date(2026, 12, 6, 12, 0, 0, 0, time.UTC), 5)
	if err != nil {
		b.Fatal(err)
	}
	batches := make([]protocol.Batch, len(wires))
	for i, w := range wires {
		if err := protocol.DecodeBatchInto(&batches[i], w); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportAllocs()
	for b.Loop() {
		for _, batch := range batches {
			var m SharedTexts
			for i := range batch.Events {
				if v := m.Check(&batch.Events[i]); v != nil {
					b.Fatal(v)
				}
			}
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(batches)*benchtraffic.SegmentEvents), "ns/event")
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

// The shortcut names the event's texts itself (for speed, instead of
// ranging over texts); it must test every one of texts' fields: each,
// past its limit or not plain, sends the event to the rules one by one.
func TestCheckShortcutCoversEveryText(t *testing.T) {
	first := time.Date(2026, 12, 6, 12, 0, 0, 0, time.UTC)
	for i, f := range texts(&protocol.Event{}) {
		for _, bad := range []string{strings.Repeat("a", f.limit+1), "caf\xc3\xa9", "a\x00"} {
			e := benchtraffic.Event(1, first, 0)
			*texts(&e)[i].s = bad
			if passes(&e) {
				t.Errorf("the shortcut passes %s = %q (limit %d)", f.name, bad, f.limit)
			}
		}
	}
}
