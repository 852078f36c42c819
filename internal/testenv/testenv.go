package testenv

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net/url"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/avila-analytics/avila/internal/pgserver"
)

// setupTimeout bounds starting a throwaway server or creating a database.
const setupTimeout = 2 * time.Minute

var (
	mu       sync.Mutex
	pgBase   string // server URL whose database is replaced per test
	pgErr    error
	pgOnce   bool
	teardown []func()
)

// Run runs the tests and then stops the throwaway servers they started.
func Run(m *testing.M) int {
	code := m.Run()
	mu.Lock()
	defer mu.Unlock()
	for i := len(teardown) - 1; i >= 0; i-- {
		teardown[i]()
	}
	teardown = nil
	return code
}

// PostgresURL returns the URL of a new empty database that is dropped when
// t ends.
func PostgresURL(t testing.TB) string {
	t.Helper()
	base, err := postgresServer()
	if err != nil {
		t.Fatalf("testenv: %v", err)
	}
	name := "avila_test_" + randomHex(6)
	ctx, cancel := context.WithTimeout(context.Background(), setupTimeout)
	defer cancel()
	if err := pgserver.CreateDatabase(ctx, base, name); err != nil {
		t.Fatalf("testenv: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), setupTimeout)
		defer cancel()
		if err := pgserver.DropDatabase(ctx, base, name); err != nil {
			t.Logf("testenv: %v", err)
		}
	})
	u, _ := url.Parse(base) // parsed once already in postgresServer
	u.Path = "/" + name
	return u.String()
}

// postgresServer returns the URL of the server to create databases on,
// starting a throwaway one at the first call when DATABASE_URL is unset.
func postgresServer() (string, error) {
	mu.Lock()
	defer mu.Unlock()
	if pgOnce {
		return pgBase, pgErr
	}
	pgOnce = true
	if env := os.Getenv("DATABASE_URL"); env != "" {
		u, err := url.Parse(env)
		if err != nil || (u.Scheme != "postgres" && u.Scheme != "postgresql") {
			pgErr = fmt.Errorf("DATABASE_URL must be a postgres:// URL, got %q", env)
			return "", pgErr
		}
		pgBase = u.String()
		return pgBase, nil
	}
	dir, err := serverDir("avila-testenv-pg-")
	if err != nil {
		pgErr = err
		return "", pgErr
	}
	ctx, cancel := context.WithTimeout(context.Background(), setupTimeout)
	defer cancel()
	srv, err := pgserver.Start(ctx, pgserver.Options{Dir: dir + "/data", NoFsync: true})
	if err != nil {
		os.RemoveAll(dir)
		pgErr = fmt.Errorf("no DATABASE_URL set, and starting a throwaway PostgreSQL failed: %w", err)
		return "", pgErr
	}
	teardown = append(teardown, func() {
		ctx, cancel := context.WithTimeout(context.Background(), setupTimeout)
		defer cancel()
		if err := srv.StopImmediate(ctx); err != nil {
			fmt.Fprintln(os.Stderr, "testenv:", err)
		}
		os.RemoveAll(dir)
	})
	pgBase = srv.URL()
	return pgBase, nil
}

// serverDir makes a temporary directory for throwaway PostgreSQL data
// directories. MkdirTemp makes it 0700; the server may run as another user
// (see pgserver), which needs to reach its data directory inside.
func serverDir(pattern string) (string, error) {
	dir, err := os.MkdirTemp("", pattern)
	if err != nil {
		return "", fmt.Errorf("temporary directory for PostgreSQL: %w", err)
	}
	if err := os.Chmod(dir, 0o711); err != nil {
		os.RemoveAll(dir)
		return "", fmt.Errorf("temporary directory for PostgreSQL: %w", err)
	}
	return dir, nil
}

// randomHex returns n random bytes in hex: unique names for databases and
// key prefixes.
func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// Prefix returns a key prefix unique to t, for tests that share a Redis
// server: "test:<random>:".
func Prefix(t testing.TB) string {
	return "test:" + strings.ToLower(randomHex(6)) + ":"
}
