package governance_test

import (
	"context"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/avila-analytics/avila/aggregator/governance"
	"github.com/avila-analytics/avila/storage/postgres"
)

// TestRetentionDropsDaysReportsUnchanged: a site keeping raw events 10
// days and aggregates for ever loses the older events (rows and packs)
// and their day partitions, item rows and packs with them; reports over the days kept answer as before,
// and rollup-answered reports over older days too, while raw-event reports
// there find nothing. Then with aggregates kept 1 month and a 40-day-old
// session, the sessions and rollups before go and those days read nothing.
// A dry run counts exactly what the run then removes.
func TestRetentionDropsDaysReportsUnchanged(t *testing.T) {
	ctx := context.Background()
	s := newStack(t)
	site := s.site(t, "retained")
	now := time.Now()
	rng := rand.New(rand.NewPCG(19, 4))
	events := seed(rng, site, 30, 20, now)
	old := visit(rng, site, 99<<40, now.AddDate(0, 0, -40), 3, true)
	s.write(t, append(old, events...))
	s.pack(t)
	// A late purchase on a packed day past the retention: its item is a row
	// beside the day's item packs.
	late := visit(rng, site, 98<<40, now.AddDate(0, 0, -15), 2, false)
	purchase(rng, &late[1])
	s.write(t, late)

	kept := reports("9daysAgo")
	before := make([]string, len(kept))
	for i, body := range kept {
		before[i] = s.report(t, site, body)
	}
	// A total over 30 days from the rollups, which stay.
	rollupTotal := map[string]any{"dateRanges": []map[string]any{{"startDate": "30daysAgo", "endDate": "today"}},
		"metrics": []map[string]any{{"name": "eventCount"}}}
	// Two event dimensions: read from raw events only.
	rawOld := map[string]any{"dateRanges": []map[string]any{{"startDate": "19daysAgo", "endDate": "12daysAgo"}},
		"dimensions": []map[string]any{{"name": "eventName"}, {"name": "pagePath"}}, "metrics": []map[string]any{{"name": "eventCount"}}}
	totalBefore := s.report(t, site, rollupTotal)
	if !strings.Contains(s.report(t, site, rawOld), `"rows":[`) {
		t.Fatal("no raw events 12 to 19 days ago before retention: the test would prove nothing")
	}

	if err := s.store.SetSiteRetention(ctx, site, postgres.Retention{EventsDays: 10}); err != nil {
		t.Fatal(err)
	}
	// Quarantined staged rows hold events too: one staged past the
	// retention goes, one within it stays.
	if _, err := s.db.Exec(ctx, `INSERT INTO staged_quarantine (site_id, id, events, payload, staged_at, reason)
		VALUES ($1, 1, 3, 'x', now() - interval '30 days', 'test'), ($1, 2, 4, 'y', now() - interval '1 day', 'test')`, site); err != nil {
		t.Fatal(err)
	}
	dry, err := s.store.RunRetention(ctx, now, true, "test")
	if err != nil {
		t.Fatal(err)
	}
	if len(dry.Sites) != 1 || dry.Sites[0].Quarantined != 1 {
		t.Fatalf("the dry run counted %+v, want one quarantined row", dry.Sites)
	}
	oldItems := func() (rows, packed int64) {
		t.Helper()
		if err := s.db.QueryRow(ctx, `SELECT (SELECT count(*) FROM event_items WHERE site_id = $1 AND ts < $2),
			(SELECT COALESCE(sum(items), 0) FROM item_packs WHERE site_id = $1 AND day < $2::date)`,
			site, dry.Sites[0].EventsBefore).Scan(&rows, &packed); err != nil {
			t.Fatal(err)
		}
		return rows, packed
	}
	if rows, packed := oldItems(); rows == 0 || packed == 0 || dry.Sites[0].Items != rows+packed || dry.Sites[0].ItemPacks == 0 {
		t.Fatalf("before the run: %d item rows and %d packed items past retention, the dry run counted %d items in %d packs",
			rows, packed, dry.Sites[0].Items, dry.Sites[0].ItemPacks)
	}
	reg := prometheus.NewRegistry()
	m, err := governance.NewMetrics(reg)
	if err != nil {
		t.Fatal(err)
	}
	r := &governance.Retainer{Store: s.store, Metrics: m}
	if err := r.Run(ctx, now); err != nil {
		t.Fatal(err)
	}
	var remaining int64
	if err := s.db.QueryRow(ctx, `SELECT (SELECT count(*) FROM events WHERE site_id = $1 AND ts < $2)
		+ (SELECT COALESCE(sum(events), 0) FROM event_packs WHERE site_id = $1 AND day < $2::date)`,
		site, dry.Sites[0].EventsBefore).Scan(&remaining); err != nil {
		t.Fatal(err)
	}
	gone := metricValue(t, reg, "analytics_retention_deleted_events_total")
	if len(dry.Sites) != 1 || dry.Sites[0].Events == 0 || remaining != 0 || gone != float64(dry.Sites[0].Events) {
		t.Fatalf("dry run counted %+v; after the run %d old events remain and the metric says %v went", dry.Sites, remaining, gone)
	}
	var parts int
	if err := s.db.QueryRow(ctx, `SELECT count(*) FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
		WHERE i.inhparent = 'events'::regclass AND c.relname < $1`, postgres.PartitionName(dry.Sites[0].EventsBefore)).Scan(&parts); err != nil || parts != 0 {
		t.Fatalf("%d events partitions before the cutoff remain (%v)", parts, err)
	}
	if rows, packed := oldItems(); rows != 0 || packed != 0 {
		t.Fatalf("after the run %d item rows and %d packed items past retention remain", rows, packed)
	}
	var quarantined []int64
	if rows, err := s.db.Query(ctx, "SELECT id FROM staged_quarantine WHERE site_id = $1", site); err == nil {
		quarantined, err = pgx.CollectRows(rows, pgx.RowTo[int64])
		if err != nil {
			t.Fatal(err)
		}
	} else {
		t.Fatal(err)
	}
	if len(quarantined) != 1 || quarantined[0] != 2 {
		t.Fatalf("quarantined rows after the run: %v, want only the one within retention", quarantined)
	}
	if err := s.db.QueryRow(ctx, `SELECT count(*) FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
		WHERE i.inhparent = 'event_items'::regclass AND c.relname < $1`, postgres.ItemsPartitionName(dry.Sites[0].EventsBefore)).Scan(&parts); err != nil || parts != 0 {
		t.Fatalf("%d event_items partitions before the cutoff remain (%v)", parts, err)
	}
	for i, body := range kept {
		if got := s.report(t, site, body); got != before[i] {
			t.Errorf("report %d over the days kept changed:\n got %s\nwant %s", i, got, before[i])
		}
	}
	if got := s.report(t, site, rollupTotal); got != totalBefore {
		t.Errorf("rollup total over 30 days changed although rollups are kept:\n got %s\nwant %s", got, totalBefore)
	}
	if got := s.report(t, site, rawOld); strings.Contains(got, `"rows":[`) {
		t.Errorf("raw events of days past retention still reported: %s", got)
	}

	// Aggregates: one month.
	if err := s.store.SetSiteRetention(ctx, site, postgres.Retention{EventsDays: 10, AggregatesMonths: 1}); err != nil {
		t.Fatal(err)
	}
	run, err := s.store.RunRetention(ctx, now, false, "test")
	if err != nil {
		t.Fatal(err)
	}
	if len(run.Sites) != 1 || run.Sites[0].Sessions == 0 || run.Sites[0].RollupRows == 0 {
		t.Fatalf("aggregates retention removed %+v, want the 40-day-old session and its rollups", run.Sites)
	}
	oldRange := map[string]any{"dateRanges": []map[string]any{{"startDate": "45daysAgo", "endDate": "35daysAgo"}},
		"metrics": []map[string]any{{"name": "eventCount"}, {"name": "sessions"}}}
	if got := s.report(t, site, oldRange); strings.Contains(got, `"rows":[`) {
		t.Errorf("days past every retention still reported: %s", got)
	}
	for i, body := range kept {
		if got := s.report(t, site, body); got != before[i] {
			t.Errorf("report %d over the days kept changed after aggregates retention:\n got %s\nwant %s", i, got, before[i])
		}
	}
	rows, err := s.store.AuditRows(ctx, 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	runs := 0
	for _, r := range rows {
		if r.Action == "retention.run" && r.Site == site {
			runs++
		}
	}
	if runs != 2 {
		t.Fatalf("%d retention.run audit rows, want 2", runs)
	}
}

// metricValue reads a counter without labels from reg.
func metricValue(t *testing.T, reg *prometheus.Registry, name string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == name && len(mf.GetMetric()) == 1 {
			return mf.GetMetric()[0].GetCounter().GetValue()
		}
	}
	t.Fatalf("no metric %s", name)
	return 0
}
