package postgres

import (
	"context"
	"testing"
	"time"
)

// TestStatementsPlannedWithTheirParameters: the store's statements are
// planned with their parameters at every execution, never by a generic
// plan kept after the first few (see connect): a derivation's sessions
// upsert, run again and again on the pool's connections with arrays of
// 2000 sessions over partitioned days, made custom plans only.
func TestStatementsPlannedWithTheirParameters(t *testing.T) {
	ctx := context.Background()
	s := newStore(t)
	site, err := s.CreateSite(ctx, SiteSpec{Name: "plans"})
	if err != nil {
		t.Fatal(err)
	}
	day := time.Now().UTC().Truncate(24 * time.Hour)
	if err := s.EnsurePartitions(ctx, day.AddDate(0, 0, -30), day.Add(24*time.Hour)); err != nil {
		t.Fatal(err)
	}
	rows := make([]SessionRow, 2000)
	for i := range rows {
		v := int64(i)
		rows[i] = SessionRow{Site: int32(site.ID), TS: day.Add(time.Duration(v) * time.Second), Last: day.Add(time.Hour),
			Visitor: 1000 + v, ID: 7000 + v, Events: 1, First: &[numDimKinds]int32{}}
	}
	const runs = 24 // over the pool's few connections: several run it more than five times
	for range runs {
		d, err := s.BeginDerive(ctx, site.ID)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := d.UpsertSessions(ctx, rows); err != nil {
			t.Fatal(err)
		}
		if err := d.Commit(ctx); err != nil {
			t.Fatal(err)
		}
	}
	conns := s.pool.AcquireAllIdle(ctx)
	var generic, custom int64
	for _, c := range conns {
		var g, k int64
		err := c.QueryRow(ctx, `SELECT coalesce(sum(generic_plans), 0), coalesce(sum(custom_plans), 0) FROM pg_prepared_statements
			WHERE cardinality(parameter_types) > 0`).Scan(&g, &k)
		c.Release()
		if err != nil {
			t.Fatal(err)
		}
		generic, custom = generic+g, custom+k
	}
	// A statement without parameters has only its generic plan.
	if generic != 0 || custom < runs {
		t.Fatalf("the pool's prepared statements with parameters ran %d generic and %d custom plans, want none generic and at least %d custom",
			generic, custom, runs)
	}
}
