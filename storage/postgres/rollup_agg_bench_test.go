package postgres

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/avila-analytics/avila/internal/benchtraffic"
	"github.com/avila-analytics/avila/protocol"
)

// rollupBenchRows are n event rows of the end-to-end bench's shape (as
// aggregator/write's pipelineBatches): 2048 visitors, runs of 20 events
// each in one session, page views, scrolls, engagement and clicks, pages
// skewed towards 2000 popular ones, a quarter of the page views from one
// of 300 referrers.
func rollupBenchRows(n int) []EventRow {
	first := time.Date(2026, 12, 6, 10, 0, 0, 0, time.UTC)
	rows := make([]EventRow, n)
	for j := range rows {
		v := (j / 20) % 2048
		h := uint64(j)*0x9e3779b97f4a7c15 ^ uint64(j)>>7
		page := int32(benchtraffic.Page(h))
		r := EventRow{Site: 1, TS: first.Add(time.Duration(j) * 40 * time.Microsecond), Visitor: 1 + int64(v)*7919,
			Session: 1_718_000_000 + int64(v), DayActive: true, SessionTraffic: 1 + int32(v%300), SessionLanding: 10 + int32(v%2000)}
		r.Dims[DimPagePath-1], r.Dims[DimTitle-1], r.Dims[DimHost-1] = 10+page, 5000+page, 3
		r.Dims[DimLanguage-1], r.Dims[DimScreen-1], r.Dims[DimCountry-1], r.Dims[DimCity-1] = 4, 5, 6, 7
		r.Dims[DimBrowser-1], r.Dims[DimOS-1], r.Dims[DimDevice-1] = 8, 9, 10
		switch j % 4 {
		case 0:
			r.Dims[DimEventName-1], r.PageView = 1, true
			if (h>>40)%4 == 0 {
				r.Dims[DimReferrer-1] = 8000 + int32((h>>44)%300)
			}
			if j%20 == 0 {
				r.Flags |= int16(protocol.FlagSessionStart)
			}
		case 1:
			r.Dims[DimEventName-1] = 2
		case 2:
			r.Dims[DimEventName-1], r.Engage, r.Flags = 3, int32(1000+j%20000), int16(protocol.FlagEngaged)
		case 3:
			r.Dims[DimEventName-1] = 4
		}
		rows[j] = r
	}
	return rows
}

// BenchmarkRollupAggregate measures what a derivation of 25,000 events of
// the end-to-end bench's traffic does in Go for rollup_days before it
// reads the stored rows: every event into its cells (addRows, visitors
// collected per cell) and the cells' delta sketches built (settle).
func BenchmarkRollupAggregate(b *testing.B) {
	rows := rollupBenchRows(25_000)
	b.ReportAllocs()
	for b.Loop() {
		agg := make(rollupAgg)
		hours := &hourCache{loc: time.UTC}
		last := new(rollupSlots)
		agg.addRows(rows, hours, last)
		agg.settle()
	}
}

// BenchmarkAddRollups measures the rollups of WriteEvents (addRollups,
// without the COPY) for 25,000 events of the end-to-end bench's traffic
// (rollupBenchRows, today) over rollup rows a derivation of the same
// traffic stored before, half of whose visitors
// come back: every event into its cells, the user-days read, the stored
// cells read, their sketches merged, the rows updated, the user-days
// written. Each iteration rolls its transaction back, so every one
// derives over the same stored rows. It counts the Go side (callgrind of
// the test binary leaves PostgreSQL's work out).
func BenchmarkAddRollups(b *testing.B) {
	ctx := context.Background()
	s := newStore(b)
	site, err := s.CreateSite(ctx, SiteSpec{Name: "bench"})
	if err != nil {
		b.Fatal(err)
	}
	today := time.Now().UTC().Truncate(24 * time.Hour).Add(10 * time.Hour)
	rowsOf := func(shift int64) []EventRow {
		rows := rollupBenchRows(25_000)
		for i := range rows {
			r := &rows[i]
			r.Site = int32(site.ID)
			r.TS = today.Add(r.TS.Sub(rollupBenchRows(1)[0].TS))
			r.Visitor += shift * 7919
			r.DayActive = false // readUserDays sets it
		}
		return rows
	}
	if err := s.EnsurePartitions(ctx, today, today); err != nil {
		b.Fatal(err)
	}
	d, err := s.BeginDerive(ctx, site.ID)
	if err != nil {
		b.Fatal(err)
	}
	if err := d.addRollups(ctx, rowsOf(0), nil, nil, false); err != nil {
		b.Fatal(err)
	}
	if err := d.Commit(ctx); err != nil {
		b.Fatal(err)
	}
	rows := rowsOf(1024)
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		b.StopTimer()
		in := slices.Clone(rows)
		d, err := s.BeginDerive(ctx, site.ID)
		if err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
		if err := d.addRollups(ctx, in, nil, nil, false); err != nil {
			b.Fatal(err)
		}
		b.StopTimer()
		d.Rollback(ctx)
		b.StartTimer()
	}
}
