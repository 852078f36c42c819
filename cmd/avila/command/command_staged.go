package command

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"text/tabwriter"

	shared "github.com/avila-analytics/avila/internal/cli"
	"github.com/avila-analytics/avila/storage/postgres"
)

func stagedListCommand() command {
	return command{
		name: "staged list",
		summary: "List the staged rows (a batch's events of one property) the aggregators quarantined because no derivation\n" +
			"could take them, with why: their events are in no report until 'avila staged requeue' puts them back.",
		flags: func(c *cli, fs *shared.FlagSet) func(context.Context) error {
			open := c.storeFlags(fs, "PostgreSQL URL", "warn")
			property := fs.String("property", "", "only rows of this property id")
			asJSON := fs.Bool("json", false, "print JSON instead of a table")
			return func(ctx context.Context) error {
				site, err := optionalProperty(*property)
				if err != nil {
					return err
				}
				store, _, err := open(ctx)
				if err != nil {
					return err
				}
				defer store.Close()
				rows, err := store.QuarantinedRows(ctx, site)
				if err != nil {
					return explain(err)
				}
				if *asJSON {
					if rows == nil {
						rows = []postgres.QuarantinedRow{}
					}
					return c.printJSON(rows)
				}
				tw := tabwriter.NewWriter(c.stdout, 0, 0, 2, ' ', 0)
				fmt.Fprintln(tw, "ID\tPROPERTY\tEVENTS\tBYTES\tSTAGED\tQUARANTINED\tREASON")
				events := 0
				for _, r := range rows {
					events += r.Events
					fmt.Fprintf(tw, "%d\t%d\t%d\t%d\t%s\t%s\t%s\n", r.ID, r.Site, r.Events, r.Bytes,
						r.StagedAt.UTC().Format(timeLayout), r.QuarantinedAt.UTC().Format(timeLayout), printable(r.Reason))
				}
				if err := tw.Flush(); err != nil {
					return err
				}
				fmt.Fprintf(c.stderr, "avila staged list: %d rows quarantined, %d events in no report\n", len(rows), events)
				return nil
			}
		},
	}
}

func stagedRequeueCommand() command {
	return command{
		name: "staged requeue",
		summary: "Put quarantined staged rows back as they were staged, in their place, for the next derivation of their\n" +
			"property to take (e.g. after upgrading every aggregator). A row that still cannot be derived is quarantined again.",
		flags: func(c *cli, fs *shared.FlagSet) func(context.Context) error {
			open := c.storeFlags(fs, "PostgreSQL URL", "warn")
			property := fs.String("property", "", "only rows of this property id")
			ids := fs.String("id", "", "only these rows: comma-separated ids, as listed")
			return func(ctx context.Context) error {
				site, err := optionalProperty(*property)
				if err != nil {
					return err
				}
				list, err := rowIDs(*ids)
				if err != nil {
					return err
				}
				store, _, err := open(ctx)
				if err != nil {
					return err
				}
				defer store.Close()
				n, events, err := store.Requeue(ctx, site, list)
				if err != nil {
					return explain(err)
				}
				if n < len(list) {
					fmt.Fprintf(c.stderr, "avila staged requeue: %d of the %d rows named were quarantined (of that property)\n", n, len(list))
				}
				fmt.Fprintf(c.stdout, "requeued %d rows (%d events); the aggregators derive them within seconds\n", n, events)
				return nil
			}
		},
	}
}

// rowIDs reads --id: comma-separated positive ids; "" is none.
func rowIDs(v string) ([]int64, error) {
	if v == "" {
		return nil, nil
	}
	var out []int64
	for f := range strings.SplitSeq(v, ",") {
		id, err := strconv.ParseInt(strings.TrimSpace(f), 10, 64)
		if err != nil || id <= 0 {
			return nil, usagef("--id %q: want comma-separated row ids, as 'avila staged list' shows them", v)
		}
		out = append(out, id)
	}
	return out, nil
}
