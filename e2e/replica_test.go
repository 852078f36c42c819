package e2e

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/avila-analytics/avila/internal/testenv"
	"github.com/avila-analytics/avila/storage/postgres"
)

// Reports read a real streaming replica (made with pg_basebackup) once it
// holds the site's latest data. While its replay is paused behind newer
// batches, a node with a lenient lag bound answers from it without caching
// the stale answer, and a node with a strict bound answers from the
// primary.
func TestReportsReadReplicaWithinLagBound(t *testing.T) {
	pair := testenv.PrimaryWithReplica(t)
	redisURL, prefix := testenv.RedisURL(t), testenv.Prefix(t)
	ctx := context.Background()
	store, err := postgres.Open(ctx, pair.PrimaryURL, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	db := testenv.Pool(t, pair.PrimaryURL)
	if err := store.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	site, err := store.CreateSite(ctx, postgres.SiteSpec{Name: "replica", Domains: []string{"e2e.test"}})
	if err != nil {
		t.Fatal(err)
	}
	if err := store.EnsureSalts(ctx, time.Now()); err != nil {
		t.Fatal(err)
	}
	key, err := store.CreateAPIKey(ctx, "e2e", []uint32{site.ID})
	if err != nil {
		t.Fatal(err)
	}
	aggregator := func(maxLag string) *proc {
		return start(t, "avila-aggregator", nil, "--database-url", pair.PrimaryURL, "--database-read-url", pair.ReplicaURL,
			"--database-read-max-lag", maxLag, "--redis-url", redisURL, "--redis-prefix", prefix,
			"--listen-quic", freePort(t, "udp"), "--listen-api", freePort(t, "tcp"), "--listen-operator", freePort(t, "tcp"), "--data-dir", filepath.Join(t.TempDir(), "agg"))
	}
	lenient, strict := aggregator("1h"), aggregator("300ms")
	agent := start(t, "avila-agent", nil, "--listen", freePort(t, "tcp"), "--data-dir", filepath.Join(t.TempDir(), "agent"),
		"--aggregator", lenient.ready["quic"], "--ca", lenient.ready["ca"])
	s := &stack{t: t, agent: agent, site: site, store: store}
	s.waitAgentReady()

	sent := 0
	send := func(n int) {
		t.Helper()
		for range n {
			resp, err := browserGet(http.DefaultClient, s.hitURL(sent))
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusNoContent {
				t.Fatalf("hit %d: status %d", sent, resp.StatusCode)
			}
			sent++
		}
	}
	onPrimary := func(want int) {
		t.Helper()
		eventually(t, time.Minute, fmt.Sprintf("%d events derived on the primary", want), func() error {
			var n int
			// Derived, not just staged: the data version moves after the derivation.
			if err := db.QueryRow(ctx, "SELECT count(*) FROM events WHERE site_id = $1 AND flags & 256 = 0", int32(site.ID)).Scan(&n); err != nil || n != want {
				resp, _ := http.Get(agent.ready["agent"] + "/metrics")
				b, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				return fmt.Errorf("%d stored (%v); agent metrics:\n%s", n, err, bytes.Join(grepLines(b, "analytics_"), []byte("\n")))
			}
			return nil
		})
	}
	count := func(node *proc) int {
		t.Helper()
		api := &stack{t: t, agg: node, site: site, apiKey: key}
		// Page views: one per hit (eventCount adds the session_start and
		// first_visit events the write stage derives).
		n, err := strconv.Atoi(api.reportTotal(t, "screenPageViews"))
		if err != nil {
			t.Fatal(err)
		}
		return n
	}
	reads := func(node *proc, database string) float64 {
		t.Helper()
		v, err := metricValue(node.ready["operator"], "analytics_query_reads_total", "database", database)
		if err != nil {
			t.Fatal(err)
		}
		return v
	}

	send(50)
	onPrimary(50)
	// Once the replica has replayed past the site's version, it serves.
	eventually(t, time.Minute, "the caught-up replica serves 50 events", func() error {
		if n := count(lenient); n != 50 {
			return fmt.Errorf("screenPageViews %d", n)
		}
		if reads(lenient, "replica") == 0 {
			return fmt.Errorf("no report read the replica yet (reads by database: primary %v, replica_behind %v)",
				reads(lenient, "primary"), reads(lenient, "replica_behind"))
		}
		return nil
	})

	replica, err := pgxpool.New(ctx, pair.ReplicaURL)
	if err != nil {
		t.Fatal(err)
	}
	defer replica.Close()
	if _, err := replica.Exec(ctx, "SELECT pg_wal_replay_pause()"); err != nil {
		t.Fatal(err)
	}
	send(30)
	onPrimary(80)
	// The paused replica answers 50, uncached, once the node has seen the
	// data version of the new batches (bumped right after their derivation).
	behind := reads(lenient, "replica_behind")
	eventually(t, 30*time.Second, "the paused replica answers, counted as replica_behind", func() error {
		if n := count(lenient); n != 50 {
			t.Fatalf("lenient node, replica paused: screenPageViews %d, want the replica's 50", n)
		}
		if reads(lenient, "replica_behind") <= behind {
			return errors.New("no replica_behind read yet")
		}
		return nil
	})
	// Beyond the strict node's bound the primary answers.
	primary := reads(strict, "primary")
	eventually(t, 30*time.Second, "the strict node reads the primary", func() error {
		if n := count(strict); n != 80 {
			return fmt.Errorf("screenPageViews %d", n)
		}
		return nil
	})
	if reads(strict, "primary") <= primary {
		t.Fatal("the strict node's answer from the primary was not counted")
	}

	// Replay resumes; no batch changes the data version, yet the lenient
	// node's next answer is 80: the replica's stale 50 was never cached.
	if _, err := replica.Exec(ctx, "SELECT pg_wal_replay_resume()"); err != nil {
		t.Fatal(err)
	}
	eventually(t, 30*time.Second, "the lenient node answers 80 from the caught-up replica", func() error {
		if n := count(lenient); n != 80 {
			return fmt.Errorf("screenPageViews %d", n)
		}
		return nil
	})
}

func grepLines(b []byte, sub string) [][]byte {
	var out [][]byte
	for _, l := range bytes.Split(b, []byte("\n")) {
		if bytes.Contains(l, []byte(sub)) && !bytes.HasPrefix(l, []byte("#")) {
			out = append(out, l)
		}
	}
	return out
}
