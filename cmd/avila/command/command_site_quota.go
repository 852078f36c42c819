package command

import (
	"fmt"
	"io"
	"strconv"

	shared "github.com/avila-analytics/avila/internal/cli"
	"github.com/avila-analytics/avila/query"
	"github.com/avila-analytics/avila/storage/postgres"
)

// siteQuotaFlag is one Data API quota limit 'site update' may set.
type siteQuotaFlag struct {
	name  string // flag name
	field func(q *postgres.SiteQuota) *int64
	def   func(l query.QuotaLimits) int64 // the aggregator's default (GA4's standard property)
}

// siteQuotaFlags are the quota flags, in the order they print. Their
// defaults are query.DefaultQuotaLimits (GA4's standard property); the
// help texts name them, and TestSiteQuotaFlags checks that they agree.
var siteQuotaFlags = []siteQuotaFlag{
	{"quota-tokens-per-day", func(q *postgres.SiteQuota) *int64 { return &q.TokensPerDay }, func(l query.QuotaLimits) int64 { return l.TokensPerDay }},
	{"quota-tokens-per-hour", func(q *postgres.SiteQuota) *int64 { return &q.TokensPerHour }, func(l query.QuotaLimits) int64 { return l.TokensPerHour }},
	{"quota-tokens-per-project-per-hour", func(q *postgres.SiteQuota) *int64 { return &q.TokensPerProjectPerHour }, func(l query.QuotaLimits) int64 { return l.TokensPerProjectPerHour }},
	{"quota-concurrent-requests", func(q *postgres.SiteQuota) *int64 { return &q.ConcurrentRequests }, func(l query.QuotaLimits) int64 { return l.ConcurrentRequests }},
	{"quota-server-errors-per-project-per-hour", func(q *postgres.SiteQuota) *int64 { return &q.ServerErrorsPerProjectPerHour }, func(l query.QuotaLimits) int64 { return l.ServerErrorsPerProjectPerHour }},
}

var quotaHelp = map[string]string{
	"quota-tokens-per-day": "Data API tokens the property may spend per UTC day (per category: core reports, realtime, funnels); " +
		"0 restores the default, 200000",
	"quota-tokens-per-hour": "Data API tokens the property may spend per UTC hour; 0 restores the default, 40000",
	"quota-tokens-per-project-per-hour": "Data API tokens one API key may spend on the property per UTC hour; " +
		"0 restores the default, 14000",
	"quota-concurrent-requests": "Data API requests of the property in flight at once on one aggregator; one more is answered " +
		"429 RESOURCE_EXHAUSTED at once. 0 restores the default, 10",
	"quota-server-errors-per-project-per-hour": "server errors (5xx) one API key may get on the property per UTC hour before " +
		"its requests are refused; 0 restores the default, 10",
}

// quotaFlags declares the quota flags on fs.
func quotaFlags(fs *shared.FlagSet) map[string]*int64 {
	out := map[string]*int64{}
	for _, f := range siteQuotaFlags {
		out[f.name] = fs.Int64(f.name, 0, quotaHelp[f.name])
	}
	return out
}

// applyQuota sets the given quota flags in q; a negative value is a usage
// error naming the flag.
func applyQuota(q *postgres.SiteQuota, vals map[string]*int64, given map[string]bool) error {
	for _, f := range siteQuotaFlags {
		if !given[f.name] {
			continue
		}
		if v := *vals[f.name]; v < 0 {
			return usagef("--%s %d: must be ≥ 0 (0 restores the default)", f.name, v)
		}
		*f.field(q) = *vals[f.name]
	}
	return nil
}

// quotaGiven reports whether any quota flag was given.
func quotaGiven(given map[string]bool) bool {
	for _, f := range siteQuotaFlags {
		if given[f.name] {
			return true
		}
	}
	return false
}

// printQuota writes one line per limit: its value, or "default (N)".
func printQuota(w io.Writer, q postgres.SiteQuota) {
	for _, f := range siteQuotaFlags {
		v := "default (" + strconv.FormatInt(f.def(query.DefaultQuotaLimits()), 10) + ")"
		if n := *f.field(&q); n > 0 {
			v = strconv.FormatInt(n, 10)
		}
		fmt.Fprintf(w, "%s\t%s\n", f.name[len("quota-"):], v)
	}
}
