package ingest

import (
	"context"
	"testing"
	"time"

	"github.com/avila-analytics/avila/aggregator/write"
	"github.com/avila-analytics/avila/internal/benchtraffic"
	"github.com/avila-analytics/avila/internal/testenv"
	"github.com/avila-analytics/avila/protocol"
	"github.com/avila-analytics/avila/storage/postgres"
)

// benchWires are n wire batches of 1000 events of the end-to-end bench's
// traffic (benchtraffic.Event) from first on, as the agent ships them
// (protocol.EncodeRawBatch of protocol.EncodeEvent), numbered from seq.
func benchWires(b *testing.B, site uint32, first time.Time, n int, seq uint64) [][]byte {
	b.Helper()
	out := make([][]byte, n)
	raw := make([][]byte, 1000)
	for i := range out {
		for j := range raw {
			e := benchtraffic.Event(site, first, i*len(raw)+j)
			raw[j], _ = protocol.EncodeEvent(&e)
		}
		wire, err := protocol.EncodeRawBatch("bench", seq+uint64(i), first.UnixMicro(), raw)
		if err != nil {
			b.Fatal(err)
		}
		out[i] = wire
	}
	return out
}

// BenchmarkIngestDerive is the aggregator's work per event in process,
// from a batch's wire form to its events derived: each iteration hands 25
// wire batches of 1000 events to the handler (decode, validate, stage
// through write.Writer.WriteWireBatch), then derives them (Flush).
// Encoding the batches is outside the timing, not outside a callgrind
// profile: there, read the inclusive cost of HandleBatch and Flush.
func BenchmarkIngestDerive(b *testing.B) {
	url := testenv.PostgresURL(b)
	s := openStore(b, url)
	ctx := context.Background()
	site, err := s.CreateSite(ctx, postgres.SiteSpec{Name: "bench"})
	if err != nil {
		b.Fatal(err)
	}
	w := write.New(write.Config{}, s)
	h := New(Options{}, s, w)
	first := time.Now().Add(-time.Hour)
	const perIter = 25
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		b.StopTimer()
		wires := benchWires(b, site.ID, first.Add(time.Duration(i)*time.Second), perIter, uint64(i*perIter+1))
		b.StartTimer()
		for _, wire := range wires {
			if ack := h.HandleBatch(ctx, wire, protocol.Peer{}); ack.Status != protocol.AckOK {
				b.Fatalf("batch not stored: %+v", ack)
			}
		}
		if err := w.Flush(ctx); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N*perIter*1000)/b.Elapsed().Seconds(), "events/s")
}
