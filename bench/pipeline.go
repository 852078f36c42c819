package bench

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/jackc/pgx/v5"
)

// pollEvery is how often the harness looks for newly stored events.
const pollEvery = 50 * time.Millisecond

// stored is the number of events the agent's batches brought to
// PostgreSQL and made visible to reports so far (stored rows plus dead
// letters), and the last batch seq. The run has one agent, so every batch
// key is its own (the aggregator may key them by certificate name rather
// than the agent's printed id). A batch's key commits with its staged
// events and dead letters, and a derivation deletes the staged rows it
// turned into events in the same transaction that writes them, so keys'
// counts minus what is still staged is exactly what reports see, read in
// one snapshot without counting the events table.
func (r *run) stored(ctx context.Context) (events, lastSeq int64, err error) {
	err = r.st.db.QueryRow(ctx, `SELECT
			(SELECT coalesce(sum(events + dead_letters), 0) FROM agent_batches) - (SELECT coalesce(sum(events), 0) FROM staged_events),
			(SELECT coalesce(max(seq), 0) FROM agent_batches)`).Scan(&events, &lastSeq)
	if err != nil {
		return 0, 0, fmt.Errorf("bench: count stored events: %w", err)
	}
	return events, lastSeq, nil
}

// drain waits until the agent's backlog is stored: the stored count has not
// moved for a while. The agent seals every 200 ms by default, so a quiet
// two seconds means its queue is empty.
func (r *run) drain(ctx context.Context) (int64, error) {
	const quiet = 2 * time.Second
	deadline := time.Now().Add(r.sz.drainFor)
	last, _, err := r.stored(ctx)
	if err != nil {
		return 0, err
	}
	since := time.Now()
	for time.Since(since) < quiet {
		if time.Now().After(deadline) {
			return last, fmt.Errorf("bench: the pipeline was still storing events after %s", r.sz.drainFor)
		}
		if err := sleep(ctx, 200*time.Millisecond); err != nil {
			return 0, err
		}
		n, _, err := r.stored(ctx)
		if err != nil {
			return 0, err
		}
		if n != last {
			last, since = n, time.Now()
		}
	}
	return last, nil
}

// pipeline sends a bounded number of batched events through the agent
// and times them from the first request to the last row visible in
// PostgreSQL, from a quiet server (settle); then it times a raw COPY of the
// same rows.
func (r *run) pipeline(ctx context.Context) error {
	base, err := r.drain(ctx)
	if err != nil {
		return err
	}
	_, baseSeq, err := r.stored(ctx)
	if err != nil {
		return err
	}
	site := r.st.sites[sitePipeline]
	reqs := batchedSet(r.st.agentURL, site.MeasurementID, 2048)
	load := Load{Connections: r.sz.connections, Duration: r.sz.pipelineFor, MaxRequests: r.sz.pipelineEvents / batchEvents}
	r.log.Info("end-to-end: sending events through the agent", "generator", r.gen.Name(), "max_events", load.MaxRequests*batchEvents, "bound", load.Duration)

	if err := r.settle(ctx); err != nil {
		return err
	}
	pg, err := r.postmaster(ctx)
	if err != nil {
		r.log.Warn("end-to-end: PostgreSQL's CPU time is left out", "err", err)
	}
	cpu0, err := r.sampleCPU(pg)
	if err != nil {
		return err
	}
	start := time.Now()
	lags := r.sampleLag(ctx)
	defer lags() // on every return; the samples are taken below
	// wrk has no request bound: it runs for the duration and counts only
	// answered requests, so a few more events than counted may be stored.
	res, err := r.gen.Run(ctx, reqs, load)
	if err != nil {
		return err
	}
	sendEnd := time.Now()
	r.note("end-to-end send", res)
	sent := res.OK * batchEvents
	if sent == 0 {
		return errors.New("bench: the agent acknowledged no event in the end-to-end phase")
	}
	n, err := r.waitStored(ctx, base+sent)
	if err != nil {
		return err
	}
	elapsed := time.Since(start)
	lag := lags()
	cpu1, err := r.sampleCPU(pg)
	if err != nil {
		return err
	}
	if len(lag) > 0 {
		r.set("pipeline_staged_lag_p50_seconds", Percentile(lag, 50))
		r.set("pipeline_staged_lag_max_seconds", slices.Max(lag))
	}
	// Seen by waitStored's polls, pollEvery apart.
	r.set("pipeline_tail_seconds", (elapsed - sendEnd.Sub(start)).Seconds())
	got := n - base
	r.setPipelineCPU(cpu0, cpu1, min(got, sent), pg != 0)
	r.log.Info("end-to-end: stored", "events", got, "acknowledged", sent, "elapsed", elapsed.Round(time.Millisecond))
	r.set("pipeline_events_per_s", perSecond(min(got, sent), elapsed))
	r.set("pipeline_events_lost", float64(max(sent-got, 0)))
	r.set("pipeline_events", float64(sent))

	var reqBytes int
	for _, q := range reqs {
		b, err := RequestBytes(q)
		if err != nil {
			return err
		}
		reqBytes += b
	}
	r.set("raw_request_bytes_per_event", float64(reqBytes)/float64(len(reqs)*batchEvents))

	rows, err := r.pipelineRows(ctx, site.ID)
	if err != nil {
		return err
	}
	if err := r.wireBytes(ctx, rows, baseSeq); err != nil {
		return err
	}
	return r.copyBaseline(ctx, rows)
}

