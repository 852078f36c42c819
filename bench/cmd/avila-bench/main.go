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
	"log/slog"
	"os"
	"os/signal"
	"strconv"
	"syscall"

	"github.com/avila-analytics/avila/bench"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "avila-bench:", err)
		os.Exit(1)
	}
}

func run() error {
	fs := flag.NewFlagSet("avila-bench", flag.ExitOnError)
	var opts bench.Options
	var out, logLevel string
	quickDefault, _ := strconv.ParseBool(env("QUICK", "false"))
	fs.BoolVar(&opts.Quick, "quick", quickDefault,
		"short phases and only the 1M-event query set, under two minutes (env AVILA_QUICK)")
	fs.StringVar(&out, "out", env("OUT", "bench/results.json"),
		"where results.json goes; empty: not written (env AVILA_OUT)")
	fs.StringVar(&opts.DatabaseURL, "database-url", env("DATABASE_URL", os.Getenv("DATABASE_URL")),
		"existing PostgreSQL server to create the run's database on (dropped at the end); empty: a managed PostgreSQL from the system's initdb/pg_ctl (env AVILA_DATABASE_URL, then DATABASE_URL)")
	fs.StringVar(&opts.WorkDir, "work-dir", env("WORK_DIR", ""),
		"directory for binaries, data and logs; empty: a temporary directory removed at the end unless --keep (env AVILA_WORK_DIR)")
	keepDefault, _ := strconv.ParseBool(env("KEEP", "false"))
	fs.BoolVar(&opts.Keep, "keep", keepDefault, "keep the temporary work directory, e.g. to read the binaries' logs (env AVILA_KEEP)")
	fs.StringVar(&opts.RepoDir, "repo", env("REPO", "."), "module root the binaries are built from (env AVILA_REPO)")
	fs.StringVar(&opts.Generator, "load-generator", env("LOAD_GENERATOR", "auto"),
		"HTTP load generator for single-hit and batched ingest: wrk, go, or auto (wrk when installed) (env AVILA_LOAD_GENERATOR)")
	fs.StringVar(&logLevel, "log-level", env("LOG_LEVEL", "info"), "progress log level on stderr: debug, info, warn or error (env AVILA_LOG_LEVEL)")
	_ = fs.Parse(os.Args[1:]) // ExitOnError: Parse exits on a bad flag
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	var lv slog.Level
	if err := lv.UnmarshalText([]byte(logLevel)); err != nil {
		return fmt.Errorf("--log-level %q: want debug, info, warn or error", logLevel)
	}
	opts.Logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: lv}))
	opts.Table = os.Stdout
	var js bytes.Buffer
	if out != "" {
		opts.JSON = &js
	}

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	_, runErr := bench.Run(ctx, opts)
	if out != "" && js.Len() > 0 {
		if err := os.WriteFile(out, js.Bytes(), 0o644); err != nil {
			return fmt.Errorf("write %s: %w", out, err)
		}
		fmt.Fprintln(os.Stderr, "avila-bench: wrote", out)
	}
	return runErr
}

// env returns AVILA_<name> when set, else def.
func env(name, def string) string {
	if v, ok := os.LookupEnv("AVILA_" + name); ok {
		return v
	}
	return def
}
