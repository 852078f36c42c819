package query

import (
	"context"
	"fmt"
	"testing"

	"github.com/avila-analytics/avila/query/plan"
	"github.com/avila-analytics/avila/storage/postgres"
)

// coverAll gives reqs the fixture's range (2026-03-01 to 2026-03-11) with
// totals, and fails t unless site's rollups cover each.
func coverAll(t *testing.T, f *fixture, site uint32, reqs []plan.RunReportRequest) {
	t.Helper()
	for i := range reqs {
		reqs[i].DateRanges = []plan.DateRange{{StartDate: "2026-03-01", EndDate: "2026-03-11"}}
		reqs[i].MetricAggregations = []plan.MetricAggregation{"TOTAL"}
		if !f.coveredByRollups(t, site, reqs[i]) {
			t.Fatalf("report %d not covered by rollups", i)
		}
	}
}

// routedRows is req's rows and totals on route r, metric values by
// dimension values.
func routedRows(t *testing.T, f *fixture, r plan.Route, req plan.RunReportRequest) map[string]string {
	t.Helper()
	out := map[string]string{}
	resp := runRouted(t, f, r, req)
	for _, row := range append(resp.Rows, resp.Totals...) {
		out[fmt.Sprint(row.DimensionValues)] = fmt.Sprint(row.MetricValues)
	}
	return out
}

// routedAll is routedRows of each of reqs.
func routedAll(t *testing.T, f *fixture, r plan.Route, reqs []plan.RunReportRequest) []map[string]string {
	t.Helper()
	out := make([]map[string]string, len(reqs))
	for i, req := range reqs {
		out[i] = routedRows(t, f, r, req)
	}
	return out
}

// sameOnRollups reports, as errors of phase, each of reqs whose rows and
// totals from the rollups differ from want (by request).
func sameOnRollups(t *testing.T, f *fixture, phase string, reqs []plan.RunReportRequest, want []map[string]string) {
	t.Helper()
	for i, req := range reqs {
		if got := routedRows(t, f, plan.RouteRollups, req); fmt.Sprint(got) != fmt.Sprint(want[i]) {
			t.Errorf("%s: report %d\n%v\nwant\n%v", phase, i, got, want[i])
		}
	}
}

// eraseBusiest erases, as a GDPR erasure does, site's visitor with the
// most rows in table (events or sessions), and returns its visitor id.
func eraseBusiest(t *testing.T, f *fixture, site uint32, table string) int64 {
	t.Helper()
	ctx := context.Background()
	var subject int64
	if err := f.pool.QueryRow(ctx, "SELECT visitor_id FROM "+table+" WHERE site_id = $1 GROUP BY 1 ORDER BY count(*) DESC, 1 LIMIT 1",
		int32(site)).Scan(&subject); err != nil {
		t.Fatal(err)
	}
	if _, err := f.store.EraseSubject(ctx, site, []uint64{uint64(subject)}, postgres.AuditEntry{Actor: "test", Action: "gdpr.erase"}); err != nil {
		t.Fatal(err)
	}
	return subject
}
