package bench

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"
)

// run is one benchmark run's state.
type run struct {
	opts Options
	sz   sizing
	log  *slog.Logger
	res  *Results
	gen  Generator
	st   *stack

	dict     *dictionary // the dashboard site's dims ids, once created
	clients  []int32     // its client profile ids by visitor number
	contents []int32     // its content profile ids by page index
	traffic  []int32     // its traffic profile ids, as trafficSources
	products []int32     // its item profile ids (createProducts)
	loaded   int64       // events generated for the dashboard site so far
}

// Run performs the benchmark and writes the table (and results.json when
// opts.JSON is set). The table is written even when a phase fails, showing
// what was measured; the error then says what failed. A run missing a
// required figure is an error.
func Run(ctx context.Context, opts Options) (*Results, error) {
	if err := CheckPhases(opts.Phases); err != nil {
		return nil, err
	}
	r := &run{opts: opts, sz: sizingFor(opts), log: opts.Logger, res: NewResults(figures(opts.Quick))}
	if r.log == nil {
		r.log = slog.New(slog.DiscardHandler)
	}
	work := opts.WorkDir
	if work == "" {
		dir, err := os.MkdirTemp("", "avila-bench-")
		if err != nil {
			return nil, fmt.Errorf("bench: %w", err)
		}
		work = dir
		if !opts.Keep {
			defer os.RemoveAll(dir)
		}
	} else if err := os.MkdirAll(work, 0o755); err != nil {
		return nil, fmt.Errorf("bench: %w", err)
	}
	if work, err := filepath.Abs(work); err == nil {
		r.log.Info("work directory", "dir", work)
	}
	var err error
	if r.gen, err = pickGenerator(opts.Generator, work); err != nil {
		return nil, err
	}
	r.log.Info("load generator", "name", r.gen.Name())
	started := time.Now()
	runErr := r.phases(ctx, work)
	r.set("run_seconds", time.Since(started).Seconds())

	if err := r.res.WriteTable(opts.Table); err != nil {
		return r.res, fmt.Errorf("bench: write table: %w", err)
	}
	if opts.JSON != nil {
		if err := r.res.WriteJSON(opts.JSON); err != nil {
			return r.res, fmt.Errorf("bench: write results: %w", err)
		}
	}
	if runErr != nil {
		return r.res, runErr
	}
	if opts.partial() {
		return r.res, nil
	}
	if miss := r.res.Missing(opts.Quick); len(miss) > 0 {
		return r.res, fmt.Errorf("bench: figures not measured: %s", strings.Join(miss, ", "))
	}
	return r.res, nil
}

func pickGenerator(name, dir string) (Generator, error) {
	switch name {
	case "", "auto":
		if w, ok := FindWrk(dir); ok {
			return w, nil
		}
		return GoLoad{}, nil
	case "wrk":
		if w, ok := FindWrk(dir); ok {
			return w, nil
		}
		return nil, errors.New("bench: wrk not found on PATH: install it (apt-get install -y wrk) or use the go generator")
	case "go":
		return GoLoad{}, nil
	}
	return nil, fmt.Errorf("bench: load generator %q: want wrk, go or auto", name)
}

// phases starts the stack and measures in order: idle, the query data
// sets, then single-hit and batched ingest, end to end, and failover.
func (r *run) phases(ctx context.Context, work string) (err error) {
	r.st, err = startStack(ctx, r.opts, work, r.log)
	if err != nil {
		return err
	}
	defer r.st.close(context.WithoutCancel(ctx))

	if r.opts.runs("resources") {
		if err := r.idle(ctx); err != nil {
			return err
		}
	}
	// Query data first: the ingest phases put millions of rows into today's
	// partition of other sites, and with no index on site_id the dashboard's
	// 30 days would scan them too.
	for _, ds := range r.sz.datasets {
		if !r.opts.runs("queries") {
			break
		}
		if err := r.loadDataset(ctx, ds); err != nil {
			return err
		}
		key := "bytes_per_event_disk"
		if ds.key != "1m" {
			key += "_" + ds.key
		}
		if err := r.diskBytes(ctx, key); err != nil {
			return err
		}
		if err := r.queries(ctx, ds); err != nil {
			return err
		}
		if err := r.erasures(ctx, ds); err != nil {
			return err
		}
	}
	if r.opts.runs("nodes") {
		if err := r.nodes(ctx); err != nil {
			return err
		}
	}
	if slices.ContainsFunc([]string{"ingest", "batched", "mp", "pipeline", "import"}, r.opts.runs) {
		sampler := r.sampleRSS()
		loadErr := r.loadPhases(ctx)
		if err := sampler.finish(r); err != nil && loadErr == nil {
			loadErr = err
		}
		if loadErr != nil {
			return loadErr
		}
	}
	// Last: it kills an aggregator of its own cluster, beside the stack.
	if r.opts.runs("failover") {
		return r.failover(ctx)
	}
	return nil
}

// loadPhases are the phases that put the binaries under load, those of
// them that were selected.
func (r *run) loadPhases(ctx context.Context) error {
	if r.opts.runs("ingest") {
		if err := r.singleHitIngest(ctx); err != nil {
			return err
		}
		if _, err := r.drain(ctx); err != nil {
			return err
		}
	}
	if r.opts.runs("batched") {
		if err := r.batchedIngest(ctx); err != nil {
			return err
		}
	}
	if r.opts.runs("mp") {
		if err := r.mpIngest(ctx); err != nil {
			return err
		}
	}
	if r.opts.runs("pipeline") {
		if err := r.pipeline(ctx); err != nil {
			return err
		}
	}
	if r.opts.runs("import") {
		// Last: its batches would count as the agent's in the phases above.
		return r.importLog(ctx)
	}
	return nil
}

// set records a figure; a figure that is not a number is logged, not kept.
func (r *run) set(key string, v float64) {
	if err := r.res.Set(key, v); err != nil {
		r.log.Warn("figure not recorded", "err", err)
	}
}
