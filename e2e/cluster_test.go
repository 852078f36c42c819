package e2e

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/avila-analytics/avila/aggregator/node"
	"github.com/avila-analytics/avila/internal/freeport"
	"github.com/avila-analytics/avila/internal/testenv"
	"github.com/avila-analytics/avila/storage/postgres"
)

// aggNode is one aggregator of a test cluster, on its own loopback address.
type aggNode struct {
	name string
	api  string // http://host:port
	op   string // operator address, http://host:port
	quic string
	p    *proc
}

// cluster is three aggregators (127.0.0.2-4) gossiping with an encryption
// key and requiring agent certificates, and two agents (127.0.0.5-6) with
// certificates from the same CA, each seeded with one aggregator only.
type cluster struct {
	t      *testing.T
	certs  string // CA and issued certificates
	ca     string
	st     *stack // store, site and the exactly-once check; no agent of its own
	aggs   []*aggNode
	agents []*proc
}

// freeAddr returns host:port on ip whose port is free right now, for TCP
// and UDP both (gossip uses the same port for each).
func freeAddr(t *testing.T, ip string) string {
	t.Helper()
	addr, err := freeport.Addr(ip, "tcp+udp")
	if err != nil {
		t.Fatal(err)
	}
	return addr
}

// avila runs the CLI and returns its stdout.
func avila(t *testing.T, args ...string) string {
	t.Helper()
	out, err := exec.Command(bin("avila"), args...).Output()
	if err != nil {
		var stderr []byte
		if ee, ok := err.(*exec.ExitError); ok {
			stderr = ee.Stderr
		}
		t.Fatalf("avila %q: %v\n%s", args, err, stderr)
	}
	return string(out)
}

