package bench

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/avila-analytics/avila/aggregator/node"
	"github.com/avila-analytics/avila/protocol"
)

// Failover phase sizing: steady single hits through one agent for
// failoverBefore, SIGKILL of the aggregator the agent ships to, and
// failoverAfter more of the same. failoverSenders clients each send a hit
// every failoverPace, at most failoverMaxHits in all.
const (
	failoverNodes   = 3
	failoverBefore  = 3 * time.Second
	failoverAfter   = 6 * time.Second
	failoverSenders = 4
	failoverPace    = 10 * time.Millisecond
	failoverMaxHits = 20_000
)

// failoverCluster is what the failover phase starts beside the main stack:
// three clustered aggregators sharing the run's database and one CA, and an
// agent seeded with all three.
type failoverCluster struct {
	aggs  []*process
	agent *process
}

func (c *failoverCluster) close() {
	if c.agent != nil {
		_ = c.agent.Stop(stopTimeout)
	}
	for _, a := range c.aggs {
		_ = a.Stop(stopTimeout)
	}
}

// failover measures how long an agent's deliveries stall when the
// aggregator it ships to is killed (failover_stall_seconds: the longest
// time, from the kill to the end of the load, in which no batch of the
// agent was stored, by agent_batches.received_at), and that every hit it
// acknowledged is stored (failover_events_lost).
func (r *run) failover(ctx context.Context) error {
	c, err := r.startFailoverCluster(ctx)
	defer c.close()
	if err != nil {
		return err
	}
	agentURL, agentID := c.agent.Ready["agent"], c.agent.Ready["agent_id"]
	req := singleHit(agentURL, r.st.sites[siteFailover].MeasurementID)
	client := &http.Client{Timeout: requestTimeout}
	defer client.CloseIdleConnections()

	stop := make(chan struct{})
	var acked, sent atomic.Int64
	var wg sync.WaitGroup
	for range failoverSenders {
		wg.Go(func() {
			for sent.Add(1) <= failoverMaxHits {
				if status, err := send(ctx, client, &req); err == nil && status/100 == 2 {
					acked.Add(1)
				}
				select {
				case <-stop:
					return
				case <-time.After(failoverPace): // load shape
				}
			}
		})
	}
	loadDone := func() { close(stop); wg.Wait() }
	if err := sleep(ctx, failoverBefore); err != nil {
		loadDone()
		return err
	}
	victim, err := r.agentNode(ctx, c, agentID)
	if err != nil {
		loadDone()
		return err
	}
	r.log.Info("failover: killing the agent's aggregator", "node", victim.Ready["node"])
	killed := time.Now()
	victim.Kill()
	err = sleep(ctx, failoverAfter)
	loadDone()
	end := time.Now()
	if err != nil {
		return err
	}

	n, err := r.waitAgentStored(ctx, agentID, acked.Load())
	if err != nil {
		return err
	}
	stall, err := r.longestPause(ctx, agentID, killed, end)
	if err != nil {
		return err
	}
	lost := max(acked.Load()-n, 0)
	r.log.Info("failover: measured", "acknowledged", acked.Load(), "stored", n, "lost", lost,
		"stall", stall.Round(time.Millisecond))
	r.set("failover_stall_seconds", stall.Seconds())
	r.set("failover_events_lost", float64(lost))
	return nil
}

// startFailoverCluster starts the three aggregators (the first one's gossip
// address is the others' seed) and the agent, and waits until the agent is
// ready and every node sees the other two.
func (r *run) startFailoverCluster(ctx context.Context) (*failoverCluster, error) {
	c := &failoverCluster{}
	dir := filepath.Join(r.st.work, "failover")
	certs := filepath.Join(dir, "certs")
	ca, err := protocol.InitCA(certs)
	if err != nil {
		return c, fmt.Errorf("bench: failover: %w", err)
	}
	var seed string
	var quic []string
	for i := range failoverNodes {
		name := fmt.Sprintf("bench-agg-%d", i)
		cert, err := protocol.IssueCert(certs, protocol.IssueRequest{Kind: protocol.KindAggregator, Name: name})
		if err != nil {
			return c, fmt.Errorf("bench: failover: %w", err)
		}
		args := []string{"--database-url", r.st.dbURL, "--listen-quic", "127.0.0.1:0", "--listen-api", "127.0.0.1:0", "--listen-operator", "127.0.0.1:0",
			"--data-dir", filepath.Join(dir, name), "--node-name", name, "--gossip-listen", "127.0.0.1:0",
			"--tls-cert", cert.Cert, "--tls-key", cert.Key}
		if seed != "" {
			args = append(args, "--join", seed)
		}
		p, err := startProcess(name, filepath.Join(r.st.bins, "avila-aggregator"), filepath.Join(dir, name+".log"), args...)
		if err != nil {
			return c, err
		}
		c.aggs = append(c.aggs, p)
		if seed == "" {
			seed = p.Ready["gossip"]
		}
		quic = append(quic, p.Ready["quic"])
	}
	c.agent, err = startProcess("failover agent", filepath.Join(r.st.bins, "avila-agent"), filepath.Join(dir, "agent.log"),
		"--listen", "127.0.0.1:0", "--data-dir", filepath.Join(dir, "agent"),
		"--aggregator", strings.Join(quic, ","), "--ca", ca)
	if err != nil {
		return c, err
	}
	deadline := time.Now().Add(agentReadyTimeout)
	for {
		err := r.failoverReady(ctx, c)
		if err == nil {
			return c, nil
		}
		if time.Now().After(deadline) {
			return c, fmt.Errorf("bench: failover cluster not ready after %s: %w; logs in %s", agentReadyTimeout, err, dir)
		}
		if err := sleep(ctx, 100*time.Millisecond); err != nil {
			return c, err
		}
	}
}

