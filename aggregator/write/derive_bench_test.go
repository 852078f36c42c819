package write

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/avila-analytics/avila/internal/benchtraffic"
	"github.com/avila-analytics/avila/protocol"
	"github.com/avila-analytics/avila/storage/postgres"
)

// pipelineBatches are n batches of 1000 events of the end-to-end bench's
// traffic (benchtraffic.Event) from first on.
func pipelineBatches(site uint32, first time.Time, n int) [][]protocol.Event {
	out := make([][]protocol.Event, n)
	for b := range out {
		evs := make([]protocol.Event, 1000)
		for i := range evs {
			evs[i] = benchtraffic.Event(site, first, b*1000+i)
		}
		out[b] = evs
	}
	return out
}

// BenchmarkDerive measures derivations of the end-to-end bench's traffic:
// each iteration stages 25 batches of 1000 events (untimed), then derives
// them (Flush: one derivation of up to Config.MaxEvents events).
// The history sub-benchmark derives into a database with 90 days of
// partitions, as a site with months of history has (the bench's query
// data set makes as many): a statement over sessions that the planner
// cannot confine to the derivation's days probes every one of them.
func BenchmarkDerive(b *testing.B) {
	b.Run("fresh", func(b *testing.B) { benchmarkDerive(b, 0) })
	b.Run("history", func(b *testing.B) { benchmarkDerive(b, 90) })
}

func benchmarkDerive(b *testing.B, historyDays int) {
	s := newStore(b)
	ctx := context.Background()
	site, _ := s.CreateSite(ctx, postgres.SiteSpec{Name: "bench"})
	if historyDays > 0 {
		// Each day a session of every visitor of the traffic, a day of
		// history per partition.
		from := time.Now().AddDate(0, 0, -historyDays)
		if err := s.EnsurePartitions(ctx, from, time.Now()); err != nil {
			b.Fatal(err)
		}
		if _, err := s.Pool.Exec(ctx, `INSERT INTO sessions (site_id, ts, visitor_id, session_id, last_ts, events, page_views,
				key_events, engagement_ms, flags, page_id, exit_page_id, host_id, referrer_id, client_id, traffic_id, first_source_id)
			SELECT $1, t, 1 + v * 7919, extract(epoch FROM t)::bigint, t + interval '5 minutes', 4, 2, 0, 1000, 0, 0, 0, 0, 0, 0, 0, 0
			FROM generate_series(0, 2047) v, generate_series($2::timestamptz, $2::timestamptz + ($3 - 1) * interval '1 day', interval '1 day') t`,
			int32(site.ID), from, historyDays); err != nil {
			b.Fatal(err)
		}
		if _, err := s.Pool.Exec(ctx, "ANALYZE sessions"); err != nil {
			b.Fatal(err)
		}
	}
	w := New(Config{}, s.Store)
	first := time.Now().Add(-time.Hour)
	seq := uint64(0)
	const perIter = 25
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		b.StopTimer()
		for _, evs := range pipelineBatches(site.ID, first.Add(time.Duration(i)*time.Second), perIter) {
			seq++
			if _, err := w.WriteBatch(ctx, "bench", seq, evs, nil); err != nil {
				b.Fatal(err)
			}
		}
		b.StartTimer()
		if err := w.Flush(ctx); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N*perIter*1000)/b.Elapsed().Seconds(), "events/s")
}

// BenchmarkStageAndDerive is the aggregator's side of the end-to-end
// bench in process: four senders stage 200 batches of 1000 events of its
// traffic while Run derives, timed until nothing is left staged.
func BenchmarkStageAndDerive(b *testing.B) {
	s := newStore(b)
	ctx := context.Background()
	site, _ := s.CreateSite(ctx, postgres.SiteSpec{Name: "bench"})
	const batches = 200
	seq := uint64(0)
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		b.StopTimer()
		all := pipelineBatches(site.ID, time.Now().Add(-time.Hour).Add(time.Duration(i)*time.Minute), batches)
		w := New(Config{}, s.Store)
		runCtx, cancel := context.WithCancel(ctx)
		var loop, senders sync.WaitGroup
		loop.Go(func() { w.Run(runCtx) })
		var next atomic.Int64
		b.StartTimer()
		for range 4 {
			senders.Go(func() {
				for {
					j := int(next.Add(1)) - 1
					if j >= len(all) {
						return
					}
					if _, err := w.WriteBatch(ctx, "bench", atomic.AddUint64(&seq, 1), all[j], nil); err != nil {
						b.Error(err)
						return
					}
				}
			})
		}
		senders.Wait()
		for {
			n, err := s.StagedEvents(ctx, site.ID)
			if err != nil {
				b.Fatal(err)
			}
			if n == 0 {
				break
			}
			time.Sleep(10 * time.Millisecond) // polling; Run derives meanwhile
		}
		b.StopTimer()
		cancel()
		loop.Wait()
		b.StartTimer()
	}
	b.ReportMetric(float64(b.N*batches*1000)/b.Elapsed().Seconds(), "events/s")
}