func newCluster(t *testing.T) *cluster {
	t.Helper()
	ctx := context.Background()
	dbURL := testenv.PostgresURL(t)
	c := &cluster{t: t, certs: filepath.Join(t.TempDir(), "certs")}
	c.ca = strings.TrimSpace(avila(t, "certs", "init", "--dir", c.certs))
	keyBytes := make([]byte, 32)
	_, _ = rand.Read(keyBytes)
	gossipKey := base64.StdEncoding.EncodeToString(keyBytes)

	const n = 3
	ips := make([]string, n)
	quic, api, gossip, op := make([]string, n), make([]string, n), make([]string, n), make([]string, n)
	for i := range n {
		ips[i] = fmt.Sprintf("127.0.0.%d", 2+i)
		quic[i], api[i], gossip[i], op[i] = freeAddr(t, ips[i]), freeAddr(t, ips[i]), freeAddr(t, ips[i]), freeAddr(t, ips[i])
	}
	for i := range n {
		name := fmt.Sprintf("agg-%d", i)
		files := strings.Fields(avila(t, "certs", "issue", "--dir", c.certs, "--aggregator", name, "--host", ips[i]))
		p := start(t, "avila-aggregator", []string{"DATABASE_URL=" + dbURL, "AVILA_GOSSIP_KEY=" + gossipKey},
			"--node-name", name, "--listen-quic", quic[i], "--listen-api", api[i], "--listen-operator", op[i],
			"--gossip-listen", gossip[i], "--join", strings.Join(gossip, ","),
			"--tls-cert", files[0], "--tls-key", files[1], "--tls-client-ca", c.ca,
			"--data-dir", filepath.Join(t.TempDir(), name))
		c.aggs = append(c.aggs, &aggNode{name: name, api: p.ready["api"], op: p.ready["operator"], quic: p.ready["quic"], p: p})
	}

	store, err := postgres.Open(ctx, dbURL, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(store.Close)
	c.st = &stack{t: t, dbURL: dbURL, store: store, db: testenv.Pool(t, dbURL)}
	if c.st.site, err = store.CreateSite(ctx, postgres.SiteSpec{Name: "cluster", Domains: []string{"e2e.test"}}); err != nil {
		t.Fatal(err)
	}
	if err := store.EnsureSalts(ctx, time.Now()); err != nil {
		t.Fatal(err)
	}
	for i := range 2 {
		name := fmt.Sprintf("edge-%d", i)
		files := strings.Fields(avila(t, "certs", "issue", "--dir", c.certs, "--agent", name))
		a := start(t, "avila-agent", nil,
			"--listen", freeAddr(t, fmt.Sprintf("127.0.0.%d", 5+i)), "--data-dir", filepath.Join(t.TempDir(), name),
			"--aggregator", quic[i], "--ca", c.ca, "--cert", files[0], "--key", files[1])
		c.agents = append(c.agents, a)
	}
	for _, a := range c.agents {
		waitReady(t, a.ready["agent"])
	}
	c.converged(3)
	return c
}

func status(a *aggNode) (node.ClusterStatus, error) {
	var st node.ClusterStatus
	client := http.Client{Timeout: 5 * time.Second}
	resp, err := client.Get(a.op + "/v1/cluster/status")
	if err != nil {
		return st, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return st, fmt.Errorf("%s: status %d", a.name, resp.StatusCode)
	}
	return st, json.NewDecoder(resp.Body).Decode(&st)
}

// converged waits until every running aggregator sees exactly want members
// (the running ones), all alive and none draining; members listed dead (a
// minute after a node died) do not count.
func (c *cluster) converged(want int) {
	c.t.Helper()
	eventually(c.t, 90*time.Second, fmt.Sprintf("cluster view converged on %d nodes", want), func() error {
		for _, a := range c.aggs {
			if !a.p.running() {
				continue
			}
			st, err := status(a)
			if err != nil {
				return err
			}
			var alive []string
			listed := 0
			for _, m := range st.Members {
				if m.State == "alive" && !m.Draining {
					alive = append(alive, m.Name)
				}
				if m.State != "dead" {
					listed++
				}
			}
			if len(alive) != want || listed != want {
				return fmt.Errorf("%s sees %v (alive: %v)", a.name, st.Members, alive)
			}
		}
		return nil
	})
}

// agentOn returns the aggregator the agent named (edge-N) ships to now:
// the one that stored its latest batch, within the last second, while no
// other node stored one of its batches in the three seconds before, and
// that has been the answer for two seconds of polling (an agent that just
// started ships over its seed's connection while it dials its preferred
// node, and batches in flight then may be stored later).
func (c *cluster) agentOn(agent string) *aggNode {
	c.t.Helper()
	var on, held *aggNode
	var heldSince time.Time
	eventually(c.t, time.Minute, agent+" shipping to one node", func() error {
		var err error
		if on, err = c.latestNode(agent); err != nil {
			held = nil
			return err
		}
		if on != held {
			held, heldSince = on, time.Now()
		}
		if time.Since(heldSince) < 2*time.Second {
			return fmt.Errorf("%s on %s only for %v", agent, on.name, time.Since(heldSince).Round(time.Millisecond))
		}
		return nil
	})
	return on
}

// latestNode returns the node that stored the agent's latest batch, within
// the last second, while no other node stored one in the three seconds
// before; or says why there is no such node.
func (c *cluster) latestNode(agent string) (*aggNode, error) {
	var on *aggNode
	last := map[*aggNode]time.Time{}
	for _, a := range c.aggs {
		if !a.p.running() {
			continue
		}
		st, err := status(a)
		if err != nil {
			return nil, err
		}
		for _, s := range st.AgentsSeen {
			if strings.HasPrefix(s.Agent, agent+"/") && s.LastBatch.After(last[a]) {
				last[a] = s.LastBatch
			}
		}
		if on == nil || last[a].After(last[on]) {
			on = a
		}
	}
	if on == nil || time.Since(last[on]) > time.Second {
		return nil, fmt.Errorf("no node stored a batch of %s in the last second", agent)
	}
	for a, at := range last {
		if a != on && last[on].Sub(at) < 3*time.Second {
			return nil, fmt.Errorf("both %s and %s stored batches of %s in the last three seconds", a.name, on.name, agent)
		}
	}
	return on, nil
}

// hitURL is a page_view numbered n, sent to agent n%2.
func (c *cluster) hitURL(n int) string {
	return fmt.Sprintf("%s/g/collect?v=2&tid=%s&cid=%d.1764000000&sid=1764000000&sct=1&en=page_view&dl=http%%3A%%2F%%2Fe2e.test%%2Fp%%2F%d&dt=Page",
		c.agents[n%len(c.agents)].ready["agent"], c.st.site.MeasurementID, n%997, n)
}

// load sends hits numbered from 0 at a steady pace from senders clients
// until stop is closed (or max hits are sent), each hit once, and tallies
// which got a 204.
func (c *cluster) load(stop <-chan struct{}, senders, max int, pace time.Duration) *loadResult {
	client := &http.Client{Timeout: 10 * time.Second}
	defer client.CloseIdleConnections()
	var next atomic.Int64
	res := &loadResult{acked: map[int]bool{}, failed: map[int]bool{}, status: map[int]int{}}
	var mu sync.Mutex
	var wg sync.WaitGroup
	begin := time.Now()
	for range senders {
		wg.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				n := int(next.Add(1) - 1)
				if n >= max {
					return
				}
				code := 0
				resp, err := browserGet(client, c.hitURL(n))
				if err == nil {
					_, _ = io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
					code = resp.StatusCode
				}
				mu.Lock()
				res.status[code]++
				if code == http.StatusNoContent {
					res.acked[n] = true
				} else {
					res.failed[n] = true
				}
				mu.Unlock()
				time.Sleep(pace) // load shape, not a synchronization
			}
		})
	}
	wg.Wait()
	res.elapsed = time.Since(begin)
	return res
}

