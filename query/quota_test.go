package query

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/avila-analytics/avila/internal/testenv"
	"github.com/avila-analytics/avila/query/engine/realtime"
	"github.com/avila-analytics/avila/query/plan"
	"github.com/avila-analytics/avila/storage/redis"
)

func quotaHandler(t testing.TB, f *fixture, o QuotaOptions) http.Handler {
	t.Helper()
	now := func() time.Time { return fixtureNow }
	return newHandler(Options{Logger: slog.New(slog.NewTextHandler(t.Output(), nil)), Now: now, Quota: o,
		Realtime: redis.NewRealtime(redis.RealtimeOptions{Now: now})}, f.pool, stubKeys{testKey: {1, 2, 3, 99}, "avk_site1": {1}})
}

// postTo sends body to path with key and decodes the answer into out.
func postTo(t testing.TB, h http.Handler, path, key, body string, out any) {
	t.Helper()
	req := httptest.NewRequest(http.MethodPost, path, bytes.NewReader([]byte(body)))
	req.Header.Set("Authorization", "Bearer "+key)
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	if rec.Code != http.StatusOK {
		t.Fatalf("POST %s: %d %s", path, rec.Code, rec.Body)
	}
	if err := json.Unmarshal(rec.Body.Bytes(), out); err != nil {
		t.Fatal(err)
	}
}

const quotaReport = `{"returnPropertyQuota":true,"dimensions":[{"name":"pagePath"}],"metrics":[{"name":"eventCount"},{"name":"activeUsers"}],"dateRanges":[{"startDate":"2026-03-01","endDate":"today"}]}`

func runQuota(t testing.TB, h http.Handler, property, key, body string) *plan.PropertyQuota {
	t.Helper()
	var resp plan.RunReportResponse
	postTo(t, h, "/v1beta/properties/"+property+":runReport", key, body, &resp)
	if resp.PropertyQuota == nil {
		t.Fatalf("returnPropertyQuota: response without propertyQuota")
	}
	return resp.PropertyQuota
}

// checkRemaining: every quota's remaining is its limit minus its consumption.
func checkRemaining(t testing.TB, q *plan.PropertyQuota, l QuotaLimits) {
	t.Helper()
	for _, c := range []struct {
		name  string
		s     plan.QuotaStatus
		limit int64
	}{{"tokensPerDay", q.TokensPerDay, l.TokensPerDay}, {"tokensPerHour", q.TokensPerHour, l.TokensPerHour},
		{"tokensPerProjectPerHour", q.TokensPerProjectPerHour, l.TokensPerProjectPerHour},
		{"concurrentRequests", q.ConcurrentRequests, l.ConcurrentRequests},
		{"serverErrorsPerProjectPerHour", q.ServerErrorsPerProjectPerHour, l.ServerErrorsPerProjectPerHour},
		{"potentiallyThresholdedRequestsPerHour", q.PotentiallyThresholdedRequestsPerHour, l.PotentiallyThresholdedRequestsPerHour}} {
		if c.s.Remaining != max(0, c.limit-c.s.Consumed) {
			t.Errorf("%s: consumed %d, remaining %d, limit %d", c.name, c.s.Consumed, c.s.Remaining, c.limit)
		}
	}
}

// eventsHandler is quotaHandler reading events only, so every report's
// cost follows from its date ranges: 1 + ⌊days × 10 / 30⌋.
func eventsHandler(t testing.TB, f *fixture, o QuotaOptions) *handler {
	t.Helper()
	h := quotaHandler(t, f, o).(*handler)
	h.route = plan.RouteEvents
	return h
}

// quotaReport covers 2026-03-01 to 2026-03-10: 10 days over events cost
// 1 + ⌊10 × 10 / 30⌋ = 4 tokens.
const quotaReportTokens = 4

