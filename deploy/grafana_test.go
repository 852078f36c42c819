package deploy

import (
	"encoding/json"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
)

// dashboard is the part of a Grafana dashboard the test reads.
type dashboard struct {
	Title  string  `json:"title"`
	UID    string  `json:"uid"`
	Panels []panel `json:"panels"`
}

type panel struct {
	ID      int    `json:"id"`
	Type    string `json:"type"`
	Title   string `json:"title"`
	Targets []struct {
		Expr  string `json:"expr"`
		RefID string `json:"refId"`
	} `json:"targets"`
}

// metricNameDecl matches where the code declares a metric name: an Opts
// Name field or a NewDesc call (possibly through a short alias d).
var metricNameDecl = regexp.MustCompile(`(?:Name:\s*|NewDesc\(|\bd\()"(analytics_[a-z0-9_]+)"`)

// declaredMetrics lists the analytics_* metric names declared in the
// repository's non-test Go files.
func declaredMetrics(t *testing.T) map[string]bool {
	t.Helper()
	names := map[string]bool{}
	err := filepath.WalkDir(repoRoot, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && (d.Name() == ".git" || d.Name() == "testdata") {
			return filepath.SkipDir
		}
		if d.IsDir() || !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
			return nil
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		for _, m := range metricNameDecl.FindAllStringSubmatch(string(b), -1) {
			names[m[1]] = true
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return names
}

// runtimeMetrics lists the names the Go runtime and process collectors
// export, which both binaries register.
func runtimeMetrics(t *testing.T) map[string]bool {
	t.Helper()
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	fams, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	names := map[string]bool{}
	for _, f := range fams {
		names[f.GetName()] = true
	}
	return names
}

var exprMetric = regexp.MustCompile(`\b(?:analytics|go|process)_[a-z0-9_]+\b`)

// TestGrafanaDashboard: deploy/grafana/avila.json is a dashboard whose
// every query names only metrics the binaries export, and which shows every
// analytics_* metric the code declares.
func TestGrafanaDashboard(t *testing.T) {
	b, err := os.ReadFile(filepath.Join("grafana", "avila.json"))
	if err != nil {
		t.Fatal(err)
	}
	var d dashboard
	if err := json.Unmarshal(b, &d); err != nil {
		t.Fatalf("avila.json: %v", err)
	}
	if d.Title == "" || d.UID == "" {
		t.Errorf("dashboard title %q uid %q: both are needed for import", d.Title, d.UID)
	}
	declared := declaredMetrics(t)
	for _, want := range []string{"analytics_events_collected_total", "analytics_events_processed_total",
		"analytics_query_duration_seconds", "analytics_storage_writes_total", "analytics_cache_hits_total"} {
		if !declared[want] {
			t.Errorf("no code declares %s (the scan of the sources is broken, or the metric is gone)", want)
		}
	}
	known := runtimeMetrics(t)
	for n := range declared {
		known[n] = true
	}
	shown := map[string]bool{}
	ids := map[int]bool{}
	for _, p := range d.Panels {
		if ids[p.ID] {
			t.Errorf("panel id %d used twice", p.ID)
		}
		ids[p.ID] = true
		if p.Type == "row" {
			continue
		}
		if len(p.Targets) == 0 {
			t.Errorf("panel %q has no query", p.Title)
		}
		for _, tg := range p.Targets {
			names := exprMetric.FindAllString(tg.Expr, -1)
			if len(names) == 0 {
				t.Errorf("panel %q: expr %q names no metric", p.Title, tg.Expr)
			}
			for _, n := range names {
				base := n
				for _, suffix := range []string{"_bucket", "_count", "_sum"} {
					if s, ok := strings.CutSuffix(n, suffix); ok && declared[s] {
						base = s
					}
				}
				if !known[base] {
					t.Errorf("panel %q: expr %q names %s, which no binary exports", p.Title, tg.Expr, n)
				}
				shown[base] = true
			}
		}
	}
	var missing []string
	for n := range declared {
		if !shown[n] {
			missing = append(missing, n)
		}
	}
	slices.Sort(missing)
	if len(missing) > 0 {
		t.Errorf("metrics not on the dashboard: %v", missing)
	}
}
