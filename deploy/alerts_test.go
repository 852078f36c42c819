package deploy

import (
	"bytes"
	"os"
	"path/filepath"
	"regexp"
	"testing"

	"github.com/prometheus/common/model"
	"go.yaml.in/yaml/v4"
)

// ruleFile is Prometheus' rule file format (rulefmt), strictly: an
// unknown or misspelt key fails the decode.
type ruleFile struct {
	Groups []struct {
		Name     string `yaml:"name"`
		Interval string `yaml:"interval,omitempty"`
		Rules    []struct {
			Alert       string            `yaml:"alert"`
			Record      string            `yaml:"record"`
			Expr        string            `yaml:"expr"`
			For         string            `yaml:"for,omitempty"`
			Labels      map[string]string `yaml:"labels"`
			Annotations map[string]string `yaml:"annotations"`
		} `yaml:"rules"`
	} `yaml:"groups"`
}

// The shipped alert rules parse as a Prometheus rule file, each alert has
// an expression over metrics the code declares, valid label names, and the
// dead-letter and report-lag alerts are there.
func TestAlertRules(t *testing.T) {
	raw, err := os.ReadFile(filepath.Join(repoRoot, "deploy", "prometheus", "avila-alerts.yml"))
	if err != nil {
		t.Fatal(err)
	}
	dec := yaml.NewDecoder(bytes.NewReader(raw))
	dec.KnownFields(true)
	var f ruleFile
	if err := dec.Decode(&f); err != nil {
		t.Fatalf("alert rules do not parse: %v", err)
	}
	declared := declaredMetrics(t)
	alerts := map[string]string{}
	for _, g := range f.Groups {
		if g.Name == "" || len(g.Rules) == 0 {
			t.Fatalf("group %+v: no name or no rules", g)
		}
		for _, r := range g.Rules {
			if (r.Alert == "") == (r.Record == "") || r.Expr == "" {
				t.Fatalf("rule %+v: want exactly one of alert and record, and an expr", r)
			}
			if r.For != "" {
				if _, err := model.ParseDuration(r.For); err != nil {
					t.Fatalf("alert %s: for %q: %v", r.Alert, r.For, err)
				}
			}
			for k := range r.Labels {
				if !model.LegacyValidation.IsValidLabelName(k) {
					t.Fatalf("alert %s: label name %q", r.Alert, k)
				}
			}
			names := exprMetric.FindAllString(r.Expr, -1)
			if len(names) == 0 {
				t.Fatalf("alert %s: expr %q reads no analytics_* metric", r.Alert, r.Expr)
			}
			for _, n := range names {
				if !declared[n] {
					t.Fatalf("alert %s: metric %s is declared nowhere in the code", r.Alert, n)
				}
			}
			alerts[r.Alert] = r.Expr
		}
	}
	for alert, metric := range map[string]string{
		"AvilaDeadLetters":    "analytics_dead_letters_total",
		"AvilaReportsLagging": "analytics_write_staged_oldest_seconds",
	} {
		if expr, ok := alerts[alert]; !ok || !regexp.MustCompile(metric).MatchString(expr) {
			t.Fatalf("no %s alert on %s: %v", alert, metric, alerts)
		}
	}
}