// TestPropertyQuota: consumption grows with every answered request (asked
// for the quota or not) by the request's cost, remaining is the limit
// minus it, and funnels, realtime and core reports are separate
// categories.
func TestPropertyQuota(t *testing.T) {
	f := newFixture(t, 200)
	limits := DefaultQuotaLimits()
	const c = quotaReportTokens

	h := eventsHandler(t, f, QuotaOptions{})
	first := runQuota(t, h, "1", testKey, quotaReport)
	checkRemaining(t, first, limits)
	if first.TokensPerDay.Consumed != c || first.TokensPerHour.Consumed != c || first.TokensPerProjectPerHour.Consumed != c {
		t.Fatalf("first request: %+v, want %d tokens everywhere", first, c)
	}
	if first.ConcurrentRequests.Consumed != 1 || first.ServerErrorsPerProjectPerHour.Consumed != 0 || first.PotentiallyThresholdedRequestsPerHour.Consumed != 0 {
		t.Fatalf("first request: %+v, want itself in flight, no errors, nothing thresholded", first)
	}
	// Charged without asking: no propertyQuota in the answer, but counted.
	var plain map[string]any
	postTo(t, h, "/v1beta/properties/1:runReport", testKey, okRequest, &plain)
	if _, ok := plain["propertyQuota"]; ok {
		t.Fatalf("propertyQuota without returnPropertyQuota: %v", plain)
	}
	third := runQuota(t, h, "1", testKey, quotaReport)
	checkRemaining(t, third, limits)
	if third.TokensPerDay.Consumed != 3*c || third.TokensPerHour.Consumed != 3*c {
		t.Fatalf("third request: %+v, want %d tokens consumed", third, 3*c)
	}
	// Another key is another project; another property its own counters.
	other := runQuota(t, h, "1", "avk_site1", quotaReport)
	if other.TokensPerDay.Consumed != 4*c || other.TokensPerProjectPerHour.Consumed != c {
		t.Fatalf("other key: %+v, want the property's %d tokens and the key's %d", other, 4*c, c)
	}
	if q := runQuota(t, h, "2", testKey, quotaReport); q.TokensPerDay.Consumed != c {
		t.Fatalf("property 2: %+v, want its own count", q)
	}

	// A batch is charged once, the sum of its reports; each report that
	// asked shows the quota.
	var batch BatchRunReportsResponse
	postTo(t, h, "/v1beta/properties/1:batchRunReports", testKey, `{"requests":[`+quotaReport+`,`+okRequest+`]}`, &batch)
	if q := batch.Reports[0].PropertyQuota; q == nil || q.TokensPerDay.Consumed != 6*c || batch.Reports[1].PropertyQuota != nil {
		t.Fatalf("batch: %+v, %+v; want %d tokens on the first report only", q, batch.Reports[1].PropertyQuota, 6*c)
	}

	// Funnels and realtime have their own counters; a funnel scans events
	// (10 days: 4 tokens), a realtime report costs 1.
	var funnel plan.RunFunnelReportResponse
	postTo(t, h, "/v1alpha/properties/1:runFunnelReport", testKey,
		`{"returnPropertyQuota":true,"dateRanges":[{"startDate":"2026-03-01","endDate":"today"}],"funnel":{"steps":[{"filterExpression":{"funnelEventFilter":{"eventName":"click"}}}]}}`, &funnel)
	if q := funnel.PropertyQuota; q == nil || q.TokensPerDay.Consumed != 4 {
		t.Fatalf("funnel: %+v, want its own 4 tokens", q)
	}
	var rt realtime.RunRealtimeReportResponse
	postTo(t, h, "/v1beta/properties/1:runRealtimeReport", testKey, `{"returnPropertyQuota":true,"metrics":[{"name":"activeUsers"}]}`, &rt)
	if q := rt.PropertyQuota; q == nil || q.TokensPerHour.Consumed != 1 {
		t.Fatalf("realtime: %+v, want its own first token", q)
	}
	if q := runQuota(t, h, "1", testKey, quotaReport); q.TokensPerDay.Consumed != 7*c {
		t.Fatalf("core after funnel and realtime: %+v, want %d", q, 7*c)
	}

	// Cost follows the date range: 1000 days over events cost 334.
	long := `{"returnPropertyQuota":true,"metrics":[{"name":"eventCount"}],"dateRanges":[{"startDate":"999daysAgo","endDate":"today"}]}`
	if q := runQuota(t, h, "3", testKey, long); q.TokensPerDay.Consumed != 334 {
		t.Fatalf("1000-day report: %+v, want 334 tokens", q)
	}
}

