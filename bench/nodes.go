package bench

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/avila-analytics/avila/aggregator/write"
	"github.com/avila-analytics/avila/internal/benchtraffic"
	"github.com/avila-analytics/avila/internal/pgserver"
	"github.com/avila-analytics/avila/protocol"
	"github.com/avila-analytics/avila/storage/postgres"
)

// nodesBatch is the size of the batches the nodes phase writes: about what
// the agent ships under load (wire_events_per_batch).
const nodesBatch = 1000

// nodesSenders is the number of batches each node writes at once, as an
// aggregator serves several agents' streams.
const nodesSenders = 4

// nodesOrder is the order of the nodes phase's runs, by node count: three
// pairs, the middle one reversed, so a load on the machine that rises or
// falls during the phase weighs on both counts alike.
var nodesOrder = []int{1, 2, 2, 1, 1, 2}

// nodes measures the write stage (staging, then derivation) of one
// busy site with one aggregator node and with two, in process, on a
// database of its own (so the stack's aggregator does not derive its
// batches): the same batches are split between the nodes' write stages,
// each with its own connection pool and derivation loop, and timed until
// every event is derived. Two nodes must not be slower than one. Each
// count runs three times (nodesOrder), after a warm-up run; the figures
// are the medians, and the ratio the median of the three pairs' ratios:
// one run on a shared machine swung the ratio from 0.58 to 1.31.
func (r *run) nodes(ctx context.Context) error {
	n := r.sz.nodesEvents
	n -= n % nodesBatch
	batches := nodesBatches(int(n / nodesBatch))
	// A first run in the process paid for cold caches (PostgreSQL's
	// catalog and buffers, the harness's own heap) at about half the rate
	// of the runs after it: a shorter run of two nodes, not counted, pays
	// for them.
	warm, err := r.nodesRun(ctx, 2, batches[:max(len(batches)/5, 1)])
	if err != nil {
		return err
	}
	r.log.Info("write stage: warm-up, not counted", "nodes", 2, "events_per_s", int(warm))
	rates := map[int][]float64{}
	for _, k := range nodesOrder {
		rate, err := r.nodesRun(ctx, k, batches)
		if err != nil {
			return err
		}
		r.log.Info("write stage", "nodes", k, "events", n, "events_per_s", int(rate))
		rates[k] = append(rates[k], rate)
	}
	ratios := make([]float64, len(rates[1]))
	for i := range ratios {
		ratios[i] = ratio(rates[2][i], rates[1][i])
	}
	r.log.Info("write stage: two nodes vs one", "ratios", ratios)
	r.set("nodes_1_events_per_s", Percentile(rates[1], 50))
	r.set("nodes_2_events_per_s", Percentile(rates[2], 50))
	r.set("nodes_2_ratio_vs_1", Percentile(ratios, 50))
	return nil
}

// nodesBatches are count batches of one site's traffic: 2048 visitors
// with varied pages and referrers, a few seconds apart, stamped now.
func nodesBatches(count int) [][]protocol.Event {
	start := time.Now().Add(-time.Hour).UnixMicro()
	out := make([][]protocol.Event, count)
	for b := range out {
		evs := make([]protocol.Event, nodesBatch)
		for i := range evs {
			j := b*nodesBatch + i
			h := mix64(uint64(j))
			page := benchtraffic.Page(h)
			e := protocol.Event{Visitor: 1 + uint64(j%2048)*7919, TimeMicros: start + int64(j)*1000,
				Name: "page_view", Host: benchHost, Path: dictValue(kindPage, page), Title: dictValue(kindTitle, page),
				Language: "en-us", Screen: "1440x900", Country: "DE", Browser: "Chrome", OS: "Windows", Device: "desktop"}
			switch {
			case i%4 == 1:
				e.Name, e.EngageMs = "user_engagement", int64(h%30000)
			case i%4 == 2:
				e.Name = "scroll"
			case (h>>40)%4 == 0:
				e.Referrer = dictValue(kindReferrer, int(h>>44)%dictSizes[kindReferrer])
			}
			evs[i] = e
		}
		out[b] = evs
	}
	return out
}

