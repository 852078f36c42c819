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
	dnt      *string
	keep     *[]string
	identity *string
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
	identity := fs.String("identity", "cookie",
		"how hits without a consent signal are identified on this site: cookie (the client id of gtag.js'\n"+
			"_ga cookie, the Measurement Protocol's client_id and user_id, keyed at the agent with the site's\n"+
			"identity secret: one device is one user across days, networks and transports) or cookieless (a\n"+
			"daily id from the anonymized address and user agent). Consent mode decides wherever it is sent:\n"+
			"analytics storage granted identifies, denied is cookieless. See README, Identity and consent")
	return sitePolicyFlags{dnt: dnt, keep: (*[]string)(&keep), identity: identity}
}

func siteUpdateCommand() command {
	return command{
		name: "site update",
		summary: "Change a site's edge policy (--dnt, --keep-param, --identity), key events (--key-events),\n" +
			"reporting currency (--currency), retention (--retain-events, --retain-aggregates) or Data API quotas\n" +
			"(--quota-…); flags not given keep their value. Agents apply the policy with their next config fetch,\n" +
			"within seconds; key events and currency apply to events derived from then on; the aggregators apply\n" +
			"retention within the hour (or now: avila retention run) and quotas within 10 seconds.",
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
			retainEvents := fs.String("retain-events", "", "how long raw events are kept, in days (e.g. 400d; forever keeps them);\n"+
				"default for new sites 400d. Reports over older days read the rollups while those are kept")
			retainAggregates := fs.String("retain-aggregates", "", "how long sessions and rollups are kept, in months (e.g. 26m; forever);\n"+
				"default for new sites 26m")
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
				if !given["dnt"] && !given["keep-param"] && !given["identity"] && !given["key-events"] && !given["currency"] &&
					!given["retain-events"] && !given["retain-aggregates"] && !quotaGiven(given) {
					return usagef("nothing to change: give --dnt, --keep-param, --identity, --key-events, --currency, --retain-events, --retain-aggregates or a --quota-… flag")
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
				var events, aggregates int
				if given["retain-events"] {
					if events, err = parseRetention("retain-events", *retainEvents, 'd'); err != nil {
						return err
					}
				}
				if given["retain-aggregates"] {
					if aggregates, err = parseRetention("retain-aggregates", *retainAggregates, 'm'); err != nil {
						return err
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
				if given["identity"] {
					p.Identity = *policy.identity
				}
				if given["dnt"] || given["keep-param"] || given["identity"] {
					if site, err = store.SetSitePolicy(ctx, site.ID, p); err != nil {
						if errors.Is(err, postgres.ErrBadPolicy) {
							return usagef("%v", err)
						}
						return explain(err)
					}
				}
				ret, err := store.SiteRetention(ctx, site.ID)
				if err != nil {
					return explain(err)
				}
				if given["retain-events"] {
					ret.EventsDays = events
				}
				if given["retain-aggregates"] {
					ret.AggregatesMonths = aggregates
				}
				if err := store.SetSiteRetention(ctx, site.ID, ret); err != nil {
					if errors.Is(err, postgres.ErrBadRetention) {
						return usagef("%v", err)
					}
					return explain(err)
				}
				retEvents, retAggregates := retentionText(ret)
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
				fmt.Fprintf(tw, "identity\t%s\n", site.Policy.Identity)
				fmt.Fprintf(tw, "key_events\t%s\n", orDash(strings.Join(keys, ",")))
				fmt.Fprintf(tw, "currency\t%s\n", site.CurrencyCode)
				fmt.Fprintf(tw, "retain_events\t%s\n", retEvents)
				fmt.Fprintf(tw, "retain_aggregates\t%s\n", retAggregates)
				printQuota(tw, q)
				if err := tw.Flush(); err != nil {
					return err
				}
				changed := map[string]any{}
				fs.Visit(func(f *flag.Flag) {
					switch f.Name {
					case "dnt", "keep-param", "identity", "key-events", "currency", "retain-events", "retain-aggregates":
						changed[f.Name] = f.Value.String()
					default:
						if strings.HasPrefix(f.Name, "quota-") {
							changed[f.Name] = f.Value.String()
						}
					}
				})
				return c.audit(ctx, store, "site.update", site.ID, changed)
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