// TestPropertyQuotaCost: the rollups cost a tenth of the events for the
// same days, and an answer from the cache costs 1 token.
func TestPropertyQuotaCost(t *testing.T) {
	f := newFixture(t, 200)
	if err := f.store.RebuildRollups(context.Background(), 1); err != nil {
		t.Fatal(err)
	}
	// 30 days from the rollups: 1 + ⌊30/30⌋ = 2; over events 1 + 10 = 11.
	month := `{"returnPropertyQuota":true,"metrics":[{"name":"eventCount"}],"dimensions":[{"name":"date"}],"dateRanges":[{"startDate":"29daysAgo","endDate":"today"}]}`
	auto := quotaHandler(t, f, QuotaOptions{})
	if q := runQuota(t, auto, "1", testKey, month); q.TokensPerDay.Consumed != 2 {
		t.Fatalf("30 days from the rollups: %+v, want 2 tokens", q)
	}
	if q := runQuota(t, eventsHandler(t, f, QuotaOptions{}), "1", testKey, month); q.TokensPerDay.Consumed != 11 {
		t.Fatalf("30 days over events: %+v, want 11 tokens", q)
	}
	now := func() time.Time { return fixtureNow }
	cached := newHandler(Options{Now: now, Cache: redis.NewMemoryCache(redis.CacheOptions{})}, f.pool, stubKeys{testKey: {1}})
	cached.route = plan.RouteEvents
	runQuota(t, cached, "1", testKey, month)
	if q := runQuota(t, cached, "1", testKey, month); q.TokensPerDay.Consumed != 12 {
		t.Fatalf("computed then cached: %+v, want 11 + 1 tokens", q)
	}
}

// TestQuotaEnforced: a property whose tokens are spent is refused with 429
// RESOURCE_EXHAUSTED naming the quota, and not charged; per-site limits
// from Lookup apply to their site only.
func TestQuotaEnforced(t *testing.T) {
	f := newFixture(t, 50)
	const c = quotaReportTokens
	lookup := func(_ context.Context, site uint32) (QuotaLimits, error) {
		if site == 2 {
			return QuotaLimits{TokensPerHour: 2*c + 1, TokensPerDay: 100}, nil
		}
		return QuotaLimits{}, nil
	}
	h := eventsHandler(t, f, QuotaOptions{Limits: QuotaLimits{TokensPerDay: 3 * c}, Lookup: lookup})
	for range 3 {
		runQuota(t, h, "1", testKey, quotaReport)
	}
	code, body := postKey(h, "/v1beta/properties/1:runReport", quotaReport)
	if code != http.StatusTooManyRequests || !strings.Contains(body, `"RESOURCE_EXHAUSTED"`) || !strings.Contains(body, "tokens per day") {
		t.Fatalf("over tokensPerDay: %d %s; want 429 RESOURCE_EXHAUSTED naming tokens per day", code, body)
	}
	// Property 2: its own limits (2c+1 an hour, 100 a day).
	runQuota(t, h, "2", testKey, quotaReport)
	q := runQuota(t, h, "2", testKey, quotaReport)
	if q.TokensPerHour != (plan.QuotaStatus{Consumed: 2 * c, Remaining: 1}) || q.TokensPerDay.Remaining != 100-2*c {
		t.Fatalf("property 2: %+v", q)
	}
	// Tokens left: admitted and charged in full, remaining never below 0.
	q = runQuota(t, h, "2", testKey, quotaReport)
	if q.TokensPerHour != (plan.QuotaStatus{Consumed: 3 * c, Remaining: 0}) {
		t.Fatalf("property 2, last admitted: %+v", q)
	}
	if code, body := postKey(h, "/v1beta/properties/2:runReport", quotaReport); code != http.StatusTooManyRequests || !strings.Contains(body, "tokens per hour") {
		t.Fatalf("property 2 over its hourly limit: %d %s", code, body)
	}
	// A refused request costs nothing: property 3 is untouched.
	if q := runQuota(t, h, "3", testKey, quotaReport); q.TokensPerDay.Consumed != c {
		t.Fatalf("property 3: %+v", q)
	}
}

