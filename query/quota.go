package query

import (
	"context"
	"log/slog"
	"strconv"
	"sync"
	"time"

	"github.com/avila-analytics/avila/query/plan"
	"github.com/avila-analytics/avila/storage/postgres"
)

// Property quotas, as GA4 counts them (returnPropertyQuota) and enforces
// them: a request that finds a quota spent is answered 429
// RESOURCE_EXHAUSTED and not run.
//
// A request's token cost is what it made PostgreSQL do (see tokens.go):
// 1 for an answer from the cache or a realtime report, else per report
// 1 + ⌊days × w / 30⌋ (w = 1 when the rollups answer it, 10 when it scans
// events; days summed over its date ranges) plus ⌊rows read / 1000⌋.
// A batch is charged the sum for all its reports.
//
// Tokens are counted per property and quota category (core: runReport,
// batchRunReports and metadata; realtime; funnel), in the current UTC hour
// and UTC day, and per API key ("project") in the current UTC hour.
// Concurrent requests are the property's requests in flight on this node,
// this one included; server errors count 5xx answers per key in the hour;
// nothing is ever thresholded here, so
// potentiallyThresholdedRequestsPerHour stays 0 and is not enforced.
//
// Before a request runs (admit): if the property already has
// ConcurrentRequests requests of the category in flight on this node, or
// its tokens of the day or hour, the key's tokens of the hour or the key's
// server errors of the hour are spent, the request is refused with
// RESOURCE_EXHAUSTED naming the quota. A request admitted with tokens left
// runs to its end and is charged in full, as in GA4, so consumption may
// end above the limit.
//
// Counts live in this node's memory; with a QuotaCounter (Redis) tokens
// and server errors are counted cluster-wide, and when it fails the node
// reports and enforces its own counts. Limits are per property: the
// defaults (Limits), overridden per site by Lookup ('avila site update
// --quota-…').

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

// orDefault fills l's zero fields from def.
func (l QuotaLimits) orDefault(def QuotaLimits) QuotaLimits {
	for _, f := range []struct{ v, def *int64 }{{&l.TokensPerDay, &def.TokensPerDay}, {&l.TokensPerHour, &def.TokensPerHour},
		{&l.TokensPerProjectPerHour, &def.TokensPerProjectPerHour}, {&l.ConcurrentRequests, &def.ConcurrentRequests},
		{&l.ServerErrorsPerProjectPerHour, &def.ServerErrorsPerProjectPerHour},
		{&l.PotentiallyThresholdedRequestsPerHour, &def.PotentiallyThresholdedRequestsPerHour}} {
		if *f.v <= 0 {
			*f.v = *f.def
		}
	}
	return l
}

// QuotaCounter adds n to a shared counter and returns its new value; the
// counter expires ttl after its last add. n may be 0 to read it.
// *storage/redis.QuotaCounter satisfies it.
type QuotaCounter interface {
	Add(ctx context.Context, key string, n int64, ttl time.Duration) (int64, error)
}

// QuotaOptions configure quota accounting. The zero value works.
type QuotaOptions struct {
	Limits  QuotaLimits  // every property's; zero fields: DefaultQuotaLimits
	Counter QuotaCounter // nil: this node's memory only
	// Lookup returns a property's own limits (zero fields: Limits); nil:
	// every property has Limits. Its answers are kept for LookupTTL.
	Lookup func(ctx context.Context, site uint32) (QuotaLimits, error)
	// LookupTTL is how long a property's limits are reused; 0: 10s.
	LookupTTL time.Duration
	// Metrics count requests in flight and refusals (NewQuotaMetrics);
	// nil: not counted.
	Metrics *QuotaMetrics
}

