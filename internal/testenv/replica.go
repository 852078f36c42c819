package testenv

import (
	"context"
	"net/url"
	"os"
	"path/filepath"
	"testing"

	"github.com/avila-analytics/avila/internal/pgserver"
)

// Replicated is a throwaway PostgreSQL primary with one streaming standby.
type Replicated struct {
	Primary, Replica *pgserver.Server
	// PrimaryURL and ReplicaURL name the same database, created on the
	// primary and replicated to the standby.
	PrimaryURL, ReplicaURL string
}

// PrimaryWithReplica starts a primary and a standby made from it with
// pg_basebackup, both from the system's binaries (never DATABASE_URL's
// server, whose replication a test cannot arrange), with a database on
// both; they stop when t ends.
func PrimaryWithReplica(t testing.TB) *Replicated {
	t.Helper()
	dir, err := serverDir("avila-testenv-replica-")
	if err != nil {
		t.Fatalf("testenv: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), setupTimeout)
	defer cancel()
	primary, err := pgserver.Start(ctx, pgserver.Options{Dir: filepath.Join(dir, "primary"), NoFsync: true})
	if err != nil {
		os.RemoveAll(dir)
		t.Fatalf("testenv: start a primary: %v", err)
	}
	stop := func(s *pgserver.Server) {
		ctx, cancel := context.WithTimeout(context.Background(), setupTimeout)
		defer cancel()
		if err := s.StopImmediate(ctx); err != nil {
			t.Logf("testenv: %v", err)
		}
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	t.Cleanup(func() { stop(primary) })
	name := "avila_test_" + randomHex(6)
	primaryURL, err := primary.CreateDatabase(ctx, name)
	if err != nil {
		t.Fatalf("testenv: %v", err)
	}
	replica, err := pgserver.StartReplica(ctx, primary, pgserver.Options{Dir: filepath.Join(dir, "replica"), NoFsync: true})
	if err != nil {
		t.Fatalf("testenv: start a replica: %v", err)
	}
	t.Cleanup(func() { stop(replica) })
	u, err := url.Parse(replica.URL())
	if err != nil {
		t.Fatalf("testenv: %v", err)
	}
	u.Path = "/" + name
	return &Replicated{Primary: primary, Replica: replica, PrimaryURL: primaryURL, ReplicaURL: u.String()}
}
