package command

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"time"

	shared "github.com/avila-analytics/avila/internal/cli"
	"github.com/avila-analytics/avila/internal/demo"
)

// demoShutdownTimeout bounds stopping the demo's parts after SIGINT/SIGTERM.
const demoShutdownTimeout = 30 * time.Second

func demoCommand() command {
	return command{
		name: "demo",
		summary: "Run a whole single-node Avila: PostgreSQL (managed, unless DATABASE_URL is set), one\n" +
			"aggregator, one agent, a demo site and an API key; optionally synthetic traffic.\n\n" +
			"When ready it prints one JSON line on stdout:\n" +
			`  {"agent":URL,"api":URL,"dashboard":URL,"property":"ID","measurement_id":"G-…","api_secret":"…","api_key":"…"}` + "\n" +
			"and runs until SIGINT or SIGTERM. Logs go to stderr.",
		flags: func(c *cli, fs *shared.FlagSet) func(context.Context) error {
			var cfg demo.Config
			fs.StringVar(&cfg.DataDir, "data-dir", "./data/demo",
				"directory the demo keeps across runs: postgres/ (the managed cluster), aggregator/ (TLS) and agent/ (queue)")
			dbURL := c.databaseURLFlag(fs, "an existing PostgreSQL to use instead of the managed one in <data-dir>/postgres")
			fs.StringVar(&cfg.AgentListen, "agent-listen", "127.0.0.1:8090",
				"TCP address of the agent's collector (/g/collect): point gtag.js' transport_url here; port 0 picks a free one")
			fs.StringVar(&cfg.APIListen, "api-listen", "127.0.0.1:8080",
				"TCP address of the aggregator's API: the GA4 Data API under /v1beta/, /healthz, /readyz")
			fs.StringVar(&cfg.QUICListen, "quic-listen", "127.0.0.1:4433",
				"UDP address the aggregator receives the agent's batches on")
			traffic := fs.String("traffic", "0",
				fmt.Sprintf("synthetic visitors per second sent through the agent, up to %d; 0 sends none", demo.MaxTraffic))
			logger := c.logFlags(fs, "info")
			return func(ctx context.Context) error {
				rate, err := strconv.ParseFloat(*traffic, 64)
				if err != nil || rate < 0 || rate > demo.MaxTraffic {
					return usagef("--traffic %q: want visitors per second between 0 and %d", *traffic, demo.MaxTraffic)
				}
				cfg.Traffic, cfg.DatabaseURL = rate, *dbURL
				log, err := logger()
				if err != nil {
					return err
				}
				d, err := demo.Start(ctx, cfg, log)
				if err != nil {
					return err
				}
				// One line, with URLs as a person copies them ("&", not "\u0026").
				enc := json.NewEncoder(c.stdout)
				enc.SetEscapeHTML(false)
				if err := enc.Encode(d.Ready); err != nil {
					return fmt.Errorf("demo: print the ready line: %w", err)
				}

				var runErr error
				select {
				case <-ctx.Done():
					log.Info("stopping the demo")
				case runErr = <-d.Err():
					log.Error("the demo failed; stopping it", "err", runErr)
				}
				sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), demoShutdownTimeout)
				defer cancel()
				if err := d.Shutdown(sctx); err != nil {
					if runErr == nil {
						return err
					}
					log.Warn("unclean shutdown", "err", err)
				}
				return runErr
			}
		},
	}
}
