package query

import (
	"context"
	"strconv"
	"sync"
	"time"

	"github.com/avila-analytics/avila/storage/postgres"
)

// Property quotas, reported as GA4 reports them (returnPropertyQuota) but
// measured here: a request's token cost is the time this server spent
// answering it, so a report that scans many events costs more than one
// answered from the rollups or the cache.
//
//	tokens = 1 + ⌊d / TokenDuration⌋
//
// where d is the wall time from the start of the report's computation
// (cache lookup, SQL, shaping) to its answer, and TokenDuration is 10 ms
// unless configured. A batch is charged once for all its reports.
//
// Tokens are counted per property and quota category (core: runReport and
// batchRunReports; realtime; funnel), in the current UTC hour and UTC day,
// and per API key ("project") in the current UTC hour. Concurrent requests
// are the property's requests in flight on this node, this one included;
// server errors count 5xx answers per key in the hour; nothing is ever
// thresholded here, so potentiallyThresholdedRequestsPerHour stays 0.
//
// Counts live in this node's memory; with a QuotaCounter (Redis) tokens
// and server errors are counted cluster-wide, and when it fails the node
// reports its own counts. Quotas are reported, not enforced: a property
// past its limit shows remaining 0 and is still served.

// QuotaLimits are a property's limits per category. Zero fields take
// GA4's limits for a standard property (DefaultQuotaLimits).
type QuotaLimits struct {
	TokensPerDay                          int64
	TokensPerHour                         int64
	TokensPerProjectPerHour               int64
	ConcurrentRequests                    int64
	ServerErrorsPerProjectPerHour         int64
	PotentiallyThresholdedRequestsPerHour int64
}

// DefaultQuotaLimits are GA4's core limits for a standard property.
func DefaultQuotaLimits() QuotaLimits {
	return QuotaLimits{TokensPerDay: 200000, TokensPerHour: 40000, TokensPerProjectPerHour: 14000,
		ConcurrentRequests: 10, ServerErrorsPerProjectPerHour: 10, PotentiallyThresholdedRequestsPerHour: 120}
}

// QuotaCounter adds n to a shared counter and returns its new value; the
// counter expires ttl after its last add. n may be 0 to read it.
// *storage/redis.QuotaCounter satisfies it.
type QuotaCounter interface {
	Add(ctx context.Context, key string, n int64, ttl time.Duration) (int64, error)
}

// QuotaOptions configure quota accounting. The zero value works.
type QuotaOptions struct {
	Limits        QuotaLimits   // zero fields: DefaultQuotaLimits
	TokenDuration time.Duration // measured time per token beyond the first; 0: 10ms
	Counter       QuotaCounter  // nil: this node's memory only
}

const defaultTokenDuration = 10 * time.Millisecond

// counterTimeout bounds one shared counter update; past it the node's own
// count is reported.
const counterTimeout = 250 * time.Millisecond

// Quota categories, as GA4 separates them.
const (
	quotaCore     = "core"
	quotaRealtime = "realtime"
	quotaFunnel   = "funnel"
)

// quotaKey names one counter: category, property, window ("d" day, "h"
// hour, "p" project hour, "e" project server errors), the window's start
// (Unix seconds) and the project (key id) where the window has one.
type quotaKey struct {
	cat     string
	site    uint32
	window  byte
	start   int64
	project string
}

func (k quotaKey) String() string {
	s := "quota:" + k.cat + ":" + strconv.FormatUint(uint64(k.site), 10) + ":" + string(k.window) + ":" + strconv.FormatInt(k.start, 10)
	if k.project != "" {
		s += ":" + k.project
	}
	return s
}

type quotas struct {
	limits  QuotaLimits
	perTok  time.Duration
	counter QuotaCounter
	now     func() time.Time

	mu       sync.Mutex
	counts   map[quotaKey]int64
	inflight map[quotaKey]int64 // window and start unused
	swept    int64              // hour of the last sweep
}

func newQuotas(o QuotaOptions, now func() time.Time) *quotas {
	l, d := o.Limits, DefaultQuotaLimits()
	for _, f := range []struct{ v, def *int64 }{{&l.TokensPerDay, &d.TokensPerDay}, {&l.TokensPerHour, &d.TokensPerHour},
		{&l.TokensPerProjectPerHour, &d.TokensPerProjectPerHour}, {&l.ConcurrentRequests, &d.ConcurrentRequests},
		{&l.ServerErrorsPerProjectPerHour, &d.ServerErrorsPerProjectPerHour},
		{&l.PotentiallyThresholdedRequestsPerHour, &d.PotentiallyThresholdedRequestsPerHour}} {
		if *f.v <= 0 {
			*f.v = *f.def
		}
	}
	q := &quotas{limits: l, perTok: o.TokenDuration, counter: o.Counter, now: now,
		counts: map[quotaKey]int64{}, inflight: map[quotaKey]int64{}}
	if q.perTok <= 0 {
		q.perTok = defaultTokenDuration
	}
	return q
}

