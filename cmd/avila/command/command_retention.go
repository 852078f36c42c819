package command

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	shared "github.com/avila-analytics/avila/internal/cli"
	"github.com/avila-analytics/avila/storage/postgres"
)

func retentionRunCommand() command {
	return command{
		name: "retention run",
		summary: "Remove what is older than each site's retention now (the aggregators do it every hour): raw events\n" +
			"(rows and packs) past --retain-events, sessions and rollups past --retain-aggregates (see 'avila site\n" +
			"update'), then drop the day partitions no site keeps. Days whose rollups go are read from the events that\n" +
			"remain, so reports equal reports over the data that remains. With --dry-run it only shows what would go.",
		flags: func(c *cli, fs *shared.FlagSet) func(context.Context) error {
			open := c.storeFlags(fs, "PostgreSQL URL", "warn")
			dry := fs.Bool("dry-run", false, "show what would go; change nothing")
			return func(ctx context.Context) error {
				store, _, err := open(ctx)
				if err != nil {
					return err
				}
				defer store.Close()
				run, err := store.RunRetention(ctx, time.Now(), *dry, c.actor())
				if err != nil {
					return explain(err)
				}
				verb := "removed"
				if run.DryRun {
					verb = "would remove"
				}
				fmt.Fprintf(c.stdout, "retention %s:\n", verb)
				tw := tabwriter.NewWriter(c.stdout, 0, 0, 2, ' ', 0)
				fmt.Fprintln(tw, "PROPERTY\tEVENTS BEFORE\tAGGREGATES BEFORE\tEVENTS\tEVENT PACKS\tSESSIONS\tROLLUP ROWS\tSESSION ROLLUPS\tQUARANTINED ROWS")
				for _, s := range run.Sites {
					fmt.Fprintf(tw, "%d\t%s\t%s\t%d\t%d\t%d\t%d\t%d\t%d\n", s.Site, dayOrForever(s.EventsBefore), dayOrForever(s.AggregatesBefore),
						s.Events, s.EventPacks, s.Sessions, s.RollupRows, s.SessionRollups, s.Quarantined)
				}
				if err := tw.Flush(); err != nil {
					return err
				}
				parts := "none"
				if len(run.Partitions) > 0 {
					parts = strings.Join(run.Partitions, ", ")
				}
				fmt.Fprintf(c.stdout, "partitions %s: %s\n", strings.TrimPrefix(verb, "would "), parts)
				return nil
			}
		},
	}
}

func dayOrForever(t time.Time) string {
	if t.IsZero() {
		return "(kept)"
	}
	return t.Format(time.DateOnly)
}

// parseRetention reads "400d" (days) or "26m" (months) into a count of
// unit; "0", "0d", "forever" keep for ever.
func parseRetention(flag, v string, unit byte) (int, error) {
	v = strings.TrimSpace(strings.ToLower(v))
	if v == "forever" || v == "0" {
		return 0, nil
	}
	if len(v) < 2 || v[len(v)-1] != unit {
		return 0, usagef("--%s %q: want a number followed by %q (e.g. 400d, 26m), or forever", flag, v, string(unit))
	}
	n, err := strconv.Atoi(v[:len(v)-1])
	if err != nil || n < 0 {
		return 0, usagef("--%s %q: want a number followed by %q (e.g. 400d, 26m), or forever", flag, v, string(unit))
	}
	return n, nil
}

// retentionText shows a site's retention.
func retentionText(r postgres.Retention) (events, aggregates string) {
	events, aggregates = "forever", "forever"
	if r.EventsDays > 0 {
		events = strconv.Itoa(r.EventsDays) + "d"
	}
	if r.AggregatesMonths > 0 {
		aggregates = strconv.Itoa(r.AggregatesMonths) + "m"
	}
	return events, aggregates
}
