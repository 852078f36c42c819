package command

import (
	"context"
	"fmt"
	"math"
	"text/tabwriter"
	"time"

	shared "github.com/avila-analytics/avila/internal/cli"
	"github.com/avila-analytics/avila/protocol/rules"
	"github.com/avila-analytics/avila/storage/postgres"
)

func currencySetRateCommand() command {
	return command{
		name: "currency set-rate",
		summary: "Set the exchange rate from one currency into a reporting currency: an amount in --from times\n" +
			"--rate is the amount in --to. Events of sites reporting in --to sent in --from and derived from\n" +
			"then on are converted with it; without a rate amounts are stored as sent. --rate 0 deletes it.",
		flags: func(c *cli, fs *shared.FlagSet) func(context.Context) error {
			open := c.storeFlags(fs, "PostgreSQL URL", "warn")
			from := fs.String("from", "", "the currency events are sent in, ISO 4217 (e.g. EUR); required")
			to := fs.String("to", "", "the reporting currency of the sites it converts for, ISO 4217 (e.g. USD); required")
			rate := fs.Float64("rate", -1, "how many units of --to one unit of --from is worth (> 0), or 0 to delete the rate; required")
			return func(ctx context.Context) error {
				for _, f := range []struct{ name, v string }{{"--from", *from}, {"--to", *to}} {
					if f.v == "" {
						return usagef("%s is required: a three-letter ISO 4217 code", f.name)
					}
					if v := rules.Currency(f.name, f.v); v != nil {
						return usagef("%v", v)
					}
				}
				if *rate < 0 || math.IsNaN(*rate) || math.IsInf(*rate, 0) {
					return usagef("--rate is required: a positive number (or 0 to delete the rate)")
				}
				cur, rep := rules.NormalizeCurrency(*from), rules.NormalizeCurrency(*to)
				if cur == rep {
					return usagef("--from and --to are both %s: amounts in the reporting currency are never converted", cur)
				}
				store, _, err := open(ctx)
				if err != nil {
					return err
				}
				defer store.Close()
				if *rate == 0 {
					found, err := store.DeleteCurrencyRate(ctx, cur, rep)
					if err != nil {
						return explain(err)
					}
					if !found {
						return fmt.Errorf("no rate from %s to %s to delete (see 'avila currency list')", cur, rep)
					}
					fmt.Fprintf(c.stdout, "deleted\t%s→%s\n", cur, rep)
					return nil
				}
				if err := store.SetCurrencyRate(ctx, postgres.CurrencyRate{Currency: cur, Reporting: rep, Rate: *rate}); err != nil {
					return explain(err)
				}
				fmt.Fprintf(c.stdout, "rate\t%s→%s\t%g\n", cur, rep, *rate)
				return nil
			}
		},
	}
}

func currencyListCommand() command {
	return command{
		name:    "currency list",
		summary: "List the exchange rates 'avila currency set-rate' keeps.",
		flags: func(c *cli, fs *shared.FlagSet) func(context.Context) error {
			open := c.storeFlags(fs, "PostgreSQL URL", "warn")
			return func(ctx context.Context) error {
				store, _, err := open(ctx)
				if err != nil {
					return err
				}
				defer store.Close()
				rates, err := store.CurrencyRates(ctx)
				if err != nil {
					return explain(err)
				}
				tw := tabwriter.NewWriter(c.stdout, 0, 0, 2, ' ', 0)
				fmt.Fprintln(tw, "from\tto\trate\tupdated")
				for _, r := range rates {
					fmt.Fprintf(tw, "%s\t%s\t%g\t%s\n", r.Currency, r.Reporting, r.Rate, r.UpdatedAt.UTC().Format(time.RFC3339))
				}
				return tw.Flush()
			}
		},
	}
}
