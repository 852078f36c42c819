package query

import (
	"context"
	"github.com/avila-analytics/avila/query/plan"
	"net/http"
	"time"
)

// exhausted is GA4's answer to a request over a quota: 429
// RESOURCE_EXHAUSTED (gRPC code 8).
func exhausted(format string, args ...any) *plan.Error {
	return plan.NewError(http.StatusTooManyRequests, "RESOURCE_EXHAUSTED", format, args...)
}

// admit checks the property's quotas of cat before a request runs and
// counts the request in flight until release is called (see quota.go). A
// refusal is RESOURCE_EXHAUSTED naming the quota; the request is then not
// counted and costs nothing.
func (q *quotas) admit(ctx context.Context, cat string, site uint32, key string) (release func(), err error) {
	l := q.limitsOf(ctx, site)
	k := quotaKey{cat: cat, site: site}
	q.mu.Lock()
	if n := q.inflight[k]; n >= l.ConcurrentRequests {
		q.mu.Unlock()
		q.metrics.refusal(refusedConcurrent)
		return nil, exhausted("Exhausted concurrent requests quota: property properties/%d has %d %s requests in flight (limit %d); retry when one has finished.",
			site, n, cat, l.ConcurrentRequests)
	}
	q.inflight[k]++
	q.mu.Unlock()
	q.metrics.admitted(cat, 1)
	release = func() {
		q.mu.Lock()
		if q.inflight[k]--; q.inflight[k] <= 0 {
			delete(q.inflight, k)
		}
		q.mu.Unlock()
		q.metrics.admitted(cat, -1)
	}
	q.sweep()
	proj := project(key)
	day, hour, projHour := q.windows(cat, site, proj)
	nextHour := time.Unix(hour.start, 0).UTC().Add(time.Hour).Format("15:04")
	for _, c := range []struct {
		k           quotaKey
		ttl         time.Duration
		limit       int64
		what, renew string
		label       string
	}{
		{day, 25 * time.Hour, l.TokensPerDay, "property tokens per day", "at 00:00 UTC", refusedTokensDay},
		{hour, 2 * time.Hour, l.TokensPerHour, "property tokens per hour", "at " + nextHour + " UTC", refusedTokensHour},
		{projHour, 2 * time.Hour, l.TokensPerProjectPerHour, "tokens per project (API key) per hour", "at " + nextHour + " UTC", refusedProjectHour},
		{quotaKey{cat, site, 'e', hour.start, proj}, 2 * time.Hour, l.ServerErrorsPerProjectPerHour,
			"server errors per project (API key) per hour", "at " + nextHour + " UTC", refusedServerErrors},
	} {
		if used := q.add(ctx, c.k, 0, c.ttl); used >= c.limit {
			release()
			q.metrics.refusal(c.label)
			return nil, exhausted("Exhausted %s for property properties/%d (%s): %d used of %d; it renews %s.",
				c.what, site, cat, used, c.limit, c.renew)
		}
	}
	return release, nil
}
