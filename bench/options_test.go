package bench

import (
	"testing"
	"time"
)

func TestOptionsPhases(t *testing.T) {
	all := Options{}
	if !all.runs("ingest") || !all.runs("queries") || all.partial() {
		t.Fatal("no phases given: every phase runs and the run is not partial")
	}
	some := Options{Phases: []string{"ingest", "resources"}}
	if !some.runs("ingest") || !some.runs("resources") || some.runs("queries") || some.runs("pipeline") || !some.partial() {
		t.Fatalf("phases %q: runs or partial wrong", some.Phases)
	}
	every := Options{Phases: Phases}
	if every.partial() {
		t.Fatal("every phase named: not partial")
	}
	if err := CheckPhases([]string{"ingest", "bogus"}); err == nil {
		t.Fatal("CheckPhases accepted an unknown phase")
	}
}

// A longer end-to-end send keeps the quick run's other sizes, lifts the
// event bound with the time and gives the drain as long again.
func TestSizingPipelineFor(t *testing.T) {
	quick := sizingFor(Options{Quick: true})
	long := sizingFor(Options{Quick: true, PipelineFor: 30 * time.Second})
	if long.pipelineFor != 30*time.Second || long.pipelineEvents != 6_000_000 || long.drainFor != 3*time.Minute {
		t.Fatalf("--pipeline-for 30s: for %s, events %d, drain %s; want 30s, 6000000, 3m", long.pipelineFor, long.pipelineEvents, long.drainFor)
	}
	if long.ingestFor != quick.ingestFor || len(long.datasets) != len(quick.datasets) {
		t.Fatalf("--pipeline-for changed other phases: %+v vs %+v", long, quick)
	}
	if full := sizingFor(Options{}); full.pipelineFor != 30*time.Second || full.pipelineEvents != 4_000_000 {
		t.Fatalf("full run: for %s, events %d; want 30s, 4000000", full.pipelineFor, full.pipelineEvents)
	}
}