// TestQuotaConcurrent: with the property's statements held up, ten
// requests wait in its queue and the eleventh is refused at once with
// RESOURCE_EXHAUSTED; once they are let through all ten answer 200.
func TestQuotaConcurrent(t *testing.T) {
	f := newFixture(t, 20)
	h := eventsHandler(t, f, QuotaOptions{})
	ctx := context.Background()
	// Hold every slot of property 1, as long reports would.
	var held []func()
	for range defaultPropertyConns {
		release, err := h.slots.acquire(ctx, 1)
		if err != nil {
			t.Fatal(err)
		}
		held = append(held, release)
	}
	codes := make(chan int, 10)
	for range 10 {
		go func() {
			code, _ := postKey(h, "/v1beta/properties/1:runReport", quotaReport)
			codes <- code
		}()
	}
	inflight := func() int64 {
		h.quota.mu.Lock()
		defer h.quota.mu.Unlock()
		return h.quota.inflight[quotaKey{cat: quotaCore, site: 1}]
	}
	for deadline := time.Now().Add(10 * time.Second); inflight() < 10; time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("%d requests in flight, want 10 waiting", inflight())
		}
	}
	start := time.Now()
	code, body := postKey(h, "/v1beta/properties/1:runReport", quotaReport)
	if code != http.StatusTooManyRequests || !strings.Contains(body, "concurrent requests") {
		t.Fatalf("11th concurrent request: %d %s; want 429 RESOURCE_EXHAUSTED", code, body)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("11th concurrent request waited %s before its refusal", d)
	}
	// Requests that may not read the property are refused for that, not
	// for its quota, and take no slot of it.
	for _, key := range []string{"", "avk_unknown"} {
		if code, body := postAs(h, key, "/v1beta/properties/1:runReport", quotaReport); code != http.StatusUnauthorized {
			t.Fatalf("key %q while property 1 is full: %d %s; want 401", key, code, body)
		}
	}
	if code, body := postAs(h, "avk_site1", "/v1beta/properties/2:runReport", quotaReport); code != http.StatusForbidden {
		t.Fatalf("a key of property 1 reading property 2: %d %s; want 403", code, body)
	}
	if n := inflight(); n != 10 {
		t.Fatalf("%d requests in flight after refused keys, want the 10 waiting", n)
	}
	// Another property is not held up.
	if code, body := postKey(h, "/v1beta/properties/2:runReport", quotaReport); code != http.StatusOK {
		t.Fatalf("property 2 while property 1 is full: %d %s", code, body)
	}
	for _, release := range held {
		release()
	}
	for range 10 {
		if code := <-codes; code != http.StatusOK {
			t.Fatalf("a queued request answered %d, want 200", code)
		}
	}
}

