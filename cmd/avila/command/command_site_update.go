package command

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"strings"
	"text/tabwriter"

	shared "github.com/avila-analytics/avila/internal/cli"
	"github.com/avila-analytics/avila/protocol/rules"
	"github.com/avila-analytics/avila/storage/postgres"
)

// sitePolicyFlags are the per-site edge policy flags of site create and
// site update.
type sitePolicyFlags struct {
	dnt  *string
	keep *[]string
}

func policyFlags(c *cli, fs *shared.FlagSet) sitePolicyFlags {
	dnt := fs.String("dnt", "",
		"what a browser hit with DNT: 1 or Sec-GPC: 1 becomes on this site: drop, cookieless (recorded without\n"+
			"cookie or user id) or ignore; empty leaves it to each agent's --dnt")
	var keep listFlag
	_ = keep.Set("")
	fs.Var(&keep, "keep-param", "a page or referrer query parameter to keep beyond utm_* and gclid, e.g. page;\n"+
		"repeat or separate with commas for several. Everything else is dropped at the agent, as it may carry\n"+
		"personal data")
	return sitePolicyFlags{dnt: dnt, keep: (*[]string)(&keep)}
}

func siteUpdateCommand() command {
	return command{
		name: "site update",
		summary: "Change a site's edge policy (--dnt, --keep-param), key events (--key-events), reporting\n" +
			"currency (--currency) or Data API quotas (--quota-…); flags not given keep their value. Agents\n" +
			"apply the policy with their next config fetch, within seconds; key events and currency apply to\n" +
			"events derived from then on; aggregators apply quotas within 10 seconds.",
		flags: func(c *cli, fs *shared.FlagSet) func(context.Context) error {
			open := c.storeFlags(fs, "PostgreSQL URL", "warn")
			property := fs.String("property", "", "property id of the site to change (see 'avila site list'); required")
			policy := policyFlags(c, fs)
			quota := quotaFlags(fs)
			var keyEvents listFlag
			_ = keyEvents.Set("")
			fs.Var(&keyEvents, "key-events", "the event names counted as key events (GA4's conversions), e.g. purchase,sign_up;\n"+
				"repeat or separate with commas. Replaces the list; purchase is the default")
			currency := fs.String("currency", "", "the ISO 4217 code reports give amounts in, e.g. EUR; amounts sent in another\n"+
				"currency are converted with 'avila currency set-rate' rates, or stored as sent without one")
			return func(ctx context.Context) error {
				if *property == "" {
					return usagef("--property is required (see 'avila site list' for the property ids)")
				}
				ids, err := propertyIDs([]string{*property})
				if err != nil {
					return err
				}
				given := map[string]bool{}
				fs.Visit(func(f *flag.Flag) { given[f.Name] = true })
				// given holds the flags set by the command line or the environment.
				if !given["dnt"] && !given["keep-param"] && !given["key-events"] && !given["currency"] && !quotaGiven(given) {
					return usagef("nothing to change: give --dnt, --keep-param, --key-events, --currency or a --quota-… flag")
				}
				if err := applyQuota(&postgres.SiteQuota{}, quota, given); err != nil {
					return err // checked before anything is written
				}
				for _, name := range keyEvents {
					if v := rules.EventName("--key-events", name); v != nil {
						return usagef("%v", v)
					}
				}
				if given["currency"] {
					if v := rules.Currency("--currency", *currency); v != nil {
						return usagef("%v", v)
					}
				}
				store, _, err := open(ctx)
				if err != nil {
					return err
				}
				defer store.Close()
				site, err := store.Site(ctx, ids[0])
				if err != nil {
					if errors.Is(err, postgres.ErrNotFound) {
						return fmt.Errorf("%w (see 'avila site list' for the property ids)", err)
					}
					return explain(err)
				}
				if given["key-events"] {
					if _, err := store.SetKeyEvents(ctx, site.ID, keyEvents); err != nil {
						return explain(err)
					}
				}
				if given["currency"] {
					if site, err = store.SetCurrency(ctx, site.ID, rules.NormalizeCurrency(*currency)); err != nil {
						return explain(err)
					}
				}
				keys, err := store.KeyEvents(ctx, site.ID)
				if err != nil {
					return explain(err)
				}
				p := site.Policy
				if given["dnt"] {
					p.DNT = *policy.dnt
				}
				if given["keep-param"] {
					p.KeepParams = *policy.keep
				}
				if given["dnt"] || given["keep-param"] {
					if site, err = store.SetSitePolicy(ctx, site.ID, p); err != nil {
						if errors.Is(err, postgres.ErrBadPolicy) {
							return usagef("%v", err)
						}
						return explain(err)
					}
				}
				q, err := store.SiteQuota(ctx, site.ID)
				if err != nil {
					return explain(err)
				}
				if quotaGiven(given) {
					if err := applyQuota(&q, quota, given); err != nil {
						return err
					}
					if err := store.SetSiteQuota(ctx, site.ID, q); err != nil {
						return explain(err)
					}
				}
				tw := tabwriter.NewWriter(c.stdout, 0, 0, 2, ' ', 0)
				fmt.Fprintf(tw, "property\t%d\n", site.ID)
				fmt.Fprintf(tw, "dnt\t%s\n", orDash(site.Policy.DNT))
				fmt.Fprintf(tw, "keep_params\t%s\n", orDash(strings.Join(site.Policy.KeepParams, ",")))
				fmt.Fprintf(tw, "key_events\t%s\n", orDash(strings.Join(keys, ",")))
				fmt.Fprintf(tw, "currency\t%s\n", site.CurrencyCode)
				printQuota(tw, q)
				return tw.Flush()
			}
		},
	}
}

// orDash prints an empty setting as "-": the default applies.
func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
