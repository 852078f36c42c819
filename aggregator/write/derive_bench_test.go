package write

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/avila-analytics/avila/protocol"
	"github.com/avila-analytics/avila/storage/postgres"
)

// pipelineBatches are n batches of 1000 events of the end-to-end bench's
// shape: 2048 visitors each in one GA4 session, 20-event requests of page
// views (a quarter from a referrer), scrolls and clicks with parameters and
// engagement, pages skewed towards 2000 popular ones, from first on.
func pipelineBatches(site uint32, first time.Time, n int) [][]protocol.Event {
	out := make([][]protocol.Event, n)
	for b := range out {
		evs := make([]protocol.Event, 1000)
		for i := range evs {
			j := b*1000 + i
			v := (j / 20) % 2048
			h := uint64(j)*0x9e3779b97f4a7c15 ^ uint64(j)>>7
			page := int((h % 2000) * ((h >> 20) % 2000) / 2000)
			e := protocol.Event{Site: site, Visitor: 1 + uint64(v)*7919, SessionID: 1_718_000_000 + int64(v), SessionNum: 1,
				TimeMicros: first.Add(time.Duration(j) * 40 * time.Microsecond).UnixMicro(),
				Host:       "www.bench.example", Path: fmt.Sprintf("/page/%d", page), Title: fmt.Sprintf("Page %d", page),
				Language: "en-us", Screen: "1440x900", Country: "DE", City: "Berlin", Browser: "Chrome", OS: "Windows", Device: "desktop"}
			switch j % 4 {
			case 0:
				e.Name = "page_view"
				if (h>>40)%4 == 0 {
					e.Referrer = fmt.Sprintf("https://ref%d.example/", (h>>44)%300)
				}
				if j%20 == 0 {
					e.Flags |= protocol.FlagSessionStart
				}
			case 1:
				e.Name, e.NumParams = "scroll", map[string]float64{"percent_scrolled": 90}
			case 2:
				e.Name, e.EngageMs, e.Flags = "user_engagement", int64(1000+j%20000), protocol.FlagEngaged
			case 3:
				e.Name, e.Params = "click", map[string]string{"link_domain": "docs.bench.example", "outbound": "true"}
			}
			evs[i] = e
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
