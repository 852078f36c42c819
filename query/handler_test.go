package query

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/avila-analytics/avila/storage/postgres"
)

// okRequest is a valid report for the fixture.
const okRequest = `{"metrics":[{"name":"eventCount"}],"dateRanges":[{"startDate":"2026-03-01","endDate":"today"}]}`

// TestHandlerErrors checks status codes and Google's error shape.
func TestHandlerErrors(t *testing.T) {
	f := newFixture(t, 10)
	h := f.handler(t)
	f2 := func(name, property, key, body string, wantCode int, wantStatus, wantInMessage string) {
		t.Helper()
		code, out := post(t, h, property, key, []byte(body))
		var e errorBody
		if err := json.Unmarshal(out, &e); err != nil {
			t.Fatalf("%s: body is not an error: %s", name, out)
		}
		if code != wantCode || e.Error.Code != wantCode || e.Error.Status != wantStatus || !strings.Contains(e.Error.Message, wantInMessage) {
			t.Fatalf("%s: got %d %s, want %d %s containing %q", name, code, out, wantCode, wantStatus, wantInMessage)
		}
	}
	f2("no key", "1", "", okRequest, 401, "UNAUTHENTICATED", "Bearer")
	f2("bad key", "1", "avk_nope", okRequest, 401, "UNAUTHENTICATED", "not valid")
	f2("key for another site", "2", "avk_site1", okRequest, 403, "PERMISSION_DENIED", "properties/2")
	f2("unknown property, key lacks it", "12345", "avk_site1", okRequest, 403, "PERMISSION_DENIED", "properties/12345")
	f2("unknown property", "99", testKey, okRequest, 404, "NOT_FOUND", "properties/99")
	f2("non-numeric property", "abc", testKey, okRequest, 400, "INVALID_ARGUMENT", `"abc"`)
	f2("property id too large", "4294967297", testKey, okRequest, 400, "INVALID_ARGUMENT", "positive integers")
	f2("unknown metric", "1", testKey, `{"metrics":[{"name":"sessionz"}],"dateRanges":[{"startDate":"today","endDate":"today"}]}`,
		400, "INVALID_ARGUMENT", `"sessionz" is not a valid metric`)
	f2("unknown dimension", "1", testKey, `{"dimensions":[{"name":"cityy"}],"dateRanges":[{"startDate":"today","endDate":"today"}]}`,
		400, "INVALID_ARGUMENT", `"cityy" is not a valid dimension`)
	f2("bad date", "1", testKey, `{"metrics":[{"name":"eventCount"}],"dateRanges":[{"startDate":"2026-02-30","endDate":"today"}]}`,
		400, "INVALID_ARGUMENT", `startDate "2026-02-30"`)
	f2("reversed dates", "1", testKey, `{"metrics":[{"name":"eventCount"}],"dateRanges":[{"startDate":"today","endDate":"yesterday"}]}`,
		400, "INVALID_ARGUMENT", "after endDate")
	f2("unknown field", "1", testKey, `{"metrics":[{"name":"eventCount"}],"dateRanges":[{"startDate":"today","endDate":"today"}],"limitt":5}`,
		400, "INVALID_ARGUMENT", `Unknown name "limitt"`)
	f2("unknown nested field", "1", testKey, `{"metrics":[{"name":"eventCount","alias":"x"}],"dateRanges":[{"startDate":"today","endDate":"today"}]}`,
		400, "INVALID_ARGUMENT", `Unknown name "alias"`)
	f2("not JSON", "1", testKey, `{"metrics":`, 400, "INVALID_ARGUMENT", "Invalid JSON payload")
	f2("trailing data", "1", testKey, okRequest+`{}`, 400, "INVALID_ARGUMENT", "Unexpected data")
	f2("limit not a number", "1", testKey, `{"metrics":[{"name":"eventCount"}],"dateRanges":[{"startDate":"today","endDate":"today"}],"limit":"ten"}`,
		400, "INVALID_ARGUMENT", "Invalid JSON payload")
	f2("negative limit", "1", testKey, `{"metrics":[{"name":"eventCount"}],"dateRanges":[{"startDate":"today","endDate":"today"}],"limit":-1}`,
		400, "INVALID_ARGUMENT", "limit")
	f2("no date range", "1", testKey, `{"metrics":[{"name":"eventCount"}]}`, 400, "INVALID_ARGUMENT", "date range")
	f2("empty body", "1", testKey, ``, 400, "INVALID_ARGUMENT", "at least one dimension or metric")
	f2("order by metric not requested", "1", testKey, `{"metrics":[{"name":"eventCount"}],"dateRanges":[{"startDate":"today","endDate":"today"}],"orderBys":[{"metric":{"metricName":"activeUsers"}}]}`,
		400, "INVALID_ARGUMENT", `"activeUsers" is not in the request's metrics`)
	f2("dateRange order with one range", "1", testKey, `{"metrics":[{"name":"eventCount"}],"dateRanges":[{"startDate":"today","endDate":"today"}],"orderBys":[{"dimension":{"dimensionName":"dateRange"}}]}`,
		400, "INVALID_ARGUMENT", `"dateRange" is not in the request's dimensions`)
	f2("filter on unknown dimension", "1", testKey, `{"metrics":[{"name":"eventCount"}],"dateRanges":[{"startDate":"today","endDate":"today"}],"dimensionFilter":{"filter":{"fieldName":"x","emptyFilter":{}}}}`,
		400, "INVALID_ARGUMENT", `dimensionFilter.filter.fieldName: Field "x" is not a valid dimension`)
	f2("duplicate metric", "1", testKey, `{"metrics":[{"name":"eventCount"},{"name":"eventCount"}],"dateRanges":[{"startDate":"today","endDate":"today"}]}`,
		400, "INVALID_ARGUMENT", "Duplicate metric")
	f2("five ranges", "1", testKey, `{"metrics":[{"name":"eventCount"}],"dateRanges":[`+strings.Repeat(`{"startDate":"today","endDate":"today"},`, 4)+`{"startDate":"today","endDate":"today"}]}`,
		400, "INVALID_ARGUMENT", "limit is 4")
	f2("reserved range name", "1", testKey, `{"metrics":[{"name":"eventCount"}],"dateRanges":[{"startDate":"today","endDate":"today","name":"RESERVED_X"}]}`,
		400, "INVALID_ARGUMENT", "RESERVED_")
	f2("property mismatch", "1", testKey, `{"property":"properties/2","metrics":[{"name":"eventCount"}],"dateRanges":[{"startDate":"today","endDate":"today"}]}`,
		400, "INVALID_ARGUMENT", "does not match")
	f2("other currency", "1", testKey, `{"currencyCode":"EUR","metrics":[{"name":"eventCount"}],"dateRanges":[{"startDate":"today","endDate":"today"}]}`,
		400, "INVALID_ARGUMENT", "EUR")
	f2("body over 1 MiB", "1", testKey, `{"metrics":[{"name":"eventCount"}],"dateRanges":[{"startDate":"today","endDate":"today","name":"`+strings.Repeat("x", 1<<20)+`"}]}`,
		400, "INVALID_ARGUMENT", "exceeds")

	for _, tc := range []struct{ method, path string }{
		{http.MethodGet, "/v1beta/properties/1:runReport"},
		{http.MethodGet, "/v1beta/properties/1:runPivotReport"},
		{http.MethodPost, "/v1beta/properties/1:runCohortReport"},
		{http.MethodPost, "/v1alpha/properties/1:runReport"},
		{http.MethodPost, "/v1beta/properties/1"},
		{http.MethodPost, "/v1/properties/1:runReport"},
	} {
		req := httptest.NewRequest(tc.method, tc.path, strings.NewReader(okRequest))
		req.Header.Set("Authorization", "Bearer "+testKey)
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code != http.StatusNotFound || !strings.Contains(rec.Body.String(), `"status":"NOT_FOUND"`) {
			t.Errorf("%s %s: got %d %s, want 404 NOT_FOUND", tc.method, tc.path, rec.Code, rec.Body)
		}
	}
}

