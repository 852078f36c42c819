package bench

import (
	"fmt"
	"io"
	"log/slog"
	"slices"
	"strings"
	"time"
)

// Options configure a run. Only Table is required.
type Options struct {
	// Quick runs shorter phases and only the 1M-event query set, for a
	// check in under two minutes.
	Quick bool
	// DatabaseURL is an existing PostgreSQL server; the run creates its own
	// database there and drops it at the end. Empty: a managed PostgreSQL
	// from the system's binaries in WorkDir.
	DatabaseURL string
	// WorkDir holds the built binaries, data directories and logs. Empty: a
	// temporary directory, removed at the end unless Keep.
	WorkDir string
	Keep    bool
	// RepoDir is the module root the binaries are built from ("." when empty).
	RepoDir string
	// Go is the go command (default "go" on PATH).
	Go string
	// Generator picks the HTTP load generator: "wrk", "go", or "" for wrk
	// when installed, else the Go one.
	Generator string
	// Phases picks the phases to run (see Phases); nil or empty: all. A
	// run of some phases only does not require the other phases' figures.
	Phases []string
	// PipelineFor bounds the end-to-end phase's send instead of the run's
	// own (30 s, 5 s quick), and lifts its event bound with it (at
	// 200k events a second): a quick run with the full run's send shows
	// what a long backlog does to the binaries. 0: the run's own.
	PipelineFor time.Duration
	Table       io.Writer    // the Markdown table
	JSON        io.Writer    // results.json; nil: not written
	Logger      *slog.Logger // progress; nil: discard
}

// Phases are the names Options.Phases accepts, in the order a run goes
// through them: resources (idle CPU and RSS; RSS under load is sampled
// whenever a load phase runs), queries (the query data sets, bytes per
// event on disk, the dashboard set), ingest (single-hit vs bare net/http),
// batched, mp (Measurement Protocol), pipeline (end to end vs raw COPY,
// and wire bytes), nodes (the write stage of two aggregator nodes on one
// site vs one), import (avila import of a generated access log) and
// failover (three aggregators, one killed under load).
var Phases = []string{"resources", "queries", "ingest", "batched", "mp", "pipeline", "nodes", "import", "failover"}

// CheckPhases reports the first name that is not one of Phases.
func CheckPhases(names []string) error {
	for _, n := range names {
		if !slices.Contains(Phases, n) {
			return fmt.Errorf("bench: phase %q: want one of %s", n, strings.Join(Phases, ", "))
		}
	}
	return nil
}

// runs reports whether phase is selected.
func (o *Options) runs(phase string) bool {
	return len(o.Phases) == 0 || slices.Contains(o.Phases, phase)
}

// partial reports whether only some phases run.
func (o *Options) partial() bool {
	for _, p := range Phases {
		if !o.runs(p) {
			return true
		}
	}
	return false
}

// sizing is how long and how big each phase is.
type sizing struct {
	connections    int           // HTTP load generator connections
	ingestFor      time.Duration // each single-hit run (agent, bare) and the batched run
	pipelineEvents int64         // events sent in the end-to-end phase
	pipelineFor    time.Duration // bound on sending them
	drainFor       time.Duration // bound on waiting for the pipeline to store what was sent
	importLines    int           // access log lines of the import phase
	nodesEvents    int64         // events of each run of the nodes phase (nodesOrder runs)
	idleFor        time.Duration // CPU sampling window at idle
	datasets       []dataset     // query data sets, loaded in order into one site
	warmRuns       int           // warm repetitions of the dashboard set per data set
	warmFor        time.Duration // bound on the warm repetitions per data set
}

// dataset is a query data set size: total events of the dashboard site.
type dataset struct {
	key    string // results.json suffix: "1m", "10m"
	events int64
}

// sizingFor is the run's sizing: quick or full, with the end-to-end
// phase's send bound by opts.PipelineFor when given.
func sizingFor(opts Options) sizing {
	sz := baseSizing(opts.Quick)
	if opts.PipelineFor > 0 {
		sz.pipelineFor = opts.PipelineFor
		sz.pipelineEvents = max(sz.pipelineEvents, int64(opts.PipelineFor.Seconds()*pipelineMaxRate))
		sz.drainFor = max(sz.drainFor, 6*opts.PipelineFor) // the full run's 3 min for its 30 s
	}
	return sz
}

// pipelineMaxRate is the event rate, per second, a longer end-to-end
// send (Options.PipelineFor) bounds its event count by: twice what the
// agent acknowledged in full runs, so the time is the bound that applies.
const pipelineMaxRate = 200_000

func baseSizing(quick bool) sizing {
	if quick {
		return sizing{connections: 64, ingestFor: 5 * time.Second, pipelineEvents: 400_000, pipelineFor: 5 * time.Second, importLines: 200_000, nodesEvents: 100_000,
			drainFor: 60 * time.Second, idleFor: 5 * time.Second, datasets: []dataset{{"1m", 1_000_000}},
			warmRuns: 5, warmFor: 20 * time.Second}
	}
	return sizing{connections: 64, ingestFor: 15 * time.Second, pipelineEvents: 4_000_000, pipelineFor: 30 * time.Second, importLines: 1_000_000, nodesEvents: 1_000_000,
		drainFor: 3 * time.Minute, idleFor: 5 * time.Second, datasets: []dataset{{"1m", 1_000_000}, {"10m", 10_000_000}},
		warmRuns: 20, warmFor: 3 * time.Minute}
}
