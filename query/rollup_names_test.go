package query

import (
	"bytes"
	"context"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/avila-analytics/avila/query/plan"
)

// namingCounter counts the statements that name rollup dim_ids
// (nameDimIDs) among those run on its db (which, not being a pool, reads
// the counters in one statement rather than two halves).
type namingCounter struct {
	db
	n atomic.Int32
}

func (c *namingCounter) Query(ctx context.Context, text string, args ...any) (pgx.Rows, error) {
	if strings.Contains(text, "AS dim_id)\nSELECT e.dim_id") {
		c.n.Add(1)
	}
	return c.db.Query(ctx, text, args...)
}

// TestRollupNamesKept: a handler names a rollup report's dim_ids once and
// answers the next reports over them from the values it kept, byte for
// byte what a handler that keeps none answers; pagePath and
// pagePathPlusQueryString name the same dim_ids apart ("/a" and
// "/a?utm_source=News" are one page path, two values with their query
// string), as do two sites.
func TestRollupNamesKept(t *testing.T) {
	f := newFixture(t, 400)
	kept := f.routedHandler(t, plan.RouteRollups)
	counter := &namingCounter{db: kept.db}
	kept.db = counter
	week := []plan.DateRange{{StartDate: "2026-03-02", EndDate: "2026-03-08"}}
	top := func(dim string) plan.RunReportRequest {
		return plan.RunReportRequest{Dimensions: dims(dim), Metrics: mets("screenPageViews", "activeUsers"), DateRanges: week,
			OrderBys: []plan.OrderBy{byMetric("screenPageViews", true)}, Limit: 4}
	}
	f1 := func(site, dim string, namings int32) {
		t.Helper()
		req := top(dim)
		if !f.coveredByRollups(t, map[string]uint32{"1": 1, "2": 2}[site], req) {
			t.Fatalf("%s: the rollups should answer it", dim)
		}
		code, got := post(t, kept, site, testKey, req)
		if code != http.StatusOK {
			t.Fatalf("%s: status %d: %s", dim, code, got)
		}
		if n := counter.n.Load(); n != namings {
			t.Fatalf("%s on site %s: %d naming statements so far, want %d", dim, site, n, namings)
		}
		code, want := post(t, f.routedHandler(t, plan.RouteRollups), site, testKey, req)
		if code != http.StatusOK {
			t.Fatalf("%s: status %d: %s", dim, code, want)
		}
		if !bytes.Equal(got, want) {
			t.Fatalf("%s on site %s with kept names:\n%s\nwant\n%s", dim, site, got, want)
		}
	}
	f1("1", "pagePath", 1)
	f1("1", "pagePath", 1)
	f1("1", "pagePathPlusQueryString", 2)
	f1("1", "pagePath", 2)
	f1("2", "pagePath", 3)
	f1("1", "pagePathPlusQueryString", 3)
}