// TestPropertyQuotaWindows: hours and days start over, server errors count
// per key and refuse the key once spent, and requests in flight count as
// concurrent up to the limit.
func TestPropertyQuotaWindows(t *testing.T) {
	now := time.Date(2026, 3, 10, 23, 59, 0, 0, time.UTC)
	q := newQuotas(QuotaOptions{Limits: QuotaLimits{ConcurrentRequests: 2, ServerErrorsPerProjectPerHour: 2}},
		func() time.Time { return now }, slog.New(slog.DiscardHandler))
	ctx := context.Background()
	const req = "avk_abcdefghijklmnopqrstuvwxyz"
	q.serverError(ctx, quotaCore, 1, req)
	done, err := q.admit(ctx, quotaCore, 1, req)
	if err != nil {
		t.Fatal(err)
	}
	second, err := q.admit(ctx, quotaCore, 1, req)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := q.admit(ctx, quotaCore, 1, req); !isExhausted(err) {
		t.Fatalf("third concurrent admit: %v, want RESOURCE_EXHAUSTED", err)
	}
	second()
	got := q.charge(ctx, quotaCore, 1, req, 1, true)
	done()
	if got.ServerErrorsPerProjectPerHour.Consumed != 1 || got.ConcurrentRequests.Consumed != 1 || got.TokensPerDay.Consumed != 1 {
		t.Fatalf("before midnight: %+v", got)
	}
	q.serverError(ctx, quotaCore, 1, req)
	if _, err := q.admit(ctx, quotaCore, 1, req); !isExhausted(err) {
		t.Fatalf("after 2 server errors: %v, want RESOURCE_EXHAUSTED", err)
	}
	now = now.Add(2 * time.Minute) // the next day, and hour
	release, err := q.admit(ctx, quotaCore, 1, req)
	if err != nil {
		t.Fatalf("next hour: %v", err)
	}
	release()
	got = q.charge(ctx, quotaCore, 1, req, 1, true)
	if got.TokensPerDay.Consumed != 1 || got.TokensPerHour.Consumed != 1 || got.ServerErrorsPerProjectPerHour.Consumed != 0 || got.ConcurrentRequests.Consumed != 0 {
		t.Fatalf("after midnight: %+v, want fresh windows", got)
	}
	if len(q.counts) > 4 {
		t.Fatalf("%d counters kept; the ended windows should be swept: %v", len(q.counts), q.counts)
	}
}

func isExhausted(err error) bool {
	var ae *plan.Error
	return errors.As(err, &ae) && ae.Code == http.StatusTooManyRequests && ae.Status == "RESOURCE_EXHAUSTED"
}

// TestPropertyQuotaRedis: two nodes sharing Redis report and enforce the
// property's use across both.
func TestPropertyQuotaRedis(t *testing.T) {
	f := newFixture(t, 20)
	c, err := redis.Open(context.Background(), redis.Options{URL: testenv.RedisURL(t)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	counter := redis.NewQuotaCounter(c, testenv.Prefix(t))
	o := QuotaOptions{Counter: counter, Limits: QuotaLimits{TokensPerHour: 3 * quotaReportTokens}}
	a, b := eventsHandler(t, f, o), eventsHandler(t, f, o)
	runQuota(t, a, "1", testKey, quotaReport)
	runQuota(t, b, "1", testKey, quotaReport)
	if q := runQuota(t, a, "1", testKey, quotaReport); q.TokensPerDay.Consumed != 3*quotaReportTokens || q.TokensPerProjectPerHour.Consumed != 3*quotaReportTokens {
		t.Fatalf("two nodes, one Redis: %+v, want %d tokens", q, 3*quotaReportTokens)
	}
	if code, body := postKey(b, "/v1beta/properties/1:runReport", quotaReport); code != http.StatusTooManyRequests {
		t.Fatalf("node b after the hour's tokens were spent across both: %d %s", code, body)
	}
}

// postKey sends body to path with testKey and returns the status and body
// (safe to call from other goroutines).
func postKey(h http.Handler, path, body string) (int, string) {
	return postAs(h, testKey, path, body)
}

// postAs is postKey with another key; "" sends none.
func postAs(h http.Handler, key, path, body string) (int, string) {
	req := httptest.NewRequest(http.MethodPost, path, strings.NewReader(body))
	if key != "" {
		req.Header.Set("Authorization", "Bearer "+key)
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec.Code, rec.Body.String()
}
