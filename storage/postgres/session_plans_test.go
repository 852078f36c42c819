package postgres

import (
	"context"
	"encoding/json"
	"testing"
	"time"
)

// TestSessionStatementsUnnestOnce: the statements that read and update a
// derivation's stored sessions unnest their arrays once, whatever the
// day's statistics say. Here 2 000 sessions begun within 0.3 s after the
// day's partition (50 000 sessions) was last analyzed, as a busy site's
// are between two analyzes: with bounds as narrow as their starts the
// planner estimated one row between them and unnested the arrays again
// for every session row, 2 000 times (startBounds).
func TestSessionStatementsUnnestOnce(t *testing.T) {
	ctx := context.Background()
	s := newStore(t)
	site, err := s.CreateSite(ctx, SiteSpec{Name: "plans"})
	if err != nil {
		t.Fatal(err)
	}
	day := time.Now().UTC().Truncate(24 * time.Hour)
	if err := s.EnsurePartitions(ctx, day, day.Add(24*time.Hour)); err != nil {
		t.Fatal(err)
	}
	part := "sessions_p" + day.Format("20060102")
	mustExecT(t, s, "ALTER TABLE "+part+" SET (autovacuum_enabled = false)") // its statistics stay as analyzed here
	rows := func(from, n int, start time.Time, step time.Duration) []SessionRow {
		out := make([]SessionRow, n)
		for i := range out {
			v := int64(from + i)
			out[i] = SessionRow{Site: int32(site.ID), TS: start.Add(time.Duration(i) * step), Last: start.Add(time.Hour),
				Visitor: 1000 + v, ID: 7000 + v, Events: 1, First: &[numDimKinds]int32{}}
		}
		return out
	}
	upsert := func(rows []SessionRow) { upsertSessionsCommitted(t, s, site.ID, rows) }
	upsert(rows(0, 50_000, day, 864*time.Millisecond)) // the day's first twelve hours
	mustExecT(t, s, "ANALYZE "+part)
	fresh := rows(50_000, 2000, day.Add(13*time.Hour), 150*time.Microsecond)
	upsert(fresh) // stored now, past the statistics

	n := len(fresh)
	sites, visitors, ids, starts := make([]int32, n), make([]int64, n), make([]int64, n), make([]time.Time, n)
	all := make([]int32, n)
	for i, r := range fresh {
		sites[i], visitors[i], ids[i], starts[i], all[i] = r.Site, r.Visitor, r.ID, r.TS, int32(i)
	}
	from, to := startBounds(fresh[0].TS, fresh[n-1].TS)
	for _, st := range []struct {
		name, sql string
		args      []any
	}{
		{"read", sessionsBeforeSQL, []any{sites, visitors, ids, starts, from, to}},
		{"update", updateSessionsSQL, append(sessionArrays(fresh, all, true), from, to)},
	} {
		tx, err := s.pool.Begin(ctx)
		if err != nil {
			t.Fatal(err)
		}
		var plan []struct{ Plan planNode }
		var js []byte
		err = tx.QueryRow(ctx, "EXPLAIN (ANALYZE, FORMAT JSON) "+st.sql, st.args...).Scan(&js)
		tx.Rollback(ctx)
		if err != nil {
			t.Fatalf("%s: %v", st.name, err)
		}
		if err := json.Unmarshal(js, &plan); err != nil {
			t.Fatal(err)
		}
		if got := unnestLoops(plan[0].Plan); got != 1 {
			t.Errorf("%s: the arrays are unnested %d times, want once:\n%s", st.name, got, js)
		}
	}
}

// planNode is a node of EXPLAIN's JSON form.
type planNode struct {
	NodeType string     `json:"Node Type"`
	Loops    int        `json:"Actual Loops"`
	Plans    []planNode `json:"Plans"`
}

// unnestLoops is how many times the plan's ProjectSet nodes (the arrays'
// unnest) ran, the most of any.
func unnestLoops(n planNode) int {
	most := 0
	if n.NodeType == "ProjectSet" {
		most = n.Loops
	}
	for _, c := range n.Plans {
		most = max(most, unnestLoops(c))
	}
	return most
}
