package query

import (
	"context"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/avila-analytics/avila/protocol"
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

// latePageView is a page_view of site at noon of day in the site's time
// zone, on the page whose dim_id is page in the fixture's dictionary,
// drawn from a generator seeded with seed (the caller sets its visitor and
// engagement).
func latePageView(t *testing.T, f *fixture, site uint32, day time.Time, page int32, seed uint64) protocol.Event {
	t.Helper()
	loc, err := time.LoadLocation(f.zones[site])
	if err != nil {
		t.Fatal(err)
	}
	e := randomEvent(rand.New(rand.NewPCG(seed, seed+1)), site, time.Date(day.Year(), day.Month(), day.Day(), 12, 0, 0, 0, loc))
	e.Name, e.Path = "page_view", ""
	for k, id := range f.ids[site] {
		if id == page && strings.HasPrefix(k, "p") {
			e.Path = k[1:]
		}
	}
	if e.Path == "" {
		t.Fatalf("page dim_id %d not in the fixture's dictionary", page)
	}
	return e
}
