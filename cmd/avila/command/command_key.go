package command

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"text/tabwriter"

	shared "github.com/avila-analytics/avila/internal/cli"
	"github.com/avila-analytics/avila/storage/postgres"
)

func keyCreateCommand() command {
	return command{
		name: "key create",
		summary: "Create an API key for the Data API and print it. It is shown this once: only its hash is stored.\n" +
			"Send it as 'Authorization: Bearer <key>'.",
		flags: func(c *cli, fs *shared.FlagSet) func(context.Context) error {
			open := c.storeFlags(fs, "PostgreSQL URL", "warn")
			props := propertiesFlag(c, fs, "property id the key may read")
			name := fs.String("name", "", "a label to tell keys apart in 'avila key list'")
			scope := fs.String("scope", "read", "read (reports of its properties) or admin (also data subject requests under /v1/gdpr/)")
			return func(ctx context.Context) error {
				ids, err := propertyIDs(*props)
				if err != nil {
					return err
				}
				if !postgres.Scope(*scope).Valid() {
					return usagef("--scope %q: want read or admin", *scope)
				}
				store, _, err := open(ctx)
				if err != nil {
					return err
				}
				defer store.Close()
				key, err := store.CreateScopedAPIKey(ctx, *name, ids, postgres.Scope(*scope))
				if errors.Is(err, postgres.ErrNotFound) {
					return fmt.Errorf("%w (see 'avila site list' for the property ids)", err)
				}
				if err != nil {
					return explain(err)
				}
				fmt.Fprintln(c.stdout, key)
				fmt.Fprintln(c.stderr, "avila key create: store this key now; it cannot be shown again")
				return c.audit(ctx, store, "key.create", 0, map[string]any{"key": key[:postgres.KeyPrefixLen], "name": *name,
					"properties": ids, "scope": *scope})
			}
		},
	}
}

// propertiesFlag defines the --property flag (AVILA_PROPERTY) of a verb
// that takes one or more property ids; what says what they are for.
func propertiesFlag(c *cli, fs *shared.FlagSet, what string) *listFlag {
	var props listFlag
	_ = props.Set("")
	fs.Var(&props, "property", what+"; repeat or separate with commas for several; required")
	return &props
}

// propertyIDs parses --property values: positive integers.
func propertyIDs(props []string) ([]uint32, error) {
	if len(props) == 0 {
		return nil, usagef("--property is required (see 'avila site list' for the property ids)")
	}
	ids := make([]uint32, 0, len(props))
	for _, p := range props {
		// Property ids are PostgreSQL integers: 1..2^31-1.
		id, err := strconv.ParseUint(p, 10, 31)
		if err != nil || id == 0 {
			return nil, usagef("--property %q: want a property id, a positive integer", p)
		}
		ids = append(ids, uint32(id))
	}
	return ids, nil
}

func keyListCommand() command {
	return command{
		name:    "key list",
		summary: "List the API keys (their prefixes, never the keys), revoked ones included.",
		flags: func(c *cli, fs *shared.FlagSet) func(context.Context) error {
			open := c.storeFlags(fs, "PostgreSQL URL", "warn")
			return func(ctx context.Context) error {
				store, _, err := open(ctx)
				if err != nil {
					return err
				}
				defer store.Close()
				keys, err := store.APIKeys(ctx)
				if err != nil {
					return explain(err)
				}
				tw := tabwriter.NewWriter(c.stdout, 0, 0, 2, ' ', 0)
				fmt.Fprintln(tw, "ID\tNAME\tPROPERTIES\tSCOPE\tCREATED\tREVOKED")
				for _, k := range keys {
					props := make([]string, len(k.SiteIDs))
					for i, id := range k.SiteIDs {
						props[i] = strconv.FormatUint(uint64(id), 10)
					}
					revoked := "-"
					if k.RevokedAt != nil {
						revoked = k.RevokedAt.UTC().Format(timeLayout)
					}
					fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", k.Prefix, dash(k.Name), strings.Join(props, ","), k.Scope,
						k.CreatedAt.UTC().Format(timeLayout), revoked)
				}
				return tw.Flush()
			}
		},
	}
}

func keyRevokeCommand() command {
	return command{
		name:    "key revoke",
		summary: "Revoke an API key: its requests are refused from now on.",
		flags: func(c *cli, fs *shared.FlagSet) func(context.Context) error {
			open := c.storeFlags(fs, "PostgreSQL URL", "warn")
			id := fs.String("id", "", "the key's id as 'avila key list' shows it (avk_ and 8 characters), or the whole key; required")
			return func(ctx context.Context) error {
				if *id == "" {
					return usagef("--id is required (see 'avila key list')")
				}
				store, _, err := open(ctx)
				if err != nil {
					return err
				}
				defer store.Close()
				if err := store.RevokeAPIKey(ctx, *id); err != nil {
					if errors.Is(err, postgres.ErrNotFound) {
						return fmt.Errorf("%w (no live key with that id; see 'avila key list')", err)
					}
					return explain(err)
				}
				fmt.Fprintf(c.stdout, "revoked %s\n", (*id)[:postgres.KeyPrefixLen])
				return c.audit(ctx, store, "key.revoke", 0, map[string]any{"key": (*id)[:postgres.KeyPrefixLen]})
			}
		},
	}
}

// timeLayout is how listings show times: UTC to the second.
const timeLayout = "2006-01-02 15:04:05Z"

// dash shows an empty cell as "-" so columns stay readable.
func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// optionalProperty reads a --property value; "" is every property (0).
func optionalProperty(v string) (uint32, error) {
	if v == "" {
		return 0, nil
	}
	ids, err := propertyIDs([]string{v})
	if err != nil {
		return 0, err
	}
	return ids[0], nil
}
