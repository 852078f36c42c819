package command

import (
	"context"
	"fmt"
	"text/tabwriter"
	"time"

	"github.com/avila-analytics/avila/aggregator/ingest"
	"github.com/avila-analytics/avila/aggregator/write"
	shared "github.com/avila-analytics/avila/internal/cli"
)

func deadLettersReplayCommand() command {
	return command{
		name: "dead-letters replay",
		summary: "Judge dead letters again with the current rules, repair what the rules repair, and store each one that\n" +
			"passes exactly once (a rerun stores nothing twice), then delete it. Ones that still break a rule stay.",
		flags: func(c *cli, fs *shared.FlagSet) func(context.Context) error {
			open := c.storeFlags(fs, "PostgreSQL URL", "warn")
			sel := deadLetterFlags(fs, 0)
			dryRun := fs.Bool("dry-run", false, "say what would be stored, store and delete nothing")
			return func(ctx context.Context) error {
				if err := sel.parse(time.Now()); err != nil {
					return err
				}
				store, log, err := open(ctx)
				if err != nil {
					return err
				}
				defer store.Close()
				w := write.New(write.Config{Logger: log}, store)
				res, err := ingest.Replay(ctx, store, w, ingest.ReplayOptions{Filter: sel.filter, Site: sel.site, DryRun: *dryRun})
				if err != nil {
					return explain(err)
				}
				if sel.asJSON {
					if res == nil {
						res = []ingest.ReplayResult{}
					}
					return c.printJSON(res)
				}
				tw := tabwriter.NewWriter(c.stdout, 0, 0, 2, ' ', 0)
				fmt.Fprintln(tw, "ID\tAGENT\tSEQ\tPROPERTY\tEVENT\tOUTCOME\tREPAIRS\tREASON")
				counts := map[string]int{}
				for _, r := range res {
					counts[r.Outcome]++
					fmt.Fprintf(tw, "%d\t%s\t%d\t%d\t%s\t%s\t%s\t%s\n", r.ID, r.AgentID, r.Seq, r.Site, dash(printable(r.Name)),
						r.Outcome, dash(r.Repairs), dash(r.Reason))
				}
				if err := tw.Flush(); err != nil {
					return err
				}
				fmt.Fprintf(c.stderr, "avila dead-letters replay: %d stored, %d already stored, %d would be stored, %d still refused\n",
					counts[ingest.ReplayStored], counts[ingest.ReplayAlreadyStored], counts[ingest.ReplayWouldStore], counts[ingest.ReplayRefused])
				return nil
			}
		},
	}
}
