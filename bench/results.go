package bench

import (
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"math"
	"slices"
	"strconv"
	"strings"
)

// requiredKeys are the keys every results.json carries; the 10M query
// figure is left out in quick mode.
var requiredKeys = []string{
	"ingest_hits_per_s", "bare_http_per_s", "ingest_ratio_vs_bare", "ingest_ratio_vs_bare_shared", "ingest_events_lost",
	"batched_events_per_s",
	"pipeline_events_per_s", "copy_rows_per_s", "pipeline_ratio_vs_copy",
	"pipeline_cpu_us_per_event_agent", "pipeline_cpu_us_per_event_aggregator", "pipeline_machine_busy_share",
	"nodes_1_events_per_s", "nodes_2_events_per_s", "nodes_2_ratio_vs_1",
	"query_p50_ms_1m", "query_p99_ms_1m", "query_p99_ms_10m", "query_p50_ms_1m_grpc", "query_p99_ms_1m_grpc",
	"bytes_per_event_disk", "wire_bytes_per_event", "raw_request_bytes_per_event",
	"agent_rss_mb_load", "aggregator_rss_mb_load", "idle_cpu_percent",
}

// RequiredKeys lists the keys a complete run writes to results.json.
func RequiredKeys(quick bool) []string {
	if quick {
		return slices.DeleteFunc(slices.Clone(requiredKeys), func(k string) bool { return strings.HasSuffix(k, "_10m") })
	}
	return slices.Clone(requiredKeys)
}

// Target is a pass/fail bound on a figure (or on its ratio to its baseline).
type Target struct {
	OnRatio bool    // the bound applies to the ratio column, else to the value
	AtLeast bool    // value >= Limit passes; else value <= Limit passes
	Limit   float64 //
}

func (t Target) String() string {
	op := "≤"
	if t.AtLeast {
		op = "≥"
	}
	return op + " " + formatNumber(t.Limit)
}

func (t Target) pass(v float64) bool {
	if t.AtLeast {
		return v >= t.Limit
	}
	return v <= t.Limit
}

// Figure is one row of the table: a measured value, optionally beside a
// baseline from the same run and their ratio, optionally with a target.
type Figure struct {
	Name     string // what is measured, with its unit
	Key      string // results.json key of the value
	Baseline string // key of the baseline's value, "" when none
	Ratio    string // key of value/baseline, "" when none
	Target   *Target
}

// Results is one run's figures: a flat set of named numbers (results.json)
// and the rows that present them.
type Results struct {
	values  map[string]float64
	figures []Figure
}

// NewResults returns empty results presented by figures.
func NewResults(figures []Figure) *Results {
	return &Results{values: make(map[string]float64), figures: figures}
}

// Set records a number. NaN and infinities cannot be written as JSON
// numbers; they are refused with an error naming the key.
func (r *Results) Set(key string, v float64) error {
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return fmt.Errorf("bench: figure %s is %v, not a number", key, v)
	}
	r.values[key] = v
	return nil
}

// Get returns a recorded number.
func (r *Results) Get(key string) (float64, bool) {
	v, ok := r.values[key]
	return v, ok
}

// Missing lists the required keys not recorded, in requiredKeys order.
func (r *Results) Missing(quick bool) []string {
	var miss []string
	for _, k := range RequiredKeys(quick) {
		if _, ok := r.values[k]; !ok {
			miss = append(miss, k)
		}
	}
	return miss
}

// WriteJSON writes the flat JSON object of every recorded number, keys sorted.
func (r *Results) WriteJSON(w io.Writer) error {
	var b strings.Builder
	b.WriteString("{\n")
	keys := slices.Sorted(maps.Keys(r.values))
	for i, k := range keys {
		kj, _ := json.Marshal(k)
		fmt.Fprintf(&b, "  %s: %s", kj, strconv.FormatFloat(round(r.values[k]), 'f', -1, 64))
		if i < len(keys)-1 {
			b.WriteByte(',')
		}
		b.WriteByte('\n')
	}
	b.WriteString("}\n")
	_, err := io.WriteString(w, b.String())
	return err
}

// round keeps four significant decimals for small numbers and three
// decimals for large ones: more digits than that are noise between runs.
func round(v float64) float64 {
	if v == 0 {
		return 0
	}
	if math.Abs(v) >= 10 {
		return math.Round(v*1000) / 1000
	}
	p := math.Pow(10, 4-math.Ceil(math.Log10(math.Abs(v))))
	return math.Round(v*p) / p
}

// WriteTable writes the figures as a Markdown table. A figure whose value
// was not measured is shown as "n/a" and fails its target.
func (r *Results) WriteTable(w io.Writer) error {
	var b strings.Builder
	b.WriteString("| figure | value | baseline | ratio | target | result |\n")
	b.WriteString("|---|---:|---:|---:|---|---|\n")
	for _, f := range r.figures {
		value, ok := r.values[f.Key]
		cells := []string{f.Name, r.cell(f.Key), "", "", "", ""}
		if f.Baseline != "" {
			cells[2] = r.cell(f.Baseline)
		}
		if f.Ratio != "" {
			cells[3] = r.cell(f.Ratio)
		}
		if f.Target != nil {
			cells[4] = f.Target.String()
			checked, have := value, ok
			if f.Target.OnRatio {
				checked, have = r.values[f.Ratio]
			}
			switch {
			case !have:
				cells[5] = "fail (not measured)"
			case f.Target.pass(checked):
				cells[5] = "pass"
			default:
				cells[5] = "fail"
			}
		}
		b.WriteString("| " + strings.Join(cells, " | ") + " |\n")
	}
	_, err := io.WriteString(w, b.String())
	return err
}

func (r *Results) cell(key string) string {
	v, ok := r.values[key]
	if !ok {
		return "n/a"
	}
	return formatNumber(v)
}

// formatNumber prints a figure with as many digits as are worth reading.
func formatNumber(v float64) string {
	a := math.Abs(v)
	switch {
	case a >= 1000:
		return strconv.FormatFloat(math.Round(v), 'f', 0, 64)
	case a >= 100:
		return strconv.FormatFloat(v, 'f', 1, 64)
	case a >= 0.01 || a == 0:
		return strconv.FormatFloat(v, 'f', 2, 64)
	}
	return strconv.FormatFloat(v, 'g', 3, 64)
}
