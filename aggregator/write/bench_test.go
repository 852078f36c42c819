package write

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/avila-analytics/avila/protocol"
	"github.com/avila-analytics/avila/storage/postgres"
	"github.com/jackc/pgx/v5"
)

const benchBatch = 5000

// benchEvents gives each iteration its own events on one day, with a
// realistic mix of repeated and fresh strings.
func benchEvents(site uint32, iter int) []protocol.Event {
	events := testEvents(site, benchBatch)
	for j := range events {
		events[j].TimeMicros = day0.Add(time.Duration(j) * time.Millisecond).UnixMicro()
		events[j].Path = fmt.Sprintf("/p/%d", (iter*benchBatch+j)%2000)
	}
	return events
}

// BenchmarkWriteBatch measures WriteBatch end to end: the staging
// transaction, then the derivation (partition check, dictionary resolution,
// warm cache after the first batches, sessions, rollups and the COPY). Compare events/s with BenchmarkCopyFromBaseline.
func BenchmarkWriteBatch(b *testing.B) {
	s := newStore(b)
	ctx := context.Background()
	site, _ := s.CreateSite(ctx, postgres.SiteSpec{Name: "bench"})
	batches := make([][]protocol.Event, 8)
	for i := range batches {
		batches[i] = benchEvents(site.ID, i)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		if _, err := s.WriteBatch(ctx, "bench", uint64(i+1), batches[i%len(batches)], nil); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N*benchBatch)/b.Elapsed().Seconds(), "events/s")
}

// BenchmarkCopyFromBaseline is the floor: the same rows, ids already known,
// COPYed (pgx.CopyFromRows) in a transaction with nothing else.
func BenchmarkCopyFromBaseline(b *testing.B) {
	s := newStore(b)
	ctx := context.Background()
	site, _ := s.CreateSite(ctx, postgres.SiteSpec{Name: "bench"})
	events := benchEvents(site.ID, 0)
	if err := s.EnsureEventDays(ctx, events); err != nil {
		b.Fatal(err)
	}
	res, err := resolveNew(ctx, s.Store, events, trafficSource)
	if err != nil {
		b.Fatal(err)
	}
	rows := make([][]any, len(res.Rows))
	for i := range res.Rows {
		r := &res.Rows[i]
		rows[i] = []any{r.TS, r.Visitor, r.Session, r.Site, r.Dims[postgres.DimEventName-1], r.Dims[postgres.DimReferrer-1],
			r.Content, r.Client, r.Traffic, r.Engage, r.Flags, r.Params}
	}
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		tx, err := s.Pool.Begin(ctx)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := tx.CopyFrom(ctx, pgx.Identifier{"events"}, postgres.EventColumns, pgx.CopyFromRows(rows)); err != nil {
			b.Fatal(err)
		}
		if err := tx.Commit(ctx); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N*benchBatch)/b.Elapsed().Seconds(), "events/s")
}

// BenchmarkWriteBatchNewVisitors is BenchmarkWriteBatch with fresh
// visitors in every batch and no GA4 session ids: each batch misses the
// session cache and looks its visitors' sessions up in the database.
func BenchmarkWriteBatchNewVisitors(b *testing.B) {
	s := newStore(b)
	ctx := context.Background()
	site, _ := s.CreateSite(ctx, postgres.SiteSpec{Name: "bench"})
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		b.StopTimer()
		events := benchEvents(site.ID, i)
		for j := range events {
			events[j].Visitor, events[j].SessionID = uint64(i)<<20|uint64(j%500), 0
		}
		b.StartTimer()
		if _, err := s.WriteBatch(ctx, "bench", uint64(i+1), events, nil); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N*benchBatch)/b.Elapsed().Seconds(), "events/s")
}
