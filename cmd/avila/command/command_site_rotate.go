package command

import (
	"context"
	"errors"
	"fmt"
	"text/tabwriter"

	shared "github.com/avila-analytics/avila/internal/cli"
	"github.com/avila-analytics/avila/storage/postgres"
)

func siteRotateIdentityCommand() command {
	return command{
		name: "site rotate-identity-secret",
		summary: "Replace a site's identity secret, the key under which agents hash client ids and user_ids.\n" +
			"Agents use the new one from their next config fetch, within seconds. From then on every returning\n" +
			"device and signed-in user counts as a new user (new users, first_visit and user counts jump once),\n" +
			"and the keys stored before can no longer be computed from a client id or user_id, so a data\n" +
			"subject's request finds only what was stored since. Events already stored are not changed.",
		flags: func(c *cli, fs *shared.FlagSet) func(context.Context) error {
			open := c.storeFlags(fs, "PostgreSQL URL", "warn")
			property := fs.String("property", "", "property id of the site (see 'avila site list'); required")
			return func(ctx context.Context) error {
				if *property == "" {
					return usagef("--property is required (see 'avila site list' for the property ids)")
				}
				ids, err := propertyIDs([]string{*property})
				if err != nil {
					return err
				}
				store, _, err := open(ctx)
				if err != nil {
					return err
				}
				defer store.Close()
				site, err := store.RotateIdentitySecret(ctx, ids[0])
				if errors.Is(err, postgres.ErrNotFound) {
					return fmt.Errorf("%w (see 'avila site list' for the property ids)", err)
				}
				if err != nil {
					return explain(err)
				}
				tw := tabwriter.NewWriter(c.stdout, 0, 0, 2, ' ', 0)
				fmt.Fprintf(tw, "property\t%d\n", site.ID)
				fmt.Fprintf(tw, "identity\t%s\n", site.Policy.Identity)
				fmt.Fprintf(tw, "rotated\t%s\n", site.IdentityRotated.UTC().Format(timeLayout))
				return tw.Flush()
			}
		},
	}
}
