package bench

import (
	"bytes"
	"encoding/json"
	"slices"
	"strings"
	"testing"
)

// Every key results.json promises must have a row in the table, or a run
// could silently stop measuring it.
func TestFiguresCoverRequiredKeys(t *testing.T) {
	for _, quick := range []bool{true, false} {
		var shown []string
		for _, f := range figures(quick) {
			shown = append(shown, f.Key, f.Baseline, f.Ratio)
		}
		for _, k := range RequiredKeys(quick) {
			if !slices.Contains(shown, k) {
				t.Errorf("quick=%v: required key %s has no row in the table", quick, k)
			}
		}
	}
}

func TestRequiredKeys(t *testing.T) {
	full, quick := RequiredKeys(false), RequiredKeys(true)
	for _, k := range []string{"ingest_hits_per_s", "bare_http_per_s", "ingest_ratio_vs_bare", "batched_events_per_s",
		"pipeline_events_per_s", "copy_rows_per_s", "pipeline_ratio_vs_copy",
		"pipeline_cpu_us_per_event_agent", "pipeline_cpu_us_per_event_aggregator", "pipeline_machine_busy_share", "query_p50_ms_1m", "query_p99_ms_1m",
		"query_p99_ms_10m", "bytes_per_event_disk", "wire_bytes_per_event", "raw_request_bytes_per_event",
		"agent_rss_mb_load", "aggregator_rss_mb_load", "idle_cpu_percent"} {
		if !slices.Contains(full, k) {
			t.Errorf("full run: %s missing", k)
		}
		if slices.Contains(quick, k) != (k != "query_p99_ms_10m") {
			t.Errorf("quick run: %s present=%v", k, slices.Contains(quick, k))
		}
	}
}

func TestResultsJSONIsFlatNumbers(t *testing.T) {
	r := NewResults(figures(true))
	for i, k := range RequiredKeys(true) {
		if err := r.Set(k, float64(i)+0.123456789); err != nil {
			t.Fatal(err)
		}
	}
	if miss := r.Missing(true); len(miss) != 0 {
		t.Fatalf("missing %v after setting every key", miss)
	}
	if miss := r.Missing(false); !slices.Equal(miss, []string{"query_p99_ms_10m"}) {
		t.Fatalf("full run missing %v, want only query_p99_ms_10m", miss)
	}
	var buf bytes.Buffer
	if err := r.WriteJSON(&buf); err != nil {
		t.Fatal(err)
	}
	var got map[string]any
	if err := json.Unmarshal(buf.Bytes(), &got); err != nil {
		t.Fatalf("results.json is not JSON: %v\n%s", err, buf.String())
	}
	for _, k := range RequiredKeys(true) {
		v, ok := got[k].(float64)
		if !ok {
			t.Fatalf("key %s: got %T %v, want a number", k, got[k], got[k])
		}
		if v < 0.12 {
			t.Fatalf("key %s: %v lost its value", k, v)
		}
	}
	if len(got) != len(RequiredKeys(true)) {
		t.Fatalf("got %d keys, want %d", len(got), len(RequiredKeys(true)))
	}
}

func TestResultsRefuseNaN(t *testing.T) {
	r := NewResults(nil)
	if err := r.Set("x", Percentile(nil, 50)); err == nil {
		t.Fatal("NaN accepted")
	}
	if _, ok := r.Get("x"); ok {
		t.Fatal("NaN recorded")
	}
}

func TestTable(t *testing.T) {
	r := NewResults([]Figure{
		{Name: "fast thing, ops/s", Key: "a", Baseline: "b", Ratio: "a_vs_b", Target: &Target{OnRatio: true, AtLeast: true, Limit: 0.6}},
		{Name: "slow thing, ops/s", Key: "c", Baseline: "d", Ratio: "c_vs_d", Target: &Target{OnRatio: true, AtLeast: true, Limit: 0.6}},
		{Name: "size, bytes", Key: "e", Target: &Target{Limit: 100}},
		{Name: "never measured", Key: "f", Target: &Target{Limit: 1}},
		{Name: "plain", Key: "g"},
	})
	for k, v := range map[string]float64{"a": 7000, "b": 10000, "a_vs_b": 0.7, "c": 5000, "d": 10000, "c_vs_d": 0.5, "e": 120, "g": 0.5} {
		_ = r.Set(k, v)
	}
	var buf bytes.Buffer
	if err := r.WriteTable(&buf); err != nil {
		t.Fatal(err)
	}
	want := []string{
		"| figure | value | baseline | ratio | target | result |",
		"|---|---:|---:|---:|---|---|",
		"| fast thing, ops/s | 7000 | 10000 | 0.70 | ≥ 0.60 | pass |",
		"| slow thing, ops/s | 5000 | 10000 | 0.50 | ≥ 0.60 | fail |",
		"| size, bytes | 120.0 |  |  | ≤ 100.0 | fail |",
		"| never measured | n/a |  |  | ≤ 1.00 | fail (not measured) |",
		"| plain | 0.50 |  |  |  |  |",
	}
	if got := strings.Split(strings.TrimSpace(buf.String()), "\n"); !slices.Equal(got, want) {
		t.Fatalf("table:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}
