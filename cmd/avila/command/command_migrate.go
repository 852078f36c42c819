package command

import (
	"context"

	shared "github.com/avila-analytics/avila/internal/cli"
)

func migrateCommand() command {
	return command{
		name: "migrate",
		summary: "Apply the database migrations the database lacks.\n\n" +
			"The aggregator and the demo migrate at start too; run this to prepare a database ahead of them.",
		flags: func(c *cli, fs *shared.FlagSet) func(context.Context) error {
			open := c.storeFlags(fs, "PostgreSQL URL to migrate", "info")
			return func(ctx context.Context) error {
				store, log, err := open(ctx)
				if err != nil {
					return err
				}
				defer store.Close()
				if err := store.MigrateAs(ctx, c.actor()); err != nil {
					return err
				}
				log.Info("database schema is current")
				return nil
			}
		},
	}
}