// longestAckPause is, per agent, the longest time within [from, to] in
// which the cluster stored no batch of that agent (the window's ends count):
// how long the agent's deliveries stalled while it failed over. Batches are
// timed by agent_batches.received_at, the start of the transaction that
// stored them; under the test's load each agent seals a batch every 200 ms.
func (c *cluster) longestAckPause(from, to time.Time) map[string]time.Duration {
	c.t.Helper()
	rows, err := c.st.db.Query(context.Background(), `
		SELECT split_part(agent_id, '/', 1), received_at FROM agent_batches
		WHERE received_at BETWEEN $1 AND $2 ORDER BY received_at`, from, to)
	if err != nil {
		c.t.Fatal(err)
	}
	defer rows.Close()
	last := map[string]time.Time{}
	out := map[string]time.Duration{}
	for i := range c.agents {
		name := fmt.Sprintf("edge-%d", i)
		last[name] = from
	}
	for rows.Next() {
		var agent string
		var at time.Time
		if err := rows.Scan(&agent, &at); err != nil {
			c.t.Fatal(err)
		}
		out[agent] = max(out[agent], at.Sub(last[agent]))
		last[agent] = at
	}
	if err := rows.Err(); err != nil {
		c.t.Fatal(err)
	}
	for agent, at := range last {
		out[agent] = max(out[agent], to.Sub(at)).Round(time.Millisecond)
	}
	return out
}

// maxFailoverStall bounds how long an agent's deliveries may stall when its
// aggregator is killed: its keep-alives (every third of --peer-timeout,
// default 1 s) go unanswered, it moves to its next node, and the batches
// in flight are resent there.
const maxFailoverStall = 2 * time.Second