// lagEvery is how often the end-to-end phase samples the age of the
// oldest staged row while it runs.
const lagEvery = 250 * time.Millisecond

// sampleLag samples, every lagEvery until the returned stop is called,
// the age of the oldest staged row by the database's clock (0: none):
// how far reports lag the aggregator's acknowledgement at that moment
// (the agent's seal and ship come before it). stop returns the samples;
// calling it again returns them again.
func (r *run) sampleLag(ctx context.Context) (stop func() []float64) {
	ctx, cancel := context.WithCancel(ctx)
	var samples []float64
	done := make(chan struct{})
	go func() {
		defer close(done)
		t := time.NewTicker(lagEvery)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
			var age float64
			err := r.st.db.QueryRow(ctx, `SELECT coalesce(extract(epoch FROM greatest(now() - min(staged_at), '0'::interval)), 0)::float8
				FROM staged_events`).Scan(&age)
			if err != nil {
				if ctx.Err() == nil {
					r.log.Warn("end-to-end: sampling the staged rows' age", "err", err)
				}
				continue
			}
			samples = append(samples, age)
		}
	}()
	return func() []float64 {
		cancel()
		<-done
		return samples
	}
}

// eventCols are the events columns, in the table's order: the dataset
// generator and the baseline copy write every one.
var eventCols = []string{
	"ts", "visitor_id", "session_id", "site_id", "name_id", "referrer_id",
	"content_id", "client_id", "traffic_id", "engagement_ms", "flags", "params",
}

// storedRow is one events row, typed, with the dims ids of its client
// profile: a million of them take ~150 MB, where boxed []any values would
// take several times that.
type storedRow struct {
	site             int32
	ts               time.Time
	visitor, session int64
	engage           int32
	flags            int16
	params           []byte // empty: none
	content          int32
	client, traffic  int32
	dims             [numKinds]int32 // by kind-1: events' own and its profiles'
}

// pipelineRows reads back the rows the end-to-end phase stored, in time order.
func (r *run) pipelineRows(ctx context.Context, site uint32) ([]storedRow, error) {
	q := `SELECT e.ts, e.visitor_id, e.session_id, e.site_id, e.engagement_ms, e.flags, e.params, e.content_id, e.client_id, e.traffic_id,
			e.name_id, COALESCE(n.page_id, 0), COALESCE(n.host_id, 0), COALESCE(n.title_id, 0), e.referrer_id,
			COALESCE(c.language_id, 0), COALESCE(c.screen_id, 0), COALESCE(c.country_id, 0), COALESCE(c.region_id, 0),
			COALESCE(c.city_id, 0), COALESCE(c.browser_id, 0), COALESCE(c.os_id, 0), COALESCE(c.device_id, 0)
		FROM events e LEFT JOIN content_profiles n ON n.id = e.content_id LEFT JOIN client_profiles c ON c.id = e.client_id
		WHERE e.site_id = $1 ORDER BY e.ts`
	rows, err := r.st.db.Query(ctx, q, int32(site))
	if err != nil {
		return nil, fmt.Errorf("bench: read pipeline rows: %w", err)
	}
	out, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (storedRow, error) {
		var s storedRow
		dst := []any{&s.ts, &s.visitor, &s.session, &s.site, &s.engage, &s.flags, &s.params, &s.content, &s.client, &s.traffic}
		for k := range s.dims {
			dst = append(dst, &s.dims[k])
		}
		return s, row.Scan(dst...)
	})
	if err != nil {
		return nil, fmt.Errorf("bench: read pipeline rows: %w", err)
	}
	return out, nil
}

// rowSource feeds storedRows to CopyFrom; the values slice is reused.
type rowSource struct {
	rows []storedRow
	i    int
	vals []any
}

func newRowSource(rows []storedRow) *rowSource {
	return &rowSource{rows: rows, i: -1, vals: make([]any, len(eventCols))}
}

func (s *rowSource) Next() bool { s.i++; return s.i < len(s.rows) }
func (s *rowSource) Err() error { return nil }

func (s *rowSource) Values() ([]any, error) {
	r, v := &s.rows[s.i], s.vals
	v[0], v[1], v[2], v[3], v[4], v[5] = r.ts, r.visitor, r.session, r.site, r.dims[kindName-1], r.dims[kindReferrer-1]
	v[6], v[7], v[8], v[9], v[10], v[11] = r.content, r.client, r.traffic, r.engage, r.flags, r.params
	return v, nil
}

