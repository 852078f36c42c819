package postgres

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/avila-analytics/avila/internal/testenv"
	"github.com/jackc/pgx/v5"
)

func TestMain(m *testing.M) { os.Exit(testenv.Run(m)) }

// newStore opens a migrated store on a fresh database.
func newStore(t testing.TB) *Store {
	t.Helper()
	ctx := context.Background()
	s, err := Open(ctx, testenv.PostgresURL(t), slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	if err := s.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	return s
}

// closedPortURL is a database URL nothing listens on.
func closedPortURL(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return "postgres://postgres@" + addr + "/postgres?sslmode=disable&connect_timeout=2"
}

func TestOpenRefusedSaysWhatToDo(t *testing.T) {
	url := closedPortURL(t)
	_, err := Open(context.Background(), url, nil)
	if err == nil {
		t.Fatal("Open on a closed port succeeded")
	}
	for _, want := range []string{"postgres: connect 127.0.0.1:", "connection refused", "is PostgreSQL running? set DATABASE_URL"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q lacks %q", err, want)
		}
	}
}

func TestMigrateTwiceAndConcurrently(t *testing.T) {
	s := newStore(t)
	ctx := context.Background()
	if err := s.Migrate(ctx); err != nil {
		t.Fatalf("second Migrate: %v", err)
	}
	// Several processes starting at once share one database.
	errs := make(chan error, 4)
	for range 4 {
		go func() { errs <- s.Migrate(ctx) }()
	}
	for range 4 {
		if err := <-errs; err != nil {
			t.Fatalf("concurrent Migrate: %v", err)
		}
	}
	var version int32
	if err := s.pool.QueryRow(ctx, "SELECT version FROM "+versionTable).Scan(&version); err != nil {
		t.Fatal(err)
	}
	files, _ := migrationFiles.ReadDir("migrations")
	if int(version) != len(files) {
		t.Fatalf("schema version %d, want %d", version, len(files))
	}
	for _, table := range []string{"sites", "api_keys", "salts", "dims", "events", "agent_batches", "dead_letters"} {
		var ok bool
		if err := s.pool.QueryRow(ctx, "SELECT to_regclass($1) IS NOT NULL", table).Scan(&ok); err != nil || !ok {
			t.Errorf("table %s missing (err %v)", table, err)
		}
	}
}

func TestIsTransient(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	s := newStore(t)
	// Real errors: a server that is not there, a store shut under a caller.
	_, refused := pgx.Connect(ctx, closedPortURL(t))
	gone, err := Open(ctx, testenv.PostgresURL(t), nil)
	if err != nil {
		t.Fatal(err)
	}
	gone.Close()
	_, closed := gone.pool.Exec(ctx, "SELECT 1")
	_, syntax := s.pool.Exec(ctx, "SELEKT 1")
	_, constraint := s.pool.Exec(ctx, "INSERT INTO sites (measurement_id, api_secret, name) VALUES (NULL, 'x', 'y')")
	f := func(name string, err error, want bool) {
		t.Helper()
		if err == nil {
			t.Fatalf("%s: no error to classify", name)
		}
		if got := IsTransient(err); got != want {
			t.Errorf("%s: IsTransient(%v) = %v, want %v", name, err, got, want)
		}
	}
	f("connection refused", refused, true)
	f("closed pool", closed, true)
	f("deadline", context.DeadlineExceeded, true)
	f("wrapped deadline", errors.Join(errors.New("x"), context.DeadlineExceeded), true)
	f("syntax error", syntax, false)
	f("not null violation", constraint, false)
	f("plain bug", errors.New("BUG: something"), false)
}