// nodesRun writes batches through k write stages on a fresh database and
// returns the events derived per second.
func (r *run) nodesRun(ctx context.Context, k int, batches [][]protocol.Event) (float64, error) {
	name := "avila_bench_nodes_" + strconv.FormatInt(time.Now().UnixNano(), 36)
	if err := pgserver.CreateDatabase(ctx, r.st.serverURL, name); err != nil {
		return 0, fmt.Errorf("bench: nodes: %w", err)
	}
	defer func() {
		if err := pgserver.DropDatabase(context.WithoutCancel(ctx), r.st.serverURL, name); err != nil {
			r.log.Warn("dropping the nodes phase's database", "err", err)
		}
	}()
	u, err := url.Parse(r.st.serverURL)
	if err != nil {
		return 0, fmt.Errorf("bench: nodes: database url: %w", err)
	}
	u.Path = "/" + name
	stores := make([]*postgres.Store, k)
	for i := range stores {
		if stores[i], err = postgres.Open(ctx, u.String(), r.log); err != nil {
			return 0, fmt.Errorf("bench: nodes: %w", err)
		}
		defer stores[i].Close()
	}
	if err := stores[0].Migrate(ctx); err != nil {
		return 0, fmt.Errorf("bench: nodes: %w", err)
	}
	db, err := pgxpool.New(ctx, u.String())
	if err != nil {
		return 0, fmt.Errorf("bench: nodes: open a pool: %w", err)
	}
	defer db.Close()
	site, err := stores[0].CreateSite(ctx, postgres.SiteSpec{Name: "bench nodes", Domains: []string{benchHost}})
	if err != nil {
		return 0, fmt.Errorf("bench: nodes: %w", err)
	}
	total := 0
	for _, b := range batches {
		for i := range b {
			b[i].Site = site.ID
		}
		total += len(b)
	}
	// Each run starts from a quiet server (settle), so a checkpoint or an
	// autovacuum worker that the run before left due does not fall into
	// one run of a couple of seconds and not into the other.
	if err := r.settle(ctx); err != nil {
		return 0, err
	}
	runCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	var loops sync.WaitGroup
	writers := make([]*write.Writer, k)
	for i := range writers {
		writers[i] = write.New(write.Config{Logger: r.log}, stores[i])
		loops.Go(func() { writers[i].Run(runCtx) })
	}
	defer loops.Wait()
	defer cancel()

	start := time.Now()
	var next atomic.Int64
	var firstErr error
	var errMu sync.Mutex
	var senders sync.WaitGroup
	for i := range k * nodesSenders {
		w := writers[i%k]
		senders.Go(func() {
			for {
				b := int(next.Add(1)) - 1
				if b >= len(batches) || ctx.Err() != nil {
					return
				}
				if _, err := w.WriteBatch(ctx, "bench-nodes", uint64(b+1), batches[b], nil); err != nil {
					errMu.Lock()
					firstErr = errors.Join(firstErr, err)
					errMu.Unlock()
					return
				}
			}
		})
	}
	senders.Wait()
	if firstErr != nil {
		return 0, fmt.Errorf("bench: nodes: %w", firstErr)
	}
	deadline := time.Now().Add(r.sz.drainFor)
	for {
		left, err := stores[0].StagedEvents(ctx, site.ID)
		if err != nil {
			return 0, fmt.Errorf("bench: nodes: %w", err)
		}
		if left == 0 {
			break
		}
		if time.Now().After(deadline) {
			return 0, fmt.Errorf("bench: nodes: %d events still staged after %s", left, r.sz.drainFor)
		}
		if err := sleep(ctx, 20*time.Millisecond); err != nil {
			return 0, err
		}
	}
	elapsed := time.Since(start)
	var derived int64
	if err := db.QueryRow(ctx, "SELECT count(*) FROM events WHERE site_id = $1 AND flags & 256 = 0", int32(site.ID)).Scan(&derived); err != nil {
		return 0, fmt.Errorf("bench: nodes: %w", err)
	}
	if derived != int64(total) {
		return 0, fmt.Errorf("bench: nodes: %d events derived of %d written", derived, total)
	}
	return perSecond(int64(total), elapsed), nil
}
