package postgres

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
)

// appendN appends n audit rows after what the store holds (its migration's).
func appendN(t *testing.T, s *Store, n int) []AuditRow {
	t.Helper()
	var rows []AuditRow
	for i := range n {
		r, err := s.AppendAudit(context.Background(), AuditEntry{Actor: "cli:test", Action: "site.update", Site: uint32(i + 1),
			Detail: map[string]any{"i": i, "dnt": "drop"}})
		if err != nil {
			t.Fatal(err)
		}
		rows = append(rows, r)
	}
	return rows
}

func verifyBreak(t *testing.T, s *Store) *AuditBreak {
	t.Helper()
	v, err := s.VerifyAudit(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return v.Break
}

// TestAuditVerifyNamesTheRowChangedOrRemoved: an intact chain verifies;
// each kind of tampering with one row is found and named.
func TestAuditVerifyNamesTheRowChangedOrRemoved(t *testing.T) {
	ctx := context.Background()
	s := newStore(t)
	rows := appendN(t, s, 6)
	if b := verifyBreak(t, s); b != nil {
		t.Fatalf("intact chain: %v", b)
	}
	target := rows[2].ID
	restore := func() {
		t.Helper()
		r := rows[2]
		mustExecT(t, s, "DELETE FROM audit_log WHERE id = $1", r.ID)
		mustExecT(t, s, "INSERT INTO audit_log (id, at, actor, action, site_id, detail, prev_hash, hash) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
			r.ID, r.At, r.Actor, r.Action, int32(r.Site), r.Detail, r.PrevHash, r.Hash)
		if b := verifyBreak(t, s); b != nil {
			t.Fatalf("after restoring row %d: %v", r.ID, b)
		}
	}
	for _, tc := range []struct {
		name, sql string
		args      []any
		want      string
	}{
		{"detail edited", "UPDATE audit_log SET detail = '{\"dnt\":\"ignore\",\"i\":2}' WHERE id = $1", []any{target}, "changed"},
		{"actor edited", "UPDATE audit_log SET actor = 'cli:someone-else' WHERE id = $1", []any{target}, "changed"},
		{"time edited", "UPDATE audit_log SET at = at - interval '1 day' WHERE id = $1", []any{target}, "changed"},
		{"row deleted", "DELETE FROM audit_log WHERE id = $1", []any{target}, "removed"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			mustExecT(t, s, tc.sql, tc.args...)
			b := verifyBreak(t, s)
			if b == nil || b.ID != target || !strings.Contains(b.Reason, tc.want) {
				t.Fatalf("got break %v, want row %d %s", b, target, tc.want)
			}
			restore()
		})
	}
	// A forger who rewrites a row and recomputes its hash is caught by the
	// next row, which still chains to the old hash.
	r := rows[2]
	r.Detail = `{"dnt":"ignore","i":2}`
	r.Hash = auditHash(&r)
	mustExecT(t, s, "UPDATE audit_log SET detail = $2, hash = $3 WHERE id = $1", r.ID, r.Detail, r.Hash)
	if b := verifyBreak(t, s); b == nil || b.ID != target {
		t.Fatalf("rewritten row with a recomputed hash: got %v, want row %d", b, target)
	}
	restore()
	// Removing the newest row leaves a valid shorter chain whose head moved.
	v, err := s.VerifyAudit(ctx)
	if err != nil || v.Break != nil {
		t.Fatal(v.Break, err)
	}
	mustExecT(t, s, "DELETE FROM audit_log WHERE id = $1", rows[5].ID)
	v2, err := s.VerifyAudit(ctx)
	if err != nil || v2.Break != nil || v2.Rows != v.Rows-1 || string(v2.Head) == string(v.Head) {
		t.Fatalf("after deleting the head: %+v %v (before %+v)", v2, err, v)
	}
}

// TestAuditAppendsConcurrently: appends from many goroutines form one
// chain with ids 1..n.
func TestAuditAppendsConcurrently(t *testing.T) {
	ctx := context.Background()
	s := newStore(t)
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := range 10 {
				if _, err := s.AppendAudit(ctx, AuditEntry{Actor: fmt.Sprintf("g%d", g), Action: "key.create", Detail: map[string]any{"i": i}}); err != nil {
					t.Error(err)
				}
			}
		})
	}
	wg.Wait()
	v, err := s.VerifyAudit(ctx)
	if err != nil || v.Break != nil {
		t.Fatal(v.Break, err)
	}
	var n int64
	if err := s.pool.QueryRow(ctx, "SELECT count(*) FROM audit_log").Scan(&n); err != nil || v.Rows != n || n < 80 {
		t.Fatalf("verified %d rows of %d (%v), want all, at least 80", v.Rows, n, err)
	}
}

func mustExecT(t *testing.T, s *Store, sql string, args ...any) {
	t.Helper()
	if _, err := s.pool.Exec(context.Background(), sql, args...); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
}
