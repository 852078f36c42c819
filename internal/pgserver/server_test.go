package pgserver

import (
	"context"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
)

// tempDir is a directory the server's user can reach even when the test
// runs as root (t.TempDir's parents are private to the caller).
func tempDir(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "avila-pgserver-test-")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(dir, 0o711); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	return dir
}

func query(t *testing.T, url, sql string) string {
	t.Helper()
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	var s string
	if err := conn.QueryRow(ctx, sql).Scan(&s); err != nil {
		t.Fatal(err)
	}
	return s
}

// A committed row survives a clean restart and a crash (immediate stop),
// and a second Start on the same directory finds the cluster made by the
// first. The server runs with the settings it was given, restarted too.
func TestStartStopCrashKeepsData(t *testing.T) {
	ctx := context.Background()
	dir := filepath.Join(tempDir(t), "pg")
	s, err := Start(ctx, Options{Dir: dir, Settings: IngestSettings})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Stop(context.Background()) })
	url, err := s.CreateDatabase(ctx, "kept")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(url, "/kept?") {
		t.Fatalf("database URL %s does not name the database", url)
	}
	query(t, url, `WITH c AS (SELECT 1) SELECT 'x'`) // the database answers
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := conn.Exec(ctx, `CREATE TABLE t AS SELECT 'committed'::text AS v`); err != nil {
		t.Fatal(err)
	}
	conn.Close(ctx)
	if err := s.StopImmediate(ctx); err != nil {
		t.Fatal(err)
	}
	if err := s.Start(ctx); err != nil {
		t.Fatal(err)
	}
	if got := query(t, url, `SELECT v FROM t`); got != "committed" {
		t.Fatalf("after crash: %q", got)
	}
	if got := query(t, url, `SELECT current_setting('max_wal_size') || ' ' || current_setting('min_wal_size')`); got != "4GB 1GB" {
		t.Fatalf("max_wal_size and min_wal_size after a restart: %q, want the IngestSettings' 4GB 1GB", got)
	}
	if err := s.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	again, err := Start(ctx, Options{Dir: dir, Port: s.Port()})
	if err != nil {
		t.Fatal(err)
	}
	if got := query(t, url, `SELECT v FROM t`); got != "committed" {
		t.Fatalf("after clean restart: %q", got)
	}
	// A server left running (its owner was killed) is taken over, not a
	// startup failure.
	third, err := Start(ctx, Options{Dir: dir})
	if err != nil {
		t.Fatalf("start over a running server: %v", err)
	}
	if third.Port() == again.Port() {
		t.Fatalf("expected a new free port")
	}
	if got := query(t, third.databaseURL("kept"), `SELECT v FROM t`); got != "committed" {
		t.Fatalf("after takeover: %q", got)
	}
	if err := third.Stop(ctx); err != nil {
		t.Fatal(err)
	}
}

// A setting that is not one shell word of name=value is refused before
// anything starts, naming it.
func TestBadSettingIsClearError(t *testing.T) {
	for _, set := range []string{"max_wal_size", "max_wal_size=4GB -c fsync=off", "x='y'", "=1"} {
		_, err := Start(context.Background(), Options{Dir: filepath.Join(tempDir(t), "pg"), Settings: []string{set}})
		if err == nil || !strings.Contains(err.Error(), strconv.Quote(set)) {
			t.Errorf("setting %q: %v, want an error naming it", set, err)
		}
	}
}

// As root, a data directory the server's user cannot reach is a clear error
// naming the directory that blocks it.
func TestUnreachableDirIsClearError(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Log("not root: the server runs as the caller, so every directory the caller made is reachable")
		return
	}
	private := t.TempDir() // 0700, owned by root
	_, err := Start(context.Background(), Options{Dir: filepath.Join(private, "pg")})
	if err == nil {
		t.Fatal("expected an error")
	}
	if !strings.Contains(err.Error(), "cannot reach") || !strings.Contains(err.Error(), "chmod o+x") {
		t.Fatalf("unclear error: %v", err)
	}
}
