package testenv

import (
	"context"
	"net"
	"net/url"
	"os"
	"testing"

	"github.com/jackc/pgx/v5"
)

func TestMain(m *testing.M) { os.Exit(Run(m)) }

// Each call yields its own empty, usable database.
func TestPostgresURLFreshDatabase(t *testing.T) {
	ctx := context.Background()
	a, b := PostgresURL(t), PostgresURL(t)
	if a == b {
		t.Fatalf("two calls returned the same database %s", a)
	}
	conn, err := pgx.Connect(ctx, a)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, `CREATE TABLE t (x int)`); err != nil {
		t.Fatal(err)
	}
	connB, err := pgx.Connect(ctx, b)
	if err != nil {
		t.Fatal(err)
	}
	defer connB.Close(ctx)
	var n int
	if err := connB.QueryRow(ctx, `SELECT count(*) FROM pg_tables WHERE tablename = 't'`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	if n != 0 {
		t.Fatalf("second database sees the first one's table")
	}
}

// The database is dropped when its test ends.
func TestPostgresURLDropped(t *testing.T) {
	var name string
	t.Run("user", func(t *testing.T) {
		u, _ := url.Parse(PostgresURL(t))
		name = u.Path[1:]
	})
	base, err := postgresServer()
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, base)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	var exists bool
	if err := conn.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)`, name).Scan(&exists); err != nil {
		t.Fatal(err)
	}
	if exists {
		t.Fatalf("database %s still exists after its test", name)
	}
}

func TestRedisURLAnswers(t *testing.T) {
	u, err := url.Parse(RedisURL(t))
	if err != nil {
		t.Fatal(err)
	}
	if err := ping(u.Host); err != nil {
		t.Fatalf("redis at %s: %v", u.Host, err)
	}
	if _, _, err := net.SplitHostPort(u.Host); err != nil {
		t.Fatal(err)
	}
}

func TestOwnRedisStops(t *testing.T) {
	raw, stop := OwnRedis(t)
	u, err := url.Parse(raw)
	if err != nil {
		t.Fatal(err)
	}
	if err := ping(u.Host); err != nil {
		t.Fatalf("own redis at %s: %v", u.Host, err)
	}
	stop()
	stop()
	if err := ping(u.Host); err == nil {
		t.Fatalf("own redis at %s still answers after stop", u.Host)
	}
}
