package command

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/avila-analytics/avila/storage/postgres"
)

func TestKeyCreateListRevoke(t *testing.T) {
	ctx := context.Background()
	db := migratedDB(t)
	env := map[string]string{"DATABASE_URL": db}
	code, stdout, stderr := runCLI(t, env, "site", "create", "--name", "A", "--domain", "a.example")
	if code != 0 {
		t.Fatalf("site create: %d %s", code, stderr)
	}
	a := fields(t, stdout)["property"]
	code, stdout, stderr = runCLI(t, env, "site", "create", "--name", "B", "--domain", "b.example")
	if code != 0 {
		t.Fatalf("site create: %d %s", code, stderr)
	}
	b := fields(t, stdout)["property"]

	code, stdout, stderr = runCLI(t, env, "key", "create", "--property", a+","+b, "--name", "reports")
	if code != 0 {
		t.Fatalf("key create: exit %d: %s", code, stderr)
	}
	key := strings.TrimSpace(stdout)
	if !strings.HasPrefix(key, "avk_") || strings.Contains(key, "\n") {
		t.Fatalf("key create printed %q; want the key alone", stdout)
	}
	if !strings.Contains(stderr, "cannot be shown again") {
		t.Errorf("key create did not warn that the key is shown once: %q", stderr)
	}
	store, err := postgres.Open(ctx, db, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	ids, err := store.LookupAPIKey(ctx, key)
	if err != nil || len(ids) != 2 {
		t.Fatalf("printed key does not open both properties: %v, %v", ids, err)
	}

	// AVILA_PROPERTY as the fallback of --property.
	env["AVILA_PROPERTY"] = b
	if code, _, stderr = runCLI(t, env, "key", "create"); code != 0 {
		t.Fatalf("key create from env: exit %d: %s", code, stderr)
	}
	delete(env, "AVILA_PROPERTY")
	if code, _, stderr = runCLI(t, env, "key", "create", "--property", "999999"); code != 1 || !strings.Contains(stderr, "avila site list") {
		t.Fatalf("key for a missing property: exit %d: %s", code, stderr)
	}

	list := func() [][]string {
		t.Helper()
		code, stdout, stderr := runCLI(t, env, "key", "list")
		if code != 0 {
			t.Fatalf("key list: exit %d: %s", code, stderr)
		}
		if strings.Contains(stdout, key) {
			t.Fatal("key list shows a whole key")
		}
		var rows [][]string
		for i, line := range strings.Split(strings.TrimSpace(stdout), "\n") {
			if i > 0 {
				rows = append(rows, strings.Fields(line))
			}
		}
		return rows
	}
	rows := list()
	if len(rows) != 2 {
		t.Fatalf("key list: %d keys, want 2: %q", len(rows), rows)
	}
	prefix := key[:postgres.KeyPrefixLen]
	if r := rows[0]; r[0] != prefix || r[1] != "reports" || r[2] != a+","+b || r[len(r)-1] != "-" {
		t.Errorf("key list first row %q; want id %s, name reports, properties %s,%s, not revoked", r, prefix, a, b)
	}
	if r := rows[1]; r[1] != "-" || r[2] != b {
		t.Errorf("key list second row %q; want no name, property %s", r, b)
	}

	code, stdout, stderr = runCLI(t, env, "key", "revoke", "--id", prefix)
	if code != 0 || strings.TrimSpace(stdout) != "revoked "+prefix {
		t.Fatalf("key revoke: exit %d, stdout %q: %s", code, stdout, stderr)
	}
	if _, err := store.LookupAPIKey(ctx, key); !errors.Is(err, postgres.ErrNotFound) {
		t.Fatalf("revoked key still opens: %v", err)
	}
	if r := list()[0]; r[len(r)-1] == "-" {
		t.Errorf("key list shows the revoked key as live: %q", r)
	}
	if r := list()[1]; r[len(r)-1] != "-" {
		t.Errorf("revoking one key revoked another: %q", r)
	}
	code, _, stderr = runCLI(t, env, "key", "revoke", "--id", prefix)
	if code != 1 || !strings.Contains(stderr, "no live key") {
		t.Fatalf("revoking twice: exit %d: %s", code, stderr)
	}
	code, _, stderr = runCLI(t, env, "key", "revoke", "--id", "avk_short")
	if code != 1 || !slices.ContainsFunc([]string{"prefix", "whole key"}, func(s string) bool { return strings.Contains(stderr, s) }) {
		t.Fatalf("revoking a malformed id: exit %d: %s", code, stderr)
	}
}
