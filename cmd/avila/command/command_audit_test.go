package command

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
)

// TestAuditTrailOfOperatorActions: site, key and retention changes made
// with avila are listed in the audit trail by who made them; audit verify
// passes on the intact chain, fails naming the row after an UPDATE or a
// DELETE of one row, and catches a removed head with --head.
func TestAuditTrailOfOperatorActions(t *testing.T) {
	ctx := context.Background()
	db := migratedDB(t)
	env := map[string]string{"DATABASE_URL": db, "USER": "ops-anna"}
	code, stdout, stderr := runCLI(t, env, "site", "create", "--name", "A", "--domain", "a.example")
	if code != 0 {
		t.Fatalf("site create: %d %s", code, stderr)
	}
	site := fields(t, stdout)["property"]
	if code, _, stderr = runCLI(t, env, "site", "update", "--property", site, "--retain-events", "30d", "--retain-aggregates", "forever"); code != 0 {
		t.Fatalf("site update: %d %s", code, stderr)
	}
	code, stdout, stderr = runCLI(t, env, "key", "create", "--property", site, "--scope", "admin")
	if code != 0 {
		t.Fatalf("key create: %d %s", code, stderr)
	}
	key := strings.TrimSpace(stdout)
	if code, _, stderr = runCLI(t, env, "key", "revoke", "--id", key); code != 0 {
		t.Fatalf("key revoke: %d %s", code, stderr)
	}
	code, stdout, stderr = runCLI(t, env, "audit", "list")
	if code != 0 {
		t.Fatalf("audit list: %d %s", code, stderr)
	}
	for _, want := range []string{"cli:ops-anna", "site.create", "site.update", `"retain-events":"30d"`, "key.create", `"scope":"admin"`, "key.revoke", "head "} {
		if !strings.Contains(stdout, want) {
			t.Fatalf("audit list lacks %q:\n%s", want, stdout)
		}
	}
	head := strings.TrimPrefix(strings.TrimSpace(stdout[strings.LastIndex(stdout, "head "):]), "head ")
	code, stdout, stderr = runCLI(t, env, "audit", "verify", "--head", head)
	if code != 0 || !strings.Contains(stdout, "intact") {
		t.Fatalf("audit verify on an intact chain: %d %s %s", code, stdout, stderr)
	}
	conn, err := pgx.Connect(ctx, db)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	var id int64
	if err := conn.QueryRow(ctx, "SELECT id FROM audit_log WHERE action = 'site.update'").Scan(&id); err != nil {
		t.Fatal(err)
	}
	var detail string
	if err := conn.QueryRow(ctx, "SELECT detail FROM audit_log WHERE id = $1", id).Scan(&detail); err != nil {
		t.Fatal(err)
	}
	exec := func(sql string, args ...any) {
		t.Helper()
		if _, err := conn.Exec(ctx, sql, args...); err != nil {
			t.Fatal(err)
		}
	}
	exec("UPDATE audit_log SET detail = $2 WHERE id = $1", id, strings.Replace(detail, "30d", "3650d", 1))
	code, _, stderr = runCLI(t, env, "audit", "verify")
	if code != 1 || !strings.Contains(stderr, fmt.Sprintf("audit row %d changed", id)) {
		t.Fatalf("after an UPDATE of row %d: exit %d: %s", id, code, stderr)
	}
	exec("UPDATE audit_log SET detail = $2 WHERE id = $1", id, detail)
	if code, _, stderr = runCLI(t, env, "audit", "verify"); code != 0 {
		t.Fatalf("after undoing the UPDATE: exit %d: %s", code, stderr)
	}
	exec("DELETE FROM audit_log WHERE id = $1", id)
	code, _, stderr = runCLI(t, env, "audit", "verify")
	if code != 1 || !strings.Contains(stderr, fmt.Sprintf("audit row %d removed", id)) {
		t.Fatalf("after a DELETE of row %d: exit %d: %s", id, code, stderr)
	}
	// The newest row removed: the chain holds, the saved head does not.
	code, _, _ = runCLI(t, env, "audit", "verify", "--head", "1:"+strings.Repeat("0", 64))
	if code != 1 {
		t.Fatalf("a wrong head passed")
	}
}
