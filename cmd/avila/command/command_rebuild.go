package command

import (
	"context"
	"errors"
	"fmt"
	"time"

	shared "github.com/avila-analytics/avila/internal/cli"
	"github.com/avila-analytics/avila/storage/postgres"
)

func rebuildCommand() command {
	return command{
		name: "rebuild",
		summary: "Recompute properties' sessions, their session_start and first_visit events, and rollups (daily and\n" +
			"hourly) from their stored events.\n\n" +
			"Needed for events that reached the database without an aggregator (bulk loads, imports), and after\n" +
			"upgrades that add derived data for days stored before them: sessions (schema version 7) and hourly\n" +
			"rollups (version 9); until then such days are read from raw events or lack sessions. Each property\n" +
			"is rebuilt in one transaction; new batches of that property wait for it, other properties do not.",
		flags: func(c *cli, fs *shared.FlagSet) func(context.Context) error {
			open := c.storeFlags(fs, "PostgreSQL URL", "info")
			props := propertiesFlag(c, fs, "property id to rebuild")
			only := fs.String("only", "", "rollups or sessions to rebuild only those; empty: both")
			return func(ctx context.Context) error {
				ids, err := propertyIDs(*props)
				if err != nil {
					return err
				}
				switch *only {
				case "", "rollups", "sessions":
				default:
					return usagef("--only %q: want rollups or sessions", *only)
				}
				store, log, err := open(ctx)
				if err != nil {
					return err
				}
				defer store.Close()
				sessions := store.RebuildSessions
				if *only == "" {
					// Both: the rollups step rebuilds the session rollups
					// from the rebuilt sessions, once.
					sessions = store.RebuildSessionsBeforeRollups
				}
				steps := []struct {
					name string
					run  func(context.Context, uint32) error
				}{{"sessions", sessions}, {"rollups", store.RebuildRollups}} // rollups count the derived events sessions adds
				for _, id := range ids {
					for _, s := range steps {
						if *only != "" && *only != s.name {
							continue
						}
						start := time.Now()
						log.Info("rebuilding", "property", id, "what", s.name)
						if err := s.run(ctx, id); err != nil {
							if errors.Is(err, postgres.ErrNotFound) {
								return fmt.Errorf("property %d: %w (see 'avila site list' for the property ids)", id, err)
							}
							return explain(err)
						}
						log.Info("rebuilt", "property", id, "what", s.name, "seconds", time.Since(start).Seconds())
						if err := c.audit(ctx, store, "rebuild", id, map[string]any{"what": s.name}); err != nil {
							return err
						}
					}
				}
				return nil
			}
		},
	}
}
