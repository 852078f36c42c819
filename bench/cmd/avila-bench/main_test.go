package main

import (
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"
)

func envOf(m map[string]string) func(string) (string, bool) {
	return func(k string) (string, bool) { v, ok := m[k]; return v, ok }
}

func TestParseDefaults(t *testing.T) {
	c, err := parse(nil, envOf(nil), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if c.opts.Quick || c.opts.Keep || c.out != "bench/results.json" || c.opts.DatabaseURL != "" ||
		c.opts.Generator != "auto" || c.opts.RepoDir != "." || c.logLevel != slog.LevelInfo {
		t.Fatalf("defaults: %+v out=%q", c.opts, c.out)
	}
}

// Every flag falls back to AVILA_<FLAG>; flags win over the environment;
// --database-url falls back to DATABASE_URL last.
func TestParseEnvFallbacks(t *testing.T) {
	env := map[string]string{
		"AVILA_QUICK": "true", "AVILA_KEEP": "1", "AVILA_OUT": "/tmp/r.json", "AVILA_WORK_DIR": "/tmp/w",
		"AVILA_REPO": "/src", "AVILA_LOAD_GENERATOR": "go", "AVILA_LOG_LEVEL": "warn",
		"DATABASE_URL": "postgres://plain", "AVILA_DATABASE_URL": "postgres://avila", "AVILA_PIPELINE_FOR": "30s",
	}
	c, err := parse(nil, envOf(env), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if !c.opts.Quick || !c.opts.Keep || c.out != "/tmp/r.json" || c.opts.WorkDir != "/tmp/w" || c.opts.RepoDir != "/src" ||
		c.opts.Generator != "go" || c.logLevel != slog.LevelWarn || c.opts.DatabaseURL != "postgres://avila" || c.opts.PipelineFor != 30*time.Second {
		t.Fatalf("from env: %+v out=%q level=%v", c.opts, c.out, c.logLevel)
	}
	delete(env, "AVILA_DATABASE_URL")
	c, err = parse([]string{"-quick=false", "-out", ""}, envOf(env), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if c.opts.Quick || c.out != "" || c.opts.DatabaseURL != "postgres://plain" {
		t.Fatalf("flags over env: quick=%v out=%q db=%q", c.opts.Quick, c.out, c.opts.DatabaseURL)
	}
}

func TestParseErrors(t *testing.T) {
	f := func(args []string, env map[string]string, want string) {
		t.Helper()
		_, err := parse(args, envOf(env), io.Discard)
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Fatalf("parse(%q, %v) = %v, want an error containing %q", args, env, err, want)
		}
	}
	f([]string{"-log-level", "loud"}, nil, "--log-level")
	f([]string{"-load-generator", "ab"}, nil, "--load-generator")
	f([]string{"extra"}, nil, "unexpected arguments")
	f(nil, map[string]string{"AVILA_QUICK": "yes please"}, "AVILA_QUICK")
	f([]string{"-no-such-flag"}, nil, "no-such-flag")
	f([]string{"-pipeline-for", "-1s"}, nil, "--pipeline-for")
}

// --phases picks phases; a partial run keeps the committed results.json
// unless --out or AVILA_OUT asks for a file.
func TestParsePhases(t *testing.T) {
	c, err := parse([]string{"-phases", "ingest,resources"}, envOf(nil), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(c.opts.Phases, ",") != "ingest,resources" || c.out != "" {
		t.Fatalf("phases=%q out=%q, want ingest,resources and no results.json", c.opts.Phases, c.out)
	}
	c, err = parse([]string{"-phases", "ingest", "-out", "/tmp/p.json"}, envOf(nil), io.Discard)
	if err != nil || c.out != "/tmp/p.json" {
		t.Fatalf("with --out: out=%q err=%v", c.out, err)
	}
	c, err = parse(nil, envOf(map[string]string{"AVILA_PHASES": "pipeline", "AVILA_OUT": "/tmp/q.json"}), io.Discard)
	if err != nil || strings.Join(c.opts.Phases, ",") != "pipeline" || c.out != "/tmp/q.json" {
		t.Fatalf("from env: phases=%q out=%q err=%v", c.opts.Phases, c.out, err)
	}
	if _, err := parse([]string{"-phases", "ingest,warp"}, envOf(nil), io.Discard); err == nil || !strings.Contains(err.Error(), `"warp"`) {
		t.Fatalf("unknown phase: err=%v, want it named", err)
	}
}
