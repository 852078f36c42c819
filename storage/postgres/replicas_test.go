package postgres

import (
	"context"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/avila-analytics/avila/internal/testenv"
)

func inRecovery(t *testing.T, pool *pgxpool.Pool) bool {
	t.Helper()
	var standby bool
	if err := pool.QueryRow(context.Background(), "SELECT pg_is_in_recovery()").Scan(&standby); err != nil {
		t.Fatal(err)
	}
	return standby
}

// A report reads the replica once it holds everything its data version
// covers; while the replica's replay is paused behind a newer version, it
// reads the replica uncached within MaxLag and the primary beyond it.
func TestReplicasRouteByReplayPosition(t *testing.T) {
	ctx := context.Background()
	pair := testenv.PrimaryWithReplica(t)
	s, err := Open(ctx, pair.PrimaryURL, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if _, err := s.pool.Exec(ctx, "CREATE TABLE marks (n int)"); err != nil {
		t.Fatal(err)
	}
	open := func(maxLag time.Duration) *Replicas {
		r, err := s.OpenReplicas(ctx, ReplicaOptions{URLs: []string{pair.ReplicaURL}, MaxLag: maxLag, PollEvery: 20 * time.Millisecond})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(r.Close)
		rctx, cancel := context.WithCancel(ctx)
		t.Cleanup(cancel)
		go r.Run(rctx)
		return r
	}
	lenient, strict := open(time.Hour), open(50*time.Millisecond)

	// Caught up: the replica serves, cacheably.
	deadline := time.Now().Add(30 * time.Second)
	for {
		pool, complete := lenient.ReadFrom(ctx, 1, "v1")
		if inRecovery(t, pool) && complete {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the replica never served a report of version v1")
		}
		time.Sleep(20 * time.Millisecond)
	}

	// Site 2's version, first seen now, covers nothing the replica lacks.
	if _, complete := lenient.ReadFrom(ctx, 2, "w1"); !complete {
		t.Fatal("site 2 at w1 was not read completely")
	}
	// Replay paused, then a commit and a new version the replica lacks.
	replica, err := pgxpool.New(ctx, pair.ReplicaURL)
	if err != nil {
		t.Fatal(err)
	}
	defer replica.Close()
	if _, err := replica.Exec(ctx, "SELECT pg_wal_replay_pause()"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.pool.Exec(ctx, "INSERT INTO marks VALUES (1)"); err != nil {
		t.Fatal(err)
	}
	pool, complete := lenient.ReadFrom(ctx, 1, "v2")
	if !inRecovery(t, pool) || complete {
		t.Fatalf("replica paused within MaxLag: read the replica %v, complete %v; want the replica, not complete", inRecovery(t, pool), complete)
	}
	// The last replayed commit (CREATE TABLE) is older than 50 ms by now.
	time.Sleep(60 * time.Millisecond)
	pool, complete = strict.ReadFrom(ctx, 1, "v2")
	if inRecovery(t, pool) || !complete {
		t.Fatalf("replica paused beyond MaxLag: read the replica %v, complete %v; want the primary", inRecovery(t, pool), complete)
	}
	// Site 2's data did not change: its reports still read the replica,
	// cacheably, while site 1's commit waits to be replayed.
	if pool, complete := lenient.ReadFrom(ctx, 2, "w1"); !inRecovery(t, pool) || !complete {
		t.Fatal("a site version whose commits the replica holds did not read the replica")
	}

	if _, err := replica.Exec(ctx, "SELECT pg_wal_replay_resume()"); err != nil {
		t.Fatal(err)
	}
	deadline = time.Now().Add(30 * time.Second)
	for {
		pool, complete := strict.ReadFrom(ctx, 1, "v2")
		if inRecovery(t, pool) && complete {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the resumed replica never served version v2")
		}
		time.Sleep(20 * time.Millisecond)
	}
	reads := strict.Reads()
	if reads[ReadPrimary] == 0 || reads[ReadReplica] == 0 {
		t.Fatalf("reads by target %v: want primary and replica counted", reads)
	}
	st := strict.States()
	if len(st) != 1 || !st[0].Up {
		t.Fatalf("states %+v: want one replica up", st)
	}
}

func TestOpenReplicasRefusesAPrimary(t *testing.T) {
	ctx := context.Background()
	url := testenv.PostgresURL(t)
	s, err := Open(ctx, url, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	_, err = s.OpenReplicas(ctx, ReplicaOptions{URLs: []string{url}})
	if err == nil || !strings.Contains(err.Error(), "is not a standby") {
		t.Fatalf("OpenReplicas on a primary: %v, want an error saying it is not a standby", err)
	}
}

func TestParseLSN(t *testing.T) {
	f := func(s string, want uint64, ok bool) {
		t.Helper()
		got, err := parseLSN(s)
		if (err == nil) != ok || got != want {
			t.Fatalf("parseLSN(%q) = %x, %v; want %x, ok %v", s, got, err, want, ok)
		}
	}
	f("0/0", 0, true)
	f("16/B374D848", 0x16_B374D848, true)
	f("FFFFFFFF/FFFFFFFF", 1<<64-1, true)
	f("16B374D848", 0, false)
	f("x/1", 0, false)
}
