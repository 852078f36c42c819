package write

import (
	"testing"
	"time"

	"github.com/avila-analytics/avila/protocol"
)

// BenchmarkDecodedHandOver is a batch's way from ingest to its
// derivation on one node, without the database: decode the wire into a
// batch the Writer lends (protocol.DecodeBatchInto), keep it for the
// derivation, which takes it and appends its events to its chunk's
// array, and give it back. Batches of 1000 events of the end-to-end
// bench's traffic.
func BenchmarkDecodedHandOver(b *testing.B) {
	const batches = 10
	wires := make([][]byte, batches)
	for i, events := range pipelineBatches(1, time.Now(), batches) {
		wire, err := protocol.EncodeBatch(&protocol.Batch{Version: protocol.Version, AgentID: "edge", Seq: uint64(i + 1), Events: events})
		if err != nil {
			b.Fatal(err)
		}
		wires[i] = wire
	}
	c := newDecodedBatches(DefaultMaxEvents / 2)
	chunk := make([]protocol.Event, 0, batches*1000)
	now := time.Now()
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		chunk = chunk[:0]
		for _, wire := range wires {
			batch := c.get()
			if err := protocol.DecodeBatchInto(batch, wire); err != nil {
				b.Fatal(err)
			}
			c.keep(wire, batch, now)
			c.release(batch)
		}
		for _, wire := range wires {
			kept, ok := c.take(wire)
			if !ok {
				b.Fatal("batch not kept")
			}
			chunk = append(chunk, kept.Events...)
			c.recycle(kept)
		}
		clear(chunk)
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*batches*1000), "ns/event")
}
