package protocol_test

import (
	"testing"
	"time"

	"github.com/avila-analytics/avila/internal/benchtraffic"
	"github.com/avila-analytics/avila/protocol"
)

// trafficWire is n wire batches of the end-to-end bench's traffic
// (benchtraffic.Wire), as one agent ships them.
func trafficWire(tb testing.TB, n int) [][]byte {
	tb.Helper()
	wires, err := benchtraffic.Wire(1, time.Date(2026, 12, 6, 12, 0, 0, 0, time.UTC), n)
	if err != nil {
		tb.Fatal(err)
	}
	return wires
}

// BenchmarkDecodeTraffic decodes the bench's traffic as the aggregator
// does: "ingest" each batch into a reused Batch (DecodeBatchInto), as
// batches arrive; "derive" 5 staged batches into one slice
// (EventDecoder.Append, then Release), as a derivation gathers them. One iteration is
// 5 batches, 25,000 events.
func BenchmarkDecodeTraffic(b *testing.B) {
	wires := trafficWire(b, 5)
	b.Run("ingest", func(b *testing.B) {
		var into protocol.Batch
		b.ReportAllocs()
		for b.Loop() {
			for _, w := range wires {
				if err := protocol.DecodeBatchInto(&into, w); err != nil {
					b.Fatal(err)
				}
			}
		}
		b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*5*5000), "ns/event")
	})
	b.Run("derive", func(b *testing.B) {
		all := make([]protocol.Event, 0, 25_000)
		b.ReportAllocs()
		for b.Loop() {
			var dec protocol.EventDecoder
			all = all[:0]
			for _, w := range wires {
				var err error
				if all, err = dec.Append(all, w); err != nil {
					b.Fatal(err)
				}
			}
			dec.Release()
		}
		b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*5*5000), "ns/event")
	})
}
