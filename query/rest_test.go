package query

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	goredis "github.com/redis/go-redis/v9"

	"github.com/avila-analytics/avila/internal/testenv"
	"github.com/avila-analytics/avila/query/plan"
	"github.com/avila-analytics/avila/storage/redis"
)

// TestReportCacheByMethod: runReport and batchRunReports (and a pivot
// report) of the same request are different cache entries, each answered
// in its own shape; before, the second method read the first's entry and
// answered an empty report with status 200.
func TestReportCacheByMethod(t *testing.T) {
	f := newFixture(t, 300)
	rdb, err := redis.New(redis.Options{URL: testenv.RedisURL(t)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = rdb.Close() })
	for _, tc := range []struct {
		name string
		rdb  goredis.UniversalClient
	}{{"redis", rdb}, {"memory", nil}} {
		t.Run(tc.name, func(t *testing.T) {
			r := newCacheRig(t, f, tc.rdb)
			single := r.report(t, cacheRequest)
			r.wantOracle(t, cacheRequest, single)
			r.wantCounts(t, 0, 1)
			for i := range 2 {
				code, body := call(t, r.h, http.MethodPost, "/v1beta/properties/3:batchRunReports", testKey,
					BatchRunReportsRequest{Requests: []plan.RunReportRequest{cacheRequest}})
				var batch BatchRunReportsResponse
				if err := json.Unmarshal(body, &batch); code != http.StatusOK || err != nil || len(batch.Reports) != 1 {
					t.Fatalf("batch after runReport: %d %s", code, body)
				}
				if diff := cmp.Diff(single, batch.Reports[0]); diff != "" || batch.Kind != batchKind {
					t.Fatalf("batch's report differs from runReport's (-want +got):\n%s", diff)
				}
				r.wantCounts(t, float64(i), 2) // its own entry: a miss, then a hit
			}
			// A pivot report over the same fields has entries of its own too.
			pivot := `{"dimensions":[{"name":"date"}],"metrics":[{"name":"eventCount"},{"name":"activeUsers"}],
				"dateRanges":[{"startDate":"3daysAgo","endDate":"today"}],"pivots":[{"fieldNames":["date"],"limit":"10"}]}`
			code, body := call(t, r.h, http.MethodPost, "/v1beta/properties/3:runPivotReport", testKey, []byte(pivot))
			if code != http.StatusOK || !strings.Contains(string(body), `"kind":"analyticsData#runPivotReport"`) || !strings.Contains(string(body), `"pivotHeaders"`) {
				t.Fatalf("pivot report: %d %s", code, body)
			}
		})
	}
}

// TestRESTProtoJSON: the REST transport reads proto3 JSON as Google's
// endpoints do: enums by name or number (Google's clients in REST mode send
// numbers and ask for numbers back with $alt=json;enum-encoding=int),
// 64-bit integers as numbers or strings, field names in lowerCamelCase or
// as in the .proto file; unknown fields are refused naming the field, with
// google.rpc error details.
func TestRESTProtoJSON(t *testing.T) {
	f := newFixture(t, 200)
	h := f.handler(t)
	byName := `{"dimensions":[{"name":"pagePath"}],"metrics":[{"name":"eventCount"}],"dateRanges":[{"startDate":"2026-03-01","endDate":"today"}],
		"dimensionFilter":{"filter":{"fieldName":"pagePath","stringFilter":{"matchType":"BEGINS_WITH","value":"/a"}}},
		"orderBys":[{"dimension":{"dimensionName":"pagePath","orderType":"CASE_INSENSITIVE_ALPHANUMERIC"},"desc":true}],
		"metricAggregations":["TOTAL","MAXIMUM"],"limit":"5"}`
	byNumber := `{"dimensions":[{"name":"pagePath"}],"metrics":[{"name":"eventCount"}],"date_ranges":[{"start_date":"2026-03-01","end_date":"today"}],
		"dimensionFilter":{"filter":{"fieldName":"pagePath","stringFilter":{"matchType":2,"value":"/a"}}},
		"orderBys":[{"dimension":{"dimensionName":"pagePath","orderType":2},"desc":true}],
		"metricAggregations":[1,6],"limit":5}`
	code, names := call(t, h, http.MethodPost, "/v1beta/properties/1:runReport", testKey, []byte(byName))
	if code != http.StatusOK || !strings.Contains(string(names), `"type":"TYPE_INTEGER"`) {
		t.Fatalf("enum names: %d %s", code, names)
	}
	req := httptest.NewRequest(http.MethodPost, "/v1beta/properties/1:runReport?$alt=json;enum-encoding=int", strings.NewReader(byNumber))
	req.Header.Set("Authorization", "Bearer "+testKey)
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	if rec.Code != http.StatusOK || !strings.Contains(rec.Body.String(), `"type":1`) {
		t.Fatalf("enum numbers: %d %s", rec.Code, rec.Body)
	}
	// The same report either way (1 and 6 are TOTAL and MAXIMUM, 2 BEGINS_WITH …).
	if want := strings.ReplaceAll(string(names), `"type":"TYPE_INTEGER"`, `"type":1`); rec.Body.String() != want {
		t.Fatalf("numbers and names differ:\n%s\n%s", want, rec.Body)
	}
	var resp plan.RunReportResponse
	if err := json.Unmarshal(names, &resp); err != nil || len(resp.Rows) == 0 || len(resp.Maximums) != 1 {
		t.Fatalf("report by names: %v %s", err, names)
	}

	f2 := func(name, body, wantMessage, wantField string) {
		t.Helper()
		code, out := call(t, h, http.MethodPost, "/v1beta/properties/1:runReport", testKey, []byte(body))
		var e struct {
			Error struct {
				Code    int
				Message string
				Status  string
				Details []struct {
					Type            string `json:"@type"`
					FieldViolations []struct{ Field, Description string }
				}
			}
		}
		if err := json.Unmarshal(out, &e); err != nil || code != 400 || e.Error.Status != "INVALID_ARGUMENT" || !strings.Contains(e.Error.Message, wantMessage) ||
			len(e.Error.Details) != 1 || e.Error.Details[0].Type != "type.googleapis.com/google.rpc.BadRequest" ||
			len(e.Error.Details[0].FieldViolations) != 1 || e.Error.Details[0].FieldViolations[0].Field != wantField {
			t.Errorf("%s: %d %s, want INVALID_ARGUMENT %q with a BadRequest naming %q", name, code, out, wantMessage, wantField)
		}
	}
	f2("unknown top-level field", `{"metrics":[{"name":"eventCount"}],"dimensionFiltre":{}}`, `Unknown name "dimensionFiltre"`, "")
	f2("unknown nested field", `{"metrics":[{"name":"eventCount"}],"dimensionFilter":{"filter":{"fieldName":"city","stringFilter":{"valeu":"x"}}}}`,
		`Unknown name "valeu" at 'dimensionFilter.filter.stringFilter'`, "dimensionFilter.filter.stringFilter")
	f2("unknown enum name", `{"metrics":[{"name":"eventCount"}],"metricAggregations":["TOTAL","AVERAGE"]}`,
		`"AVERAGE" is not supported`, "metricAggregations[1]")
	f2("unknown enum number", `{"metrics":[{"name":"eventCount"}],"dateRanges":[{"startDate":"today","endDate":"today"}],"metricAggregations":[42]}`,
		`"42" is not supported`, "metricAggregations")
}
