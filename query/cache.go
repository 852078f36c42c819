package query

import (
	"context"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"strings"
	"time"

	"github.com/avila-analytics/avila/query/plan"
	"github.com/zeebo/blake3"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"
)

// ResultCache holds encoded reports by key, and per-site data versions
// that change whenever a site's stored data does. Its failures are its own
// business: a read that fails is a miss, a write that fails is skipped.
// *storage/redis.Cache satisfies it (Redis, or memory on a single node).
type ResultCache interface {
	// Version is site's current data version; ok false: unknown, so
	// neither read nor write the cache for site.
	Version(ctx context.Context, site uint32) (version string, ok bool)
	Get(ctx context.Context, key string) (value []byte, ok bool)
	Set(ctx context.Context, key string, value []byte, ttl time.Duration)
}

// Lifetimes of cached reports. A report is never served once its site's
// data version moved (every committed batch moves it), so these only
// bound what the version does not see: writes that bypass ingest (import,
// GDPR erasure, retention dropping old days). A report whose ranges reach
// today or later lives shorter, since that is where such writes land and
// where users look for fresh numbers.
const (
	cacheTTL      = 10 * time.Minute
	cacheTodayTTL = time.Minute
)

// freshKey marks a request context whose client asked, with
// "Cache-Control: no-cache", for an answer computed from the database rather
// than read from the cache.
type freshKey struct{}

// requestsFresh reports whether h carries Cache-Control: no-cache (or
// no-store, or max-age=0), as HTTP clients ask an intermediary to revalidate.
func requestsFresh(h http.Header) bool {
	for _, v := range h.Values("Cache-Control") {
		for _, d := range strings.Split(v, ",") {
			switch strings.ToLower(strings.TrimSpace(d)) {
			case "no-cache", "no-store", "max-age=0":
				return true
			}
		}
	}
	return false
}

// cacheKeyVersion changes when the encoding of reports or keys changes, so
// a rolling upgrade never reads an entry the other version wrote.
const cacheKeyVersion = "avila-query-cache/2"

// cached returns what run returns, from h.cache when it holds method's answer to
// plans (whose requests are reqs) at the site's current data version, else
// by calling run on the database h.read picks and storing its answer. The
// version is read before run starts, so an answer that raced a commit is
// stored under the version that the commit's bump replaced, where nobody
// reads it. An answer computed on a replica that has not yet replayed
// everything the version covers is returned but not stored.
//
// Only the computed reports are cached: anything a caller adds around them
// (such as a property quota) is added after cached returns, per request.
func cached[T any](ctx context.Context, h *handler, method string, s plan.Site, reqs []*plan.RunReportRequest, plans []*plan.Plan, run func(d db) (T, error)) (T, error) {
	if h.cache == nil {
		d, _ := h.read(ctx, s.ID, "")
		return run(d)
	}
	version, ok := h.cache.Version(ctx, s.ID)
	if !ok {
		h.cacheOutcome(ctx, cacheUnavailable, len(plans))
		d, _ := h.read(ctx, s.ID, "")
		return run(d)
	}
	key, ok := cacheKey(method, version, s, reqs, plans)
	if !ok {
		h.cacheOutcome(ctx, cacheUnavailable, len(plans))
		d, _ := h.read(ctx, s.ID, "")
		return run(d)
	}
	outcome := cacheMiss
	if fresh, _ := ctx.Value(freshKey{}).(bool); fresh {
		// Asked to compute afresh: the answer still refreshes the entry.
		outcome = cacheRefresh
	} else if b, ok := h.cache.Get(ctx, key); ok {
		var v T
		err := json.Unmarshal(b, &v)
		if err == nil {
			h.cacheOutcome(ctx, cacheHit, len(plans))
			return v, nil
		}
		h.log.WarnContext(ctx, "query cache: undecodable entry ignored", "site", s.ID, "key", key, "err", err)
	}
	h.cacheOutcome(ctx, outcome, len(plans))
	d, complete := h.read(ctx, s.ID, version)
	v, err := run(d)
	if err != nil || !complete {
		return v, err
	}
	if b, err := json.Marshal(v); err == nil {
		h.cache.Set(ctx, key, b, cacheLifetime(plans, h.now()))
	}
	return v, nil
}

// Outcomes of a cache lookup, as the request span's avila.cache attribute.
const (
	cacheHit         = "hit"
	cacheMiss        = "miss"
	cacheRefresh     = "refresh"     // Cache-Control: no-cache
	cacheUnavailable = "unavailable" // no data version (Redis down)
)

// cacheOutcome counts n reports as hits or misses and marks the request's
// span with the outcome.
func (h *handler) cacheOutcome(ctx context.Context, outcome string, n int) {
	h.metrics.cacheResult(outcome == cacheHit, n)
	trace.SpanFromContext(ctx).SetAttributes(attribute.String("avila.cache", outcome))
}

// cacheLifetime is cacheTodayTTL when a range of plans ends after now,
// else cacheTTL.
func cacheLifetime(plans []*plan.Plan, now time.Time) time.Duration {
	for _, p := range plans {
		for _, r := range p.Ranges {
			if r.Hi.After(now) {
				return cacheTodayTTL
			}
		}
	}
	return cacheTTL
}

// cacheKey is the hex BLAKE3 hash of everything a report's answer depends
// on: the method (whose answers differ in shape: a runReport and a
// batchRunReports of the same request are different entries), the site's data version and reporting settings, the resolved date
// ranges (so "today" means another key tomorrow), paging as applied, the
// tables the report may read, and the rest of each request in a canonical
// form (decoded and encoded again: field order, spacing and number
// spelling do not matter). Request fields that do not change the reports
// (property, returnPropertyQuota, a currencyCode already checked to be the
// site's) are left out. ok is false for a request that cannot be encoded,
// which is then not cached.
func cacheKey(method, version string, s plan.Site, reqs []*plan.RunReportRequest, plans []*plan.Plan) (key string, ok bool) {
	h := blake3.New()
	var buf [8]byte
	num := func(v int64) {
		binary.LittleEndian.PutUint64(buf[:], uint64(v))
		_, _ = h.Write(buf[:])
	}
	str := func(v string) {
		num(int64(len(v)))
		_, _ = h.Write([]byte(v))
	}
	str(cacheKeyVersion)
	str(method)
	str(version)
	num(int64(s.ID))
	str(s.TimeZone)
	str(s.Currency)
	num(s.RollupsFrom.Unix())
	num(s.HourRollupsFrom.Unix())
	num(s.SessionRollupsFrom.Unix())
	num(s.CommerceRollupsFrom.Unix())
	num(s.TrafficRollupsFrom.Unix())
	num(s.PageRollupsFrom.Unix())
	num(int64(len(plans)))
	for i, p := range plans {
		num(int64(p.Route))
		num(p.Limit)
		num(p.Offset)
		num(int64(len(p.Ranges)))
		for _, r := range p.Ranges {
			num(r.Lo.UnixNano())
			num(r.Hi.UnixNano())
		}
		norm := *reqs[i]
		norm.Property, norm.ReturnPropertyQuota, norm.CurrencyCode = "", false, ""
		norm.Limit, norm.Offset = 0, 0
		norm.DateRanges = make([]plan.DateRange, len(reqs[i].DateRanges))
		for j, r := range reqs[i].DateRanges {
			norm.DateRanges[j] = plan.DateRange{Name: r.Name}
		}
		b, err := json.Marshal(&norm)
		if err != nil {
			return "", false
		}
		str(string(b))
	}
	return hex.EncodeToString(h.Sum(nil)), true
}