// tokens is the cost of a request that took d to answer.
func (q *quotas) tokens(d time.Duration) int64 {
	if d < 0 {
		d = 0
	}
	return 1 + int64(d/q.perTok)
}

// enter counts a request of cat for site in flight until the returned
// function is called.
func (q *quotas) enter(cat string, site uint32) func() {
	k := quotaKey{cat: cat, site: site}
	q.mu.Lock()
	q.inflight[k]++
	q.mu.Unlock()
	return func() {
		q.mu.Lock()
		if q.inflight[k]--; q.inflight[k] <= 0 {
			delete(q.inflight, k)
		}
		q.mu.Unlock()
	}
}

// project is the id of an API key (its public prefix), which stands for
// GA4's cloud project.
func project(key string) string {
	return key[:min(len(key), postgres.KeyPrefixLen)]
}

// windows are the token counters a charge adds to, with their lifetimes.
func (q *quotas) windows(cat string, site uint32, proj string) (day, hour, projHour quotaKey) {
	now := q.now().UTC()
	d := time.Date(now.Year(), now.Month(), now.Day(), 0, 0, 0, 0, time.UTC).Unix()
	h := now.Truncate(time.Hour).Unix()
	return quotaKey{cat, site, 'd', d, ""}, quotaKey{cat, site, 'h', h, ""}, quotaKey{cat, site, 'p', h, proj}
}

// add adds n to counter k (lifetime ttl): in memory, and in the shared
// counter when there is one, whose total it returns when it answers.
func (q *quotas) add(ctx context.Context, k quotaKey, n int64, ttl time.Duration) int64 {
	q.mu.Lock()
	q.counts[k] += n
	local := q.counts[k]
	q.mu.Unlock()
	if q.counter == nil {
		return local
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), counterTimeout)
	defer cancel()
	if total, err := q.counter.Add(ctx, k.String(), n, ttl); err == nil {
		return total
	}
	return local
}

// charge adds the cost of a request that took d to the property's
// counters, and returns the quota state after it when asked to.
func (q *quotas) charge(ctx context.Context, cat string, site uint32, key string, d time.Duration, report bool) *PropertyQuota {
	q.sweep()
	proj := project(key)
	n := q.tokens(d)
	day, hour, projHour := q.windows(cat, site, proj)
	usedDay := q.add(ctx, day, n, 25*time.Hour)
	usedHour := q.add(ctx, hour, n, 2*time.Hour)
	usedProj := q.add(ctx, projHour, n, 2*time.Hour)
	if !report {
		return nil
	}
	errs := q.add(ctx, quotaKey{cat, site, 'e', hour.start, proj}, 0, 2*time.Hour)
	q.mu.Lock()
	inflight := q.inflight[quotaKey{cat: cat, site: site}]
	q.mu.Unlock()
	status := func(used, limit int64) QuotaStatus {
		return QuotaStatus{Consumed: used, Remaining: max(0, limit-used)}
	}
	return &PropertyQuota{
		TokensPerDay:                          status(usedDay, q.limits.TokensPerDay),
		TokensPerHour:                         status(usedHour, q.limits.TokensPerHour),
		ConcurrentRequests:                    status(inflight, q.limits.ConcurrentRequests),
		ServerErrorsPerProjectPerHour:         status(errs, q.limits.ServerErrorsPerProjectPerHour),
		PotentiallyThresholdedRequestsPerHour: status(0, q.limits.PotentiallyThresholdedRequestsPerHour),
		TokensPerProjectPerHour:               status(usedProj, q.limits.TokensPerProjectPerHour),
	}
}

// serverError counts a 5xx answer to the request's key.
func (q *quotas) serverError(ctx context.Context, cat string, site uint32, key string) {
	_, hour, _ := q.windows(cat, site, "")
	q.add(ctx, quotaKey{cat, site, 'e', hour.start, project(key)}, 1, 2*time.Hour)
}

// sweep drops counters of windows that ended, once per hour, so memory
// holds the current hour and day of each property and key.
func (q *quotas) sweep() {
	now := q.now().UTC()
	h := now.Truncate(time.Hour).Unix()
	q.mu.Lock()
	defer q.mu.Unlock()
	if h == q.swept {
		return
	}
	q.swept = h
	dayStart := time.Date(now.Year(), now.Month(), now.Day(), 0, 0, 0, 0, time.UTC).Unix()
	for k := range q.counts {
		if k.window == 'd' && k.start < dayStart || k.window != 'd' && k.start < h {
			delete(q.counts, k)
		}
	}
}
