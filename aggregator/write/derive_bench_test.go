package write

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

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
	b.Run("fresh", func(b *testing.B) { benchmarkDerive(b, 0, 25, Config{}, true) })
	b.Run("history", func(b *testing.B) { benchmarkDerive(b, 90, 25, Config{}, true) })
}

// BenchmarkDeriveBacklog measures derivations under a backlog: each
// iteration stages 200 batches of 1000 events (untimed), then derives
// them (Flush), in derivations of one chunk of up to 50 000 events
// (chunks=1) or of up to four (chunks=4; no time bound, so the chunks
// do not depend on the machine's speed). stage only stages, which the
// others do too: what a count of the whole program (callgrind) takes
// off theirs to count the derivations alone.
func BenchmarkDeriveBacklog(b *testing.B) {
	b.Run("chunks=1", func(b *testing.B) { benchmarkDerive(b, 0, 200, Config{MaxChunks: 1}, true) })
	b.Run("chunks=4", func(b *testing.B) { benchmarkDerive(b, 0, 200, Config{MaxChunks: 4, DeriveFor: time.Hour}, true) })
	b.Run("stage", func(b *testing.B) { benchmarkDerive(b, 0, 200, Config{}, false) })
}

// benchmarkDerive stages perIter batches of 1000 events per iteration
// and, with derive, derives them with a write stage of cfg.
func benchmarkDerive(b *testing.B, historyDays, perIter int, cfg Config, derive bool) {
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
	w := New(cfg, s.Store)
	first := time.Now().Add(-time.Hour)
	seq := uint64(0)
	var pgTicks int64
	pgLocal := true
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
		before, ok := backendTicks(ctx, b, s.Pool)
		pgLocal = pgLocal && ok
		b.StartTimer()
		if derive {
			if err := w.Flush(ctx); err != nil {
				b.Fatal(err)
			}
		}
		b.StopTimer()
		after, ok := backendTicks(ctx, b, s.Pool)
		pgLocal = pgLocal && ok
		pgTicks += after - before
		b.StartTimer()
	}
	b.ReportMetric(float64(b.N*perIter*1000)/b.Elapsed().Seconds(), "events/s")
	if pgLocal {
		b.ReportMetric(float64(pgTicks)*1e6/clockTicks/float64(b.N*perIter*1000), "pg-cpu-µs/event")
	}
}

// clockTicks is the unit of /proc/PID/stat's CPU times (USER_HZ).
const clockTicks = 100

// backendTicks is the CPU time (user and system, in clock ticks) the
// PostgreSQL backends connected to the pool's database have spent, read
// from /proc/PID/stat: the derivation's own statements, without the
// server's background processes. ok is false when a backend's file cannot
// be read (a server on another machine).
func backendTicks(ctx context.Context, b *testing.B, pool *pgxpool.Pool) (ticks int64, ok bool) {
	b.Helper()
	rows, err := pool.Query(ctx, "SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()")
	if err != nil {
		b.Fatal(err)
	}
	pids, err := pgx.CollectRows(rows, pgx.RowTo[int32])
	if err != nil {
		b.Fatal(err)
	}
	for _, pid := range pids {
		stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		if err != nil {
			return 0, false
		}
		// The fields after the command name (which may hold spaces):
		// state is the first, utime and stime the 12th and 13th.
		_, rest, found := strings.Cut(string(stat), ") ")
		f := strings.Fields(rest)
		if !found || len(f) < 13 {
			return 0, false
		}
		utime, err1 := strconv.ParseInt(f[11], 10, 64)
		stime, err2 := strconv.ParseInt(f[12], 10, 64)
		if err1 != nil || err2 != nil {
			return 0, false
		}
		ticks += utime + stime
	}
	return ticks, true
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

// BenchmarkStageAndDeriveSteady is the aggregator's side of steady
// traffic in process: one Writer, its Run deriving throughout, takes 10
// batches of 1000 events an iteration, staged one after the other, timed
// until nothing is left staged. Its derivations keep up with the traffic,
// as a node's under the end-to-end bench's load.
func BenchmarkStageAndDeriveSteady(b *testing.B) {
	s := newStore(b)
	ctx := context.Background()
	site, _ := s.CreateSite(ctx, postgres.SiteSpec{Name: "bench"})
	const batches = 10
	w := New(Config{}, s.Store)
	runCtx, cancel := context.WithCancel(ctx)
	var loop sync.WaitGroup
	loop.Go(func() { w.Run(runCtx) })
	defer func() { cancel(); loop.Wait() }()
	seq := uint64(0)
	first := time.Now().Add(-time.Hour)
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		b.StopTimer()
		all := pipelineBatches(site.ID, first.Add(time.Duration(i)*time.Second), batches)
		b.StartTimer()
		for _, evs := range all {
			seq++
			if _, err := w.WriteBatch(ctx, "bench", seq, evs, nil); err != nil {
				b.Fatal(err)
			}
		}
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
	}
	b.ReportMetric(float64(b.N*batches*1000)/b.Elapsed().Seconds(), "events/s")
}

// BenchmarkDerivePasses is the write stage's work per event under
// steady traffic, deterministic: each iteration stages 25 batches of 1000
// events of the end-to-end bench's traffic in their wire form
// (WriteWireBatch, as ingest does; encoding them is untimed), then runs
// passes until one finds nothing, as Run does while passes find events.
// Unlike Flush, which drops them once caught up, the passes keep the
// arrays derivations reuse (derive_scratch.go), as a node under load does.
func BenchmarkDerivePasses(b *testing.B) {
	s := newStore(b)
	ctx := context.Background()
	site, _ := s.CreateSite(ctx, postgres.SiteSpec{Name: "bench"})
	w := New(Config{}, s.Store)
	first := time.Now().Add(-time.Hour)
	const perIter = 25
	seq := uint64(0)
	raw := make([][]byte, 1000)
	wires := make([][]byte, perIter)
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		b.StopTimer()
		batches := pipelineBatches(site.ID, first.Add(time.Duration(i)*time.Second), perIter)
		for j, evs := range batches {
			for k := range evs {
				raw[k], _ = protocol.EncodeEvent(&evs[k])
			}
			wire, err := protocol.EncodeRawBatch("bench", seq+uint64(j)+1, first.UnixMicro(), raw)
			if err != nil {
				b.Fatal(err)
			}
			wires[j] = wire
		}
		b.StartTimer()
		for j, evs := range batches {
			seq++
			if _, err := w.WriteWireBatch(ctx, "bench", seq, evs, wires[j]); err != nil {
				b.Fatal(err)
			}
		}
		for {
			more, _, _, err := w.pass(ctx)
			if err != nil {
				b.Fatal(err)
			}
			if !more {
				break
			}
		}
	}
	b.ReportMetric(float64(b.N*perIter*1000)/b.Elapsed().Seconds(), "events/s")
}