// Three aggregators and two agents under continuous load:
//   - SIGKILL edge-0's aggregator: `avila cluster status` on another node
//     shows it suspect, then dead; no agent's stored batches pause for more
//     than maxFailoverStall; the node comes back, rejoins, and its agents
//     return to it;
//   - rolling restart (SIGTERM, drain) of all three, one by one, none
//     logging a closed-connection error from gossip while it stops;
//   - a node's gossip frozen (SIGSTOP) past the suspicion timeout: the
//     others declare it dead; after SIGCONT the view converges again.
//
// Every hit got a 204 and is stored exactly once.
func TestClusterFailoverRollingRestartAndPartition(t *testing.T) {
	c := newCluster(t)
	stop := make(chan struct{})
	results := make(chan *loadResult, 1)
	go func() { results <- c.load(stop, 6, 200_000, 25*time.Millisecond) }()
	defer func() {
		select {
		case <-stop:
		default:
			close(stop)
		}
	}()

	// SIGKILL the node edge-0 ships to.
	killed := c.agentOn("edge-0")
	var other *aggNode
	for _, a := range c.aggs {
		if a != killed {
			other = a
			break
		}
	}
	killedAt := time.Now()
	killed.p.kill()
	t.Logf("killed %s, edge-0's node", killed.name)
	// The others' probes find it first: `avila cluster status` lists it
	// as suspect, then gossip declares it dead.
	for _, want := range []string{"suspect", "dead"} {
		eventually(t, 30*time.Second, fmt.Sprintf("avila cluster status shows %s %s", killed.name, want), func() error {
			out := avila(t, "cluster", "status", "--operator", other.op)
			for _, line := range strings.Split(out, "\n") {
				if f := strings.Fields(line); len(f) > 1 && f[0] == killed.name {
					if f[1] != want {
						return fmt.Errorf("listed as %s", f[1])
					}
					return nil
				}
			}
			return fmt.Errorf("not listed:\n%s", out)
		})
	}
	c.converged(2)
	// Agents go on storing without it.
	base := c.st.storedCount(t)
	eventually(t, time.Minute, "progress without the killed node", func() error {
		if n := c.st.storedCount(t); n < base+500 {
			return fmt.Errorf("%d stored since", n-base)
		}
		return nil
	})
	killPhase := [2]time.Time{killedAt, time.Now()}
	// No agent's deliveries stalled for more than maxFailoverStall: the
	// agents noticed the dead node through their keep-alives and moved on
	// without waiting for gossip or dialing the dead node again.
	killPauses := c.longestAckPause(killPhase[0], killPhase[1])
	t.Logf("failover stall after SIGKILL (longest pause in stored batches per agent): %v", killPauses)
	for agent, d := range killPauses {
		if d > maxFailoverStall {
			t.Errorf("%s stored nothing for %v after %s was killed, want at most %v", agent, d, killed.name, maxFailoverStall)
		}
	}
	killed.p.restart()
	c.converged(3)
	// edge-0 returns to its node once it is back (its penalty there ends
	// within 30 s).
	eventually(t, 90*time.Second, "edge-0 back on "+killed.name, func() error {
		if on := c.agentOn("edge-0"); on != killed {
			return fmt.Errorf("edge-0 ships to %s", on.name)
		}
		return nil
	})

	// Rolling restart: each node drains, leaves, and comes back; none
	// logs a socket error from its own clean stop.
	rollFrom := time.Now()
	for _, a := range c.aggs {
		a.p.stop()
		if b, err := os.ReadFile(a.p.logf); err != nil {
			t.Fatal(err)
		} else if i := strings.LastIndex(string(b), "aggregator draining"); i >= 0 && strings.Contains(string(b[i:]), "use of closed network connection") {
			t.Errorf("%s logged a closed-connection error while stopping cleanly:\n%s", a.name, b[i:])
		}
		c.converged(2)
		a.p.restart()
		c.converged(3)
		t.Logf("restarted %s", a.name)
	}
	rollPhase := [2]time.Time{rollFrom, time.Now()}

	// Gossip partition: freeze the node edge-1 ships to until the others
	// declare it dead.
	frozen := c.agentOn("edge-1")
	t.Logf("freezing %s, edge-1's node", frozen.name)
	frozenAt := time.Now()
	if err := frozen.p.cmd.Process.Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	resumed := false
	defer func() {
		if !resumed {
			_ = frozen.p.cmd.Process.Signal(syscall.SIGCONT)
		}
	}()
	eventually(t, 2*time.Minute, "the others declare "+frozen.name+" dead", func() error {
		for _, a := range c.aggs {
			if a == frozen {
				continue
			}
			st, err := status(a)
			if err != nil {
				return err
			}
			for _, m := range st.Members {
				if m.Name == frozen.name && m.State != "dead" {
					return fmt.Errorf("%s still lists %s as %s", a.name, m.Name, m.State)
				}
			}
		}
		return nil
	})
	frozenFor := time.Since(frozenAt)
	if err := frozen.p.cmd.Process.Signal(syscall.SIGCONT); err != nil {
		t.Fatal(err)
	}
	resumed = true
	c.converged(3)
	healed := time.Since(frozenAt) - frozenFor
	partitionPhase := [2]time.Time{frozenAt, time.Now()}

	close(stop)
	res := <-results
	for _, a := range c.aggs {
		a.p.alive()
	}
	t.Logf("load: %d hits in %v (%.0f/s), statuses %v", len(res.acked)+len(res.failed), res.elapsed.Round(time.Second),
		res.hitsPerSecond(), res.status)
	if len(res.failed) > 0 {
		t.Errorf("%d hits not acknowledged by the agents (statuses %v): they buffer while aggregators fail", len(res.failed), res.status)
	}
	if stored := c.st.expectExactlyOnce(res); len(stored) != len(res.acked) {
		t.Errorf("stored %d hits, acknowledged %d", len(stored), len(res.acked))
	}
	t.Logf("longest ack pause per agent: SIGKILL %v, rolling restart %v, partition %v",
		c.longestAckPause(killPhase[0], killPhase[1]), c.longestAckPause(rollPhase[0], rollPhase[1]),
		c.longestAckPause(partitionPhase[0], partitionPhase[1]))
	t.Logf("partition: %s frozen %v until declared dead, view converged %v after SIGCONT",
		frozen.name, frozenFor.Round(time.Second), healed.Round(time.Second))
}

