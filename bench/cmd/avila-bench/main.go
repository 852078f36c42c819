// Command avila-bench runs the benchmark harness (package bench) behind
// `make bench`: it prints a Markdown table of figures beside same-run
// baselines on stdout and writes results.json.
//
// Every flag has an AVILA_<FLAG> environment fallback (--quick ↔
// AVILA_QUICK); --database-url also falls back to DATABASE_URL. Progress
// logs go to stderr.
package main

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/avila-analytics/avila/bench"
	"github.com/avila-analytics/avila/internal/cli"
)

func main() {
	if err := run(os.Args[1:], os.LookupEnv, os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "avila-bench:", err)
		os.Exit(1)
	}
}

// config is the parsed command line.
type config struct {
	opts     bench.Options
	out      string // results.json path; "" not written
	logLevel slog.Level
}

// parse reads flags with their AVILA_* fallbacks from lookupEnv.
func parse(args []string, lookupEnv func(string) (string, bool), stderr io.Writer) (config, error) {
	var c config
	fs := cli.NewFlagSet("avila-bench")
	fs.SetOutput(stderr)
	fs.BoolVar(&c.opts.Quick, "quick", false, "short phases and only the 1M-event query set, under two minutes")
	fs.StringVar(&c.out, "out", "bench/results.json", "where results.json goes; empty: not written")
	fs.StringVar(&c.opts.DatabaseURL, "database-url", "",
		"existing PostgreSQL server to create the run's database on (dropped at the end); empty: a managed PostgreSQL from the system's initdb/pg_ctl")
	fs.SetEnv("database-url", "AVILA_DATABASE_URL", "DATABASE_URL")
	fs.StringVar(&c.opts.WorkDir, "work-dir", "",
		"directory for binaries, data and logs; empty: a temporary directory removed at the end unless --keep")
	fs.BoolVar(&c.opts.Keep, "keep", false, "keep the temporary work directory, e.g. to read the binaries' logs")
	fs.StringVar(&c.opts.RepoDir, "repo", ".", "module root the binaries are built from")
	fs.StringVar(&c.opts.Generator, "load-generator", "auto",
		"HTTP load generator for single-hit and batched ingest: wrk, go, or auto (wrk when installed)")
	phases := fs.String("phases", "",
		"comma-separated phases to run, of "+strings.Join(bench.Phases, ",")+
			"; empty: all. A partial run requires only its own figures and writes results.json only when --out is given")
	fs.DurationVar(&c.opts.PipelineFor, "pipeline-for", 0,
		"how long the end-to-end phase sends (its event bound follows); 0: the run's own, 30 s (5 s with --quick)")
	level := fs.String("log-level", "info", "progress log level on stderr: debug, info, warn or error")
	if err := fs.Parse(args, lookupEnv); err != nil {
		return c, err
	}
	if fs.NArg() > 0 {
		return c, fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	if err := c.logLevel.UnmarshalText([]byte(*level)); err != nil {
		return c, fmt.Errorf("--log-level %q: want debug, info, warn or error", *level)
	}
	if *phases != "" {
		c.opts.Phases = strings.Split(*phases, ",")
		if err := bench.CheckPhases(c.opts.Phases); err != nil {
			return c, fmt.Errorf("--phases: %w", err)
		}
		// The committed results.json is a full run's: a partial run does
		// not replace it unless asked to.
		// (A flag set from its variable, AVILA_OUT, counts as given.)
		outSet := false
		fs.Visit(func(f *flag.Flag) { outSet = outSet || f.Name == "out" })
		if !outSet {
			c.out = ""
		}
	}
	if c.opts.PipelineFor < 0 {
		return c, fmt.Errorf("--pipeline-for %s: want a duration >= 0", c.opts.PipelineFor)
	}
	switch c.opts.Generator {
	case "auto", "wrk", "go":
	default:
		return c, fmt.Errorf("--load-generator %q: want wrk, go or auto", c.opts.Generator)
	}
	return c, nil
}

func run(args []string, lookupEnv func(string) (string, bool), stdout, stderr io.Writer) error {
	c, err := parse(args, lookupEnv, stderr)
	if err != nil {
		return err
	}
	c.opts.Logger = slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: c.logLevel}))
	c.opts.Table = stdout
	var js bytes.Buffer
	if c.out != "" {
		c.opts.JSON = &js
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	_, runErr := bench.Run(ctx, c.opts)
	if c.out != "" && js.Len() > 0 {
		if err := os.WriteFile(c.out, js.Bytes(), 0o644); err != nil {
			return fmt.Errorf("write %s: %w", c.out, err)
		}
		fmt.Fprintln(stderr, "avila-bench: wrote", c.out)
	}
	return runErr
}
