package query

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/avila-analytics/avila/internal/testenv"
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

func runQuota(t testing.TB, h http.Handler, property, key, body string) *PropertyQuota {
	t.Helper()
	var resp RunReportResponse
	postTo(t, h, "/v1beta/properties/"+property+":runReport", key, body, &resp)
	if resp.PropertyQuota == nil {
		t.Fatalf("returnPropertyQuota: response without propertyQuota")
	}
	return resp.PropertyQuota
}

// checkRemaining: every quota's remaining is its limit minus its consumption.
func checkRemaining(t testing.TB, q *PropertyQuota, l QuotaLimits) {
	t.Helper()
	for _, c := range []struct {
		name  string
		s     QuotaStatus
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

// TestPropertyQuota: consumption grows with every answered request (asked
// for the quota or not), remaining is the limit minus it, a request costs
// what its measured time says, and funnels, realtime and core reports are
// separate categories.
func TestPropertyQuota(t *testing.T) {
	f := newFixture(t, 200)
	limits := DefaultQuotaLimits()

	// One token per hour of work: every request costs exactly 1.
	h := quotaHandler(t, f, QuotaOptions{TokenDuration: time.Hour})
	first := runQuota(t, h, "1", testKey, quotaReport)
	checkRemaining(t, first, limits)
	if first.TokensPerDay.Consumed != 1 || first.TokensPerHour.Consumed != 1 || first.TokensPerProjectPerHour.Consumed != 1 {
		t.Fatalf("first request: %+v, want 1 token everywhere", first)
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
	if third.TokensPerDay.Consumed != 3 || third.TokensPerHour.Consumed != 3 {
		t.Fatalf("third request: %+v, want 3 tokens consumed", third)
	}
	// Another key is another project; another property its own counters.
	other := runQuota(t, h, "1", "avk_site1", quotaReport)
	if other.TokensPerDay.Consumed != 4 || other.TokensPerProjectPerHour.Consumed != 1 {
		t.Fatalf("other key: %+v, want the property's 4 tokens and the key's 1", other)
	}
	if q := runQuota(t, h, "2", testKey, quotaReport); q.TokensPerDay.Consumed != 1 {
		t.Fatalf("property 2: %+v, want its own count", q)
	}

	// A batch is charged once; each report that asked shows the quota.
	var batch BatchRunReportsResponse
	postTo(t, h, "/v1beta/properties/1:batchRunReports", testKey, `{"requests":[`+quotaReport+`,`+okRequest+`]}`, &batch)
	if q := batch.Reports[0].PropertyQuota; q == nil || q.TokensPerDay.Consumed != 5 || batch.Reports[1].PropertyQuota != nil {
		t.Fatalf("batch: %+v, %+v; want 5 tokens on the first report only", q, batch.Reports[1].PropertyQuota)
	}

	// Funnels and realtime have their own counters.
	var funnel RunFunnelReportResponse
	postTo(t, h, "/v1alpha/properties/1:runFunnelReport", testKey,
		`{"returnPropertyQuota":true,"dateRanges":[{"startDate":"2026-03-01","endDate":"today"}],"funnel":{"steps":[{"filterExpression":{"funnelEventFilter":{"eventName":"click"}}}]}}`, &funnel)
	if q := funnel.PropertyQuota; q == nil || q.TokensPerDay.Consumed != 1 {
		t.Fatalf("funnel: %+v, want its own first token", q)
	}
	var rt RunRealtimeReportResponse
	postTo(t, h, "/v1beta/properties/1:runRealtimeReport", testKey, `{"returnPropertyQuota":true,"metrics":[{"name":"activeUsers"}]}`, &rt)
	if q := rt.PropertyQuota; q == nil || q.TokensPerHour.Consumed != 1 {
		t.Fatalf("realtime: %+v, want its own first token", q)
	}
	if q := runQuota(t, h, "1", testKey, quotaReport); q.TokensPerDay.Consumed != 6 {
		t.Fatalf("core after funnel and realtime: %+v, want 6", q)
	}

	// Measured cost: with a token per microsecond, a report over events
	// (which takes far longer than a microsecond) costs many tokens.
	fine := quotaHandler(t, f, QuotaOptions{TokenDuration: time.Microsecond})
	a := runQuota(t, fine, "1", testKey, quotaReport)
	b := runQuota(t, fine, "1", testKey, quotaReport)
	checkRemaining(t, b, limits)
	if a.TokensPerDay.Consumed < 10 || b.TokensPerDay.Consumed <= a.TokensPerDay.Consumed+1 {
		t.Fatalf("measured cost: %d then %d tokens; want a real report to cost more than 1 token", a.TokensPerDay.Consumed, b.TokensPerDay.Consumed)
	}

	// Configured limits; remaining never goes below 0.
	small := QuotaLimits{TokensPerDay: 2, TokensPerHour: 100}
	lim := quotaHandler(t, f, QuotaOptions{TokenDuration: time.Hour, Limits: small})
	runQuota(t, lim, "1", testKey, quotaReport)
	runQuota(t, lim, "1", testKey, quotaReport)
	q := runQuota(t, lim, "1", testKey, quotaReport)
	want := DefaultQuotaLimits()
	want.TokensPerDay, want.TokensPerHour = 2, 100
	checkRemaining(t, q, want)
	if q.TokensPerDay != (QuotaStatus{Consumed: 3, Remaining: 0}) || q.TokensPerHour != (QuotaStatus{Consumed: 3, Remaining: 97}) {
		t.Fatalf("small limits: %+v", q)
	}
}

// TestPropertyQuotaWindows: hours and days start over, server errors count
// per key, and requests in flight count as concurrent.
func TestPropertyQuotaWindows(t *testing.T) {
	now := time.Date(2026, 3, 10, 23, 59, 0, 0, time.UTC)
	q := newQuotas(QuotaOptions{TokenDuration: time.Hour}, func() time.Time { return now })
	ctx := context.Background()
	req := httptest.NewRequest(http.MethodPost, "/", nil)
	req.Header.Set("Authorization", "Bearer avk_abcdefghijklmnopqrstuvwxyz")
	q.serverError(ctx, quotaCore, 1, "avk_abcdefghijklmnopqrstuvwxyz")
	done := q.enter(quotaCore, 1)
	q.enter(quotaCore, 1)()
	got := q.charge(ctx, quotaCore, 1, "avk_abcdefghijklmnopqrstuvwxyz", 0, true)
	done()
	if got.ServerErrorsPerProjectPerHour.Consumed != 1 || got.ConcurrentRequests.Consumed != 1 || got.TokensPerDay.Consumed != 1 {
		t.Fatalf("before midnight: %+v", got)
	}
	now = now.Add(2 * time.Minute) // the next day, and hour
	got = q.charge(ctx, quotaCore, 1, "avk_abcdefghijklmnopqrstuvwxyz", 0, true)
	if got.TokensPerDay.Consumed != 1 || got.TokensPerHour.Consumed != 1 || got.ServerErrorsPerProjectPerHour.Consumed != 0 || got.ConcurrentRequests.Consumed != 0 {
		t.Fatalf("after midnight: %+v, want fresh windows", got)
	}
	if len(q.counts) > 4 {
		t.Fatalf("%d counters kept; the ended windows should be swept: %v", len(q.counts), q.counts)
	}
}

// TestPropertyQuotaRedis: two nodes sharing Redis report the property's
// use across both.
func TestPropertyQuotaRedis(t *testing.T) {
	f := newFixture(t, 20)
	c, err := redis.Open(context.Background(), redis.Options{URL: testenv.RedisURL(t)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	counter := redis.NewQuotaCounter(c, testenv.Prefix(t))
	a := quotaHandler(t, f, QuotaOptions{TokenDuration: time.Hour, Counter: counter})
	b := quotaHandler(t, f, QuotaOptions{TokenDuration: time.Hour, Counter: counter})
	runQuota(t, a, "1", testKey, quotaReport)
	runQuota(t, b, "1", testKey, quotaReport)
	if q := runQuota(t, a, "1", testKey, quotaReport); q.TokensPerDay.Consumed != 3 || q.TokensPerProjectPerHour.Consumed != 3 {
		t.Fatalf("two nodes, one Redis: %+v, want 3 tokens", q)
	}
}