// storedCount is the number of events stored for the stack's site.
func (s *stack) storedCount(t *testing.T) int {
	t.Helper()
	var n int
	if err := s.db.QueryRow(context.Background(), `SELECT count(*) FROM events WHERE site_id = $1 AND flags & 256 = 0`,
		int32(s.site.ID)).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// An aggregator with --tls-client-ca refuses an agent without a certificate
// and one whose certificate another CA signed, and logs why; an agent with a
// certificate of its CA is served, and stored under its certificate's name.
func TestClusterRefusesAgentsWithoutValidCertificate(t *testing.T) {
	dbURL := testenv.PostgresURL(t)
	certs, other := filepath.Join(t.TempDir(), "certs"), filepath.Join(t.TempDir(), "other")
	ca := strings.TrimSpace(avila(t, "certs", "init", "--dir", certs))
	avila(t, "certs", "init", "--dir", other)
	srv := strings.Fields(avila(t, "certs", "issue", "--dir", certs, "--aggregator", "agg"))
	good := strings.Fields(avila(t, "certs", "issue", "--dir", certs, "--agent", "edge-good"))
	foreign := strings.Fields(avila(t, "certs", "issue", "--dir", other, "--agent", "edge-foreign"))
	agg := start(t, "avila-aggregator", []string{"DATABASE_URL=" + dbURL},
		"--listen-quic", freePort(t, "udp"), "--listen-api", freePort(t, "tcp"), "--listen-operator", freePort(t, "tcp"), "--data-dir", filepath.Join(t.TempDir(), "agg"),
		"--tls-cert", srv[0], "--tls-key", srv[1], "--tls-client-ca", ca)
	ctx := context.Background()
	store, err := postgres.Open(ctx, dbURL, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	db := testenv.Pool(t, dbURL)
	site, err := store.CreateSite(ctx, postgres.SiteSpec{Name: "mtls", Domains: []string{"e2e.test"}})
	if err != nil {
		t.Fatal(err)
	}

	agent := func(name string, certArgs ...string) *proc {
		args := append([]string{"--listen", freePort(t, "tcp"), "--data-dir", filepath.Join(t.TempDir(), name),
			"--aggregator", agg.ready["quic"], "--ca", ca}, certArgs...)
		return start(t, "avila-agent", nil, args...)
	}
	bare := agent("bare")
	stranger := agent("stranger", "--cert", foreign[0], "--key", foreign[1])
	member := agent("member", "--cert", good[0], "--key", good[1])
	waitReady(t, member.ready["agent"])

	logged := func(want string) error {
		b, err := os.ReadFile(agg.logf)
		if err != nil {
			return err
		}
		if !strings.Contains(string(b), want) {
			return fmt.Errorf("aggregator log lacks %q", want)
		}
		return nil
	}
	eventually(t, time.Minute, "refusals logged with their reason", func() error {
		for _, want := range []string{
			"refused agent connection",
			"no client certificate (start the agent with --cert and --key issued by the cluster CA)",
			`client certificate \"edge-foreign\" refused: x509: certificate signed by unknown authority`,
		} {
			if err := logged(want); err != nil {
				return err
			}
		}
		return nil
	})
	for _, p := range []*proc{bare, stranger} {
		resp, err := http.Get(p.ready["agent"] + "/readyz")
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusServiceUnavailable {
			t.Errorf("refused agent %s: readyz %d %s, want 503 (no config from the aggregator)", p.ready["agent"], resp.StatusCode, b)
		}
	}
	// The served agent's batches are stored under its certificate's name.
	resp, err := browserGet(http.DefaultClient, fmt.Sprintf("%s/g/collect?v=2&tid=%s&cid=1.1764000000&en=page_view&dl=http%%3A%%2F%%2Fe2e.test%%2F",
		member.ready["agent"], site.MeasurementID))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNoContent {
		t.Fatalf("hit: %d", resp.StatusCode)
	}
	eventually(t, time.Minute, "the hit stored under the agent's certificate name", func() error {
		var agents []string
		rows, err := db.Query(ctx, `SELECT DISTINCT agent_id FROM agent_batches`)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var a string
			if err := rows.Scan(&a); err != nil {
				return err
			}
			agents = append(agents, a)
		}
		if len(agents) != 1 || !strings.HasPrefix(agents[0], "edge-good/"+member.ready["agent_id"]) {
			return fmt.Errorf("batch keys of agents %v, want edge-good/%s", agents, member.ready["agent_id"])
		}
		return nil
	})
}