const defaultLookupTTL = 10 * time.Second

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
	limits    QuotaLimits
	counter   QuotaCounter
	now       func() time.Time
	lookup    func(ctx context.Context, site uint32) (QuotaLimits, error)
	lookupTTL time.Duration
	log       *slog.Logger
	metrics   *QuotaMetrics

	limMu  sync.Mutex
	perSit map[uint32]siteLimits

	mu       sync.Mutex
	counts   map[quotaKey]int64
	inflight map[quotaKey]int64 // window and start unused
	swept    int64              // hour of the last sweep
}

// siteLimits are a property's limits as last looked up.
type siteLimits struct {
	l  QuotaLimits
	at time.Time
}

func newQuotas(o QuotaOptions, now func() time.Time, log *slog.Logger) *quotas {
	q := &quotas{limits: o.Limits.orDefault(DefaultQuotaLimits()), counter: o.Counter, now: now,
		lookup: o.Lookup, lookupTTL: o.LookupTTL, log: log, metrics: o.Metrics, perSit: map[uint32]siteLimits{},
		counts: map[quotaKey]int64{}, inflight: map[quotaKey]int64{}}
	if q.lookupTTL <= 0 {
		q.lookupTTL = defaultLookupTTL
	}
	return q
}

// limitsOf are site's limits: its own where set, else the defaults. A
// failed lookup keeps the last known ones (or the defaults) and is logged.
func (q *quotas) limitsOf(ctx context.Context, site uint32) QuotaLimits {
	if q.lookup == nil {
		return q.limits
	}
	now := q.now()
	q.limMu.Lock()
	cached, ok := q.perSit[site]
	q.limMu.Unlock()
	if ok && now.Sub(cached.at) < q.lookupTTL && !now.Before(cached.at) {
		return cached.l
	}
	l, err := q.lookup(ctx, site)
	if err != nil {
		q.log.WarnContext(ctx, "quota: look up the property's limits; keeping the last known", "site", site, "err", err)
		if ok {
			return cached.l
		}
		return q.limits
	}
	l = l.orDefault(q.limits)
	q.limMu.Lock()
	if len(q.perSit) > 100000 {
		clear(q.perSit) // bounded: a lookup each TTL is cheap
	}
	q.perSit[site] = siteLimits{l: l, at: now}
	q.limMu.Unlock()
	return l
}

// project is the id of an API key (its public prefix), which stands for
// GA4's cloud project; "" for none.
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

// charge adds n tokens to the property's counters, and returns the quota
// state after it when asked to.
func (q *quotas) charge(ctx context.Context, cat string, site uint32, key string, n int64, report bool) *plan.PropertyQuota {
	q.sweep()
	proj := project(key)
	day, hour, projHour := q.windows(cat, site, proj)
	usedDay := q.add(ctx, day, n, 25*time.Hour)
	usedHour := q.add(ctx, hour, n, 2*time.Hour)
	usedProj := q.add(ctx, projHour, n, 2*time.Hour)
	if !report {
		return nil
	}
	l := q.limitsOf(ctx, site)
	errs := q.add(ctx, quotaKey{cat, site, 'e', hour.start, proj}, 0, 2*time.Hour)
	q.mu.Lock()
	inflight := q.inflight[quotaKey{cat: cat, site: site}]
	q.mu.Unlock()
	status := func(used, limit int64) plan.QuotaStatus {
		return plan.QuotaStatus{Consumed: used, Remaining: max(0, limit-used)}
	}
	return &plan.PropertyQuota{
		TokensPerDay:                          status(usedDay, l.TokensPerDay),
		TokensPerHour:                         status(usedHour, l.TokensPerHour),
		ConcurrentRequests:                    status(inflight, l.ConcurrentRequests),
		ServerErrorsPerProjectPerHour:         status(errs, l.ServerErrorsPerProjectPerHour),
		PotentiallyThresholdedRequestsPerHour: status(0, l.PotentiallyThresholdedRequestsPerHour),
		TokensPerProjectPerHour:               status(usedProj, l.TokensPerProjectPerHour),
	}
}

// serverError counts a 5xx answer to key.
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