// failoverReady reports why the agent or the cluster is not ready yet.
func (r *run) failoverReady(ctx context.Context, c *failoverCluster) error {
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, c.agent.Ready["agent"]+"/readyz", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("agent /readyz: %s", resp.Status)
	}
	for _, a := range c.aggs {
		st, err := clusterStatus(ctx, a)
		if err != nil {
			return err
		}
		alive := 0
		for _, m := range st.Members {
			if m.State == protocol.MemberAlive && !m.Draining {
				alive++
			}
		}
		if alive != failoverNodes {
			return fmt.Errorf("%s sees %d of %d nodes alive", st.Node, alive, failoverNodes)
		}
	}
	return nil
}

func clusterStatus(ctx context.Context, a *process) (node.ClusterStatus, error) {
	var st node.ClusterStatus
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, a.Ready["operator"]+"/v1/cluster/status", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return st, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return st, fmt.Errorf("%s: cluster status %s", a.Name(), resp.Status)
	}
	return st, json.NewDecoder(resp.Body).Decode(&st)
}

// agentNode returns the aggregator that stored the agent's latest batch.
func (r *run) agentNode(ctx context.Context, c *failoverCluster, agentID string) (*process, error) {
	var on *process
	var last time.Time
	for _, a := range c.aggs {
		st, err := clusterStatus(ctx, a)
		if err != nil {
			return nil, err
		}
		for _, s := range st.AgentsSeen {
			if (s.Agent == agentID || strings.HasSuffix(s.Agent, "/"+agentID)) && s.LastBatch.After(last) {
				on, last = a, s.LastBatch
			}
		}
	}
	if on == nil {
		return nil, errors.New("bench: failover: no aggregator stored a batch of the agent; see its log")
	}
	return on, nil
}

// agentBatches selects the failover agent's batches: keyed by its id, or by
// "<certificate name>/<id>".
const agentBatches = `FROM agent_batches WHERE (agent_id = $1 OR agent_id LIKE '%/' || $1)`

// waitAgentStored waits until the agent's stored events reach want, or
// r.sz.drainFor passed, and returns the last count.
func (r *run) waitAgentStored(ctx context.Context, agentID string, want int64) (int64, error) {
	deadline := time.Now().Add(r.sz.drainFor)
	for {
		var n int64
		if err := r.st.db.QueryRow(ctx, "SELECT coalesce(sum(events + dead_letters), 0) "+agentBatches, agentID).Scan(&n); err != nil {
			return 0, fmt.Errorf("bench: failover: count stored events: %w", err)
		}
		if n >= want || time.Now().After(deadline) {
			return n, nil
		}
		if err := sleep(ctx, pollEvery); err != nil {
			return 0, err
		}
	}
}

// longestPause is the longest time within [from, to] in which no batch of
// the agent was stored (the window's ends count).
func (r *run) longestPause(ctx context.Context, agentID string, from, to time.Time) (time.Duration, error) {
	rows, err := r.st.db.Query(ctx, "SELECT received_at "+agentBatches+
		" AND received_at BETWEEN $2 AND $3 ORDER BY received_at", agentID, from, to)
	if err != nil {
		return 0, fmt.Errorf("bench: failover: batch times: %w", err)
	}
	defer rows.Close()
	last, longest := from, time.Duration(0)
	for rows.Next() {
		var at time.Time
		if err := rows.Scan(&at); err != nil {
			return 0, fmt.Errorf("bench: failover: batch times: %w", err)
		}
		longest, last = max(longest, at.Sub(last)), at
	}
	if err := rows.Err(); err != nil {
		return 0, fmt.Errorf("bench: failover: batch times: %w", err)
	}
	return max(longest, to.Sub(last)), nil
}
