package jobs

import (
	"context"
	"log/slog"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/avila-analytics/avila/internal/testenv"
	"github.com/avila-analytics/avila/storage/postgres"
)

// overlapStore counts runs per node and how many run at once across nodes.
type overlapStore struct {
	Store
	node   string
	shared *overlap
}

type overlap struct {
	active, max atomic.Int32
	mu          sync.Mutex
	runs        map[string]int
}

func (o *overlap) count(node string) int {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.runs[node]
}

func (s overlapStore) EnsurePartitions(ctx context.Context, from, to time.Time) error {
	n := s.shared.active.Add(1)
	defer s.shared.active.Add(-1)
	for m := s.shared.max.Load(); n > m && !s.shared.max.CompareAndSwap(m, n); m = s.shared.max.Load() {
	}
	s.shared.mu.Lock()
	s.shared.runs[s.node]++
	s.shared.mu.Unlock()
	// Widen the run, so that overlapping runs would be caught.
	time.Sleep(5 * time.Millisecond)
	return s.Store.EnsurePartitions(ctx, from, to)
}

// crashLock is a Lock whose owner dies without giving it back.
type crashLock struct{ *postgres.LeaderLock }

func (crashLock) Release(context.Context) {}

type testNode struct {
	name   string
	lock   *postgres.LeaderLock
	jobs   *Jobs
	cancel context.CancelFunc
	done   chan struct{}
}

func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// Two nodes never run the jobs at once; only the leader runs them; when the
// leader's session dies (crash, or a connection cut) the other takes over.
func TestSingletonJobsMoveWhenLeaderDies(t *testing.T) {
	ctx := context.Background()
	url := testenv.PostgresURL(t)
	log := slog.New(slog.DiscardHandler)
	open := func() *postgres.Store {
		s, err := postgres.Open(ctx, url, log)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(s.Close)
		return s
	}
	if err := open().Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	admin := testenv.Pool(t, url)
	shared := &overlap{runs: map[string]int{}}
	nodes := map[string]*testNode{}
	for _, name := range []string{"a", "b"} {
		s := open() // each node has its own pool, as separate processes do
		n := &testNode{name: name, lock: NewAdvisoryLock(s), done: make(chan struct{})}
		n.jobs = New(Options{Logger: log, Interval: 20 * time.Millisecond, LeaderRetry: 20 * time.Millisecond,
			Lock: crashLock{n.lock}}, overlapStore{Store: s, node: name, shared: shared})
		var rctx context.Context
		rctx, n.cancel = context.WithCancel(ctx)
		go func() { defer close(n.done); n.jobs.Run(rctx) }()
		t.Cleanup(func() { n.cancel(); <-n.done })
		nodes[name] = n
	}
	// Start-up runs (RunOnce) on both nodes while the leader runs too.
	var wg sync.WaitGroup
	for _, n := range nodes {
		wg.Go(func() {
			for range 5 {
				if err := n.jobs.RunOnce(ctx); err != nil {
					t.Error(err)
				}
			}
		})
	}
	wg.Wait()
	total := func() int { return shared.count("a") + shared.count("b") }
	// currentLeader watches some periodic runs and returns the one node
	// that ran them.
	currentLeader := func() (leader, follower *testNode) {
		t.Helper()
		base := total()
		waitUntil(t, "periodic runs", func() bool { return total() >= base+5 })
		before := map[string]int{"a": shared.count("a"), "b": shared.count("b")}
		waitUntil(t, "more periodic runs", func() bool { return total() >= base+15 })
		leader, follower = nodes["a"], nodes["b"]
		if shared.count("a") == before["a"] {
			leader, follower = follower, leader
		}
		if shared.count(follower.name) != before[follower.name] {
			t.Fatalf("both nodes ran periodic jobs: a %d→%d, b %d→%d", before["a"], shared.count("a"), before["b"], shared.count("b"))
		}
		return leader, follower
	}
	currentLeader()

	// The leader's database session is cut (PostgreSQL restarted, a
	// network fault): it loses the lock and one node leads again.
	classID, objID := uint32(uint64(leaderKey)>>32), uint32(uint64(leaderKey)&0xffffffff)
	leaderPID := func() int {
		var pid int
		err := admin.QueryRow(ctx, `SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND granted
			AND classid = $1 AND objid = $2 AND objsubid = 1`, classID, objID).Scan(&pid)
		if err != nil {
			t.Fatalf("leader lock not held: %v", err)
		}
		return pid
	}
	if _, err := admin.Exec(ctx, "SELECT pg_terminate_backend($1)", leaderPID()); err != nil {
		t.Fatal(err)
	}
	leader, follower := currentLeader()

	// The leader crashes: its loop stops, it releases nothing, and its
	// connection goes away with the process. The other node takes over.
	pid := leaderPID()
	leader.cancel()
	<-leader.done
	if _, err := admin.Exec(ctx, "SELECT pg_terminate_backend($1)", pid); err != nil {
		t.Fatal(err)
	}
	was := shared.count(follower.name)
	waitUntil(t, follower.name+" taking over", func() bool { return shared.count(follower.name) >= was+5 })
	if pid2 := leaderPID(); pid2 == pid {
		t.Errorf("leader lock still held by the dead session %d", pid)
	}
	if m := shared.max.Load(); m != 1 {
		t.Fatalf("%d job runs overlapped", m)
	}
}