// TestHandlerWithStoreKeys uses the store's API keys: a live key reads its
// site, a revoked or malformed key is 401.
func TestHandlerWithStoreKeys(t *testing.T) {
	f := newFixture(t, 10)
	ctx := context.Background()
	h := NewHandler(Options{Now: func() time.Time { return fixtureNow }}, f.pool, f.store)
	key, err := f.store.CreateAPIKey(ctx, "test", []uint32{1})
	if err != nil {
		t.Fatal(err)
	}
	if code, out := post(t, h, "1", key, []byte(okRequest)); code != 200 {
		t.Fatalf("live key: %d %s", code, out)
	}
	if code, out := post(t, h, "2", key, []byte(okRequest)); code != 403 {
		t.Fatalf("other site: %d %s", code, out)
	}
	if code, out := post(t, h, "1", "avk_short", []byte(okRequest)); code != 401 {
		t.Fatalf("malformed key: %d %s", code, out)
	}
	if err := f.store.RevokeAPIKey(ctx, key[:postgres.KeyPrefixLen]); err != nil {
		t.Fatal(err)
	}
	if code, out := post(t, h, "1", key, []byte(okRequest)); code != 401 {
		t.Fatalf("revoked key: %d %s", code, out)
	}
}

type notFoundErr struct{}

func (notFoundErr) Error() string  { return "no such key" }
func (notFoundErr) NotFound() bool { return true }

func TestIsNotFound(t *testing.T) {
	f := func(err error, want bool) {
		t.Helper()
		if got := isNotFound(err); got != want {
			t.Fatalf("isNotFound(%v) = %v, want %v", err, got, want)
		}
	}
	f(nil, false)
	f(errors.New("connection refused"), false)
	f(fmt.Errorf("keys: %w", ErrUnknownKey), true)
	f(fmt.Errorf("postgres: api key: %w", postgres.ErrNotFound), true)
	f(fmt.Errorf("wrapped: %w", notFoundErr{}), true)
}

func TestBearerKey(t *testing.T) {
	f := func(header, want string, wantOK bool) {
		t.Helper()
		got, ok := bearerKey(header)
		if got != want || ok != wantOK {
			t.Fatalf("bearerKey(%q) = %q, %v; want %q, %v", header, got, ok, want, wantOK)
		}
	}
	f("Bearer avk_x", "avk_x", true)
	f("bearer  avk_x ", "avk_x", true)
	f("Basic avk_x", "", false)
	f("Bearer", "", false)
	f("Bearer ", "", false)
	f("", "", false)
}

// TestHandlerTimeout: database work past Options.Timeout is 504
// DEADLINE_EXCEEDED, not a 500.
func TestHandlerTimeout(t *testing.T) {
	f := newFixture(t, 10)
	h := newHandler(Options{Now: func() time.Time { return fixtureNow }, Timeout: time.Nanosecond}, f.pool, stubKeys{testKey: {1}})
	code, out := post(t, h, "1", testKey, []byte(okRequest))
	if code != http.StatusGatewayTimeout || !strings.Contains(string(out), `"status":"DEADLINE_EXCEEDED"`) {
		t.Fatalf("got %d %s, want 504 DEADLINE_EXCEEDED", code, out)
	}
}
