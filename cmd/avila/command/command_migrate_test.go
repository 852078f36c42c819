package command

import (
	"strings"
	"testing"

	"github.com/avila-analytics/avila/internal/testenv"
)

func TestMigrate(t *testing.T) {
	db := testenv.PostgresURL(t)
	env := map[string]string{"DATABASE_URL": db}

	// Before: the schema is missing, and the error says what to do.
	code, _, stderr := runCLI(t, env, "site", "list")
	if code != 1 || !strings.Contains(stderr, "run avila migrate") {
		t.Fatalf("site list on an empty database: exit %d, stderr %q; want 1 and a hint to migrate", code, stderr)
	}

	code, _, stderr = runCLI(t, env, "migrate")
	if code != 0 {
		t.Fatalf("migrate: exit %d: %s", code, stderr)
	}
	if !strings.Contains(stderr, "database migrated") {
		t.Errorf("migrate did not report the migration: %s", stderr)
	}
	// Again: nothing left to do, still success.
	if code, _, stderr = runCLI(t, env, "migrate"); code != 0 {
		t.Fatalf("second migrate: exit %d: %s", code, stderr)
	}
	if strings.Contains(stderr, "database migrated") {
		t.Errorf("second migrate applied migrations again: %s", stderr)
	}
	if code, _, stderr = runCLI(t, env, "site", "list"); code != 0 {
		t.Fatalf("site list after migrate: exit %d: %s", code, stderr)
	}
}

func TestMigrateDatabaseURLSources(t *testing.T) {
	// --database-url wins over the environment; AVILA_DATABASE_URL over DATABASE_URL.
	good := testenv.PostgresURL(t)
	bad := "postgres://postgres@127.0.0.1:1/none?sslmode=disable"
	f := func(env map[string]string, args []string, wantCode int) {
		t.Helper()
		code, _, stderr := runCLI(t, env, append([]string{"migrate"}, args...)...)
		if code != wantCode {
			t.Fatalf("env %v args %q: exit %d, want %d: %s", env, args, code, wantCode, stderr)
		}
	}
	f(map[string]string{"DATABASE_URL": bad}, []string{"--database-url", good}, 0)
	f(map[string]string{"DATABASE_URL": bad, "AVILA_DATABASE_URL": good}, nil, 0)
	f(map[string]string{"DATABASE_URL": good, "AVILA_DATABASE_URL": bad}, nil, 1)
	f(map[string]string{"DATABASE_URL": good}, []string{"--database-url", bad}, 1)
}
