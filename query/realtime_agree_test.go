package query

import (
	"context"
	"encoding/json"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/avila-analytics/avila/protocol"
	"github.com/avila-analytics/avila/query/engine/realtime"
	"github.com/avila-analytics/avila/query/plan"
	"github.com/avila-analytics/avila/storage/redis"
)

// TestRealtimeAgreesWithReports: over events of the last 30 minutes,
// realtime's activeUsers, eventCount and screenPageViews equal today's
// report from the events and from the rollups, and the oracle's: active
// users by GA4's rule (engaged session, first visit or engagement time) in
// both, so the last 30 minutes never show more users than a longer range.
func TestRealtimeAgreesWithReports(t *testing.T) {
	f := newFixture(t, 0)
	rng := rand.New(rand.NewPCG(5, 6))
	var events []protocol.Event
	for range 80 {
		e := protocol.Event{Site: 3, Visitor: uint64(1+rng.IntN(15)) << 58,
			TimeMicros: fixtureNow.Add(-time.Duration(rng.Int64N(int64(25 * time.Minute)))).Truncate(time.Microsecond).UnixMicro(),
			Name:       []string{"page_view", "page_view", "click", "scroll"}[rng.IntN(4)], Path: "/p",
			Device: []string{"desktop", "mobile", "tablet"}[rng.IntN(3)], Country: "US"}
		switch rng.IntN(8) {
		case 0:
			e.Flags |= protocol.FlagFirstVisit
		case 1:
			e.Flags |= protocol.FlagEngaged
		case 2:
			e.EngageMs = 1 + rng.Int64N(5000)
		}
		events = append(events, e)
	}
	f.events = events
	if _, err := f.writeBatch(context.Background(), "rt", 1, events, nil); err != nil {
		t.Fatal(err)
	}
	markSessions(f.events, []uint32{3})
	rt := redis.NewRealtime(redis.RealtimeOptions{Now: func() time.Time { return fixtureNow }})
	rt.Record(context.Background(), events)
	h := newHandler(Options{Logger: slog.New(slog.NewTextHandler(t.Output(), nil)), Now: func() time.Time { return fixtureNow }, Realtime: rt},
		f.pool, stubKeys{testKey: {3}})
	reports, eventsOnly, rollups := f.handler(t), f.routedHandler(t, plan.RouteEvents), f.routedHandler(t, plan.RouteRollups)

	visitors := map[uint64]bool{}
	for _, e := range events {
		visitors[e.Visitor] = true
	}
	for _, d := range [][]string{nil, {"deviceCategory"}} {
		req := plan.RunReportRequest{Dimensions: dims(d...), Metrics: mets("activeUsers", "eventCount", "screenPageViews"),
			DateRanges: []plan.DateRange{{StartDate: "today", EndDate: "today"}}}
		want := checkOracle(t, f, reports, 3, req, false)
		checkOracle(t, f, eventsOnly, 3, req, false)
		if !f.coveredByRollups(t, 3, req) {
			t.Fatalf("%v: the rollups should answer today", d)
		}
		checkOracle(t, f, rollups, 3, req, false)

		body, err := json.Marshal(realtime.RunRealtimeReportRequest{Dimensions: req.Dimensions, Metrics: req.Metrics})
		if err != nil {
			t.Fatal(err)
		}
		code, out := postRealtime(t, h, "3", testKey, string(body))
		if code != http.StatusOK {
			t.Fatalf("realtime: %d %s", code, out)
		}
		var got realtime.RunRealtimeReportResponse
		if err := json.Unmarshal(out, &got); err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(want.Rows, got.Rows); diff != "" {
			t.Fatalf("realtime by %v differs from the reports (-reports +realtime):\n%s", d, diff)
		}
		if d == nil {
			if active := number(t, got.Rows[0].MetricValues[0].Value); active == 0 || int(active) >= len(visitors) {
				t.Fatalf("%v active users of %d visitors: the seed should hold both kinds", active, len(visitors))
			}
		}
	}
}