// copyRounds is how many times the baseline COPYs the rows; its figure is
// the median. One COPY alone swung from 424k to 1,130k rows/s between
// runs on this machine, which moved the ratio more than any change of the
// pipeline did.
const copyRounds = 3

// copyBaseline COPYs rows into a fresh table of the events table's shape
// (day partitions, its indexes) in one transaction, copyRounds times, each
// on a quiet server (settle): the floor any writer of these rows has to
// pay. copy_rows_per_s is the median round.
func (r *run) copyBaseline(ctx context.Context, rows []storedRow) error {
	if len(rows) == 0 {
		return errors.New("bench: no pipeline rows to copy")
	}
	defer func() {
		if _, err := r.st.db.Exec(context.WithoutCancel(ctx), "DROP TABLE IF EXISTS bench_copy"); err != nil {
			r.log.Warn("dropping the copy baseline's table", "err", err)
		}
	}()
	r.log.Info("end-to-end baseline: raw COPY of the same rows", "rows", len(rows), "rounds", copyRounds)
	rates := make([]float64, 0, copyRounds)
	for range copyRounds {
		rate, err := r.copyRound(ctx, rows)
		if err != nil {
			return err
		}
		rates = append(rates, rate)
	}
	r.log.Info("end-to-end baseline", "rows_per_s", rates)
	rate := Percentile(rates, 50)
	r.set("copy_rows_per_s", rate)
	if v, ok := r.res.Get("pipeline_events_per_s"); ok {
		r.set("pipeline_ratio_vs_copy", ratio(v, rate))
	}
	return nil
}

// copyRound creates the baseline's table anew, lets the server settle and
// times one COPY of rows into it, in rows per second.
func (r *run) copyRound(ctx context.Context, rows []storedRow) (float64, error) {
	pool := r.st.db
	first, last := rows[0].ts, rows[len(rows)-1].ts
	ddl := []string{
		"DROP TABLE IF EXISTS bench_copy",
		"CREATE TABLE bench_copy (LIKE events INCLUDING DEFAULTS INCLUDING INDEXES) PARTITION BY RANGE (ts)",
	}
	for d := utcDay(first); !d.After(last); d = d.AddDate(0, 0, 1) {
		ddl = append(ddl, fmt.Sprintf("CREATE TABLE bench_copy_%s PARTITION OF bench_copy FOR VALUES FROM ('%s') TO ('%s')",
			d.Format("20060102"), d.Format(time.RFC3339), d.AddDate(0, 0, 1).Format(time.RFC3339)))
	}
	for _, s := range ddl {
		if _, err := pool.Exec(ctx, s); err != nil {
			return 0, fmt.Errorf("bench: copy baseline: %s: %w", s, err)
		}
	}
	if err := r.settle(ctx); err != nil {
		return 0, err
	}
	start := time.Now()
	tx, err := pool.Begin(ctx)
	if err != nil {
		return 0, fmt.Errorf("bench: copy baseline: %w", err)
	}
	defer tx.Rollback(context.WithoutCancel(ctx)) // no-op after Commit
	n, err := tx.CopyFrom(ctx, pgx.Identifier{"bench_copy"}, eventCols, newRowSource(rows))
	if err != nil {
		return 0, fmt.Errorf("bench: copy baseline: %w", err)
	}
	if err := tx.Commit(ctx); err != nil {
		return 0, fmt.Errorf("bench: copy baseline: commit: %w", err)
	}
	return perSecond(n, time.Since(start)), nil
}

// settleFor bounds how long settle waits for autovacuum to finish.
const settleFor = 2 * time.Minute

// settle brings the server to a quiet state before a timed phase: no
// autovacuum worker running (it starts on the tables a phase just filled
// and takes a core of this machine's two) and no dirty buffers waiting for
// a checkpoint (a checkpoint due in the middle of a phase writes them out
// on its time). The end-to-end phase and every round of its baseline
// start from it, so neither pays for what came before.
func (r *run) settle(ctx context.Context) error {
	deadline := time.Now().Add(settleFor)
	for {
		var workers int
		if err := r.st.db.QueryRow(ctx, "SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'autovacuum worker'").Scan(&workers); err != nil {
			return fmt.Errorf("bench: settle: count autovacuum workers: %w", err)
		}
		if workers == 0 {
			break
		}
		if time.Now().After(deadline) {
			r.log.Warn("autovacuum still running; timing anyway", "workers", workers, "waited", settleFor)
			break
		}
		if err := sleep(ctx, 200*time.Millisecond); err != nil {
			return err
		}
	}
	// A server given with DATABASE_URL may not let this role checkpoint
	// (superuser or pg_checkpoint): then the phase is timed without one.
	if _, err := r.st.db.Exec(ctx, "CHECKPOINT"); err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		r.log.Warn("could not checkpoint before a timed phase", "err", err)
	}
	return nil
}

func utcDay(t time.Time) time.Time {
	y, m, d := t.UTC().Date()
	return time.Date(y, m, d, 0, 0, 0, 0, time.UTC)
}

func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}
