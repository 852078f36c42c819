package command

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"text/tabwriter"

	shared "github.com/avila-analytics/avila/internal/cli"
	"github.com/avila-analytics/avila/storage/postgres"
)

// listFlag is a flag that may be repeated and takes comma-separated values.
type listFlag []string

func (l *listFlag) String() string { return strings.Join(*l, ",") }

func (l *listFlag) Set(v string) error {
	for part := range strings.SplitSeq(v, ",") {
		if part = strings.TrimSpace(part); part != "" {
			*l = append(*l, part)
		}
	}
	return nil
}

func siteCreateCommand() command {
	return command{
		name: "site create",
		summary: "Create a site (a GA4 property) and print its property id, measurement id and\n" +
			"Measurement Protocol API secret.",
		flags: func(c *cli, fs *shared.FlagSet) func(context.Context) error {
			open := c.storeFlags(fs, "PostgreSQL URL", "warn")
			name := fs.String("name", "", "the site's display name; required")
			var domains listFlag
			_ = domains.Set("")
			fs.Var(&domains, "domain", "the site's own host name; repeat or separate with commas for several; required")
			tz := fs.String("timezone", "UTC", "IANA time zone that reports' days follow, e.g. Europe/Madrid")
			measurementID := fs.String("measurement-id", "",
				"GA4 measurement id senders use (G-…) when keeping an existing gtag.js setup; generated when empty")
			policy := policyFlags(c, fs)
			return func(ctx context.Context) error {
				if *name == "" {
					return usagef("--name is required")
				}
				if len(domains) == 0 {
					return usagef("--domain is required (the host name the site is served from, e.g. example.com)")
				}
				store, _, err := open(ctx)
				if err != nil {
					return err
				}
				defer store.Close()
				site, err := store.CreateSite(ctx, postgres.SiteSpec{
					Name: *name, MeasurementID: *measurementID, Domains: domains, TimeZone: *tz,
					Policy: postgres.SitePolicy{DNT: *policy.dnt, KeepParams: *policy.keep, Identity: *policy.identity}})
				if errors.Is(err, postgres.ErrBadPolicy) {
					return usagef("%v", err)
				}
				if err != nil {
					return explain(err)
				}
				tw := tabwriter.NewWriter(c.stdout, 0, 0, 2, ' ', 0)
				fmt.Fprintf(tw, "property\t%d\n", site.ID)
				fmt.Fprintf(tw, "measurement_id\t%s\n", site.MeasurementID)
				fmt.Fprintf(tw, "api_secret\t%s\n", site.APISecret)
				fmt.Fprintf(tw, "identity\t%s\n", site.Policy.Identity)
				if err := tw.Flush(); err != nil {
					return err
				}
				return c.audit(ctx, store, "site.create", site.ID, map[string]any{"name": site.Name, "measurement_id": site.MeasurementID,
					"domains": site.Domains, "time_zone": site.TimeZone, "dnt": site.Policy.DNT, "keep_params": site.Policy.KeepParams,
					"identity": site.Policy.Identity})
			}
		},
	}
}

func siteListCommand() command {
	return command{
		name: "site list",
		summary: "List the sites: property id, measurement id, name, domains, time zone, creation time,\n" +
			"DNT policy, extra kept query parameters (- for none: the agent's --dnt, utm_* and gclid only),\n" +
			"identity policy and when its identity secret was last rotated (- for never).",
		flags: func(c *cli, fs *shared.FlagSet) func(context.Context) error {
			open := c.storeFlags(fs, "PostgreSQL URL", "warn")
			return func(ctx context.Context) error {
				store, _, err := open(ctx)
				if err != nil {
					return err
				}
				defer store.Close()
				sites, err := store.Sites(ctx)
				if err != nil {
					return explain(err)
				}
				tw := tabwriter.NewWriter(c.stdout, 0, 0, 2, ' ', 0)
				fmt.Fprintln(tw, "PROPERTY\tMEASUREMENT_ID\tNAME\tDOMAINS\tTIMEZONE\tCREATED\tDNT\tKEEP_PARAMS\tIDENTITY\tROTATED")
				for _, s := range sites {
					rotated := "-"
					if !s.IdentityRotated.IsZero() {
						rotated = s.IdentityRotated.UTC().Format(timeLayout)
					}
					fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", s.ID, s.MeasurementID, s.Name,
						strings.Join(s.Domains, ","), s.TimeZone, s.CreatedAt.UTC().Format(timeLayout),
						orDash(s.Policy.DNT), orDash(strings.Join(s.Policy.KeepParams, ",")), s.Policy.Identity, rotated)
				}
				return tw.Flush()
			}
		},
	}
}
