package bench

import "testing"

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
