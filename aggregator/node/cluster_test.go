package node

import (
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"testing"
	"time"

	"github.com/avila-analytics/avila/internal/testenv"
	"github.com/avila-analytics/avila/protocol"
	"github.com/avila-analytics/avila/storage/postgres"
)

func clusterStatus(t *testing.T, n *Node) ClusterStatus {
	t.Helper()
	resp, err := http.Get(n.OperatorURL + "/v1/cluster/status")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var st ClusterStatus
	if err := json.NewDecoder(resp.Body).Decode(&st); err != nil {
		t.Fatal(err)
	}
	return st
}

// Two nodes on one database form a cluster; acks and configs name both; a
// drained node announces it, finishes, leaves, and the other sees it go.
func TestTwoNodeClusterAndDrain(t *testing.T) {
	ctx := context.Background()
	url := testenv.PostgresURL(t)
	log := slog.New(slog.DiscardHandler)
	// Nodes share one CA, as agents must trust every node they may fail
	// over to.
	certs := t.TempDir()
	caFile, err := protocol.InitCA(certs)
	if err != nil {
		t.Fatal(err)
	}
	start := func(name string, join ...string) *Node {
		t.Helper()
		crt, err := protocol.IssueCert(certs, protocol.IssueRequest{Kind: protocol.KindAggregator, Name: name})
		if err != nil {
			t.Fatal(err)
		}
		n, err := Start(ctx, Config{DatabaseURL: url, ListenQUIC: "127.0.0.1:0", ListenAPI: "127.0.0.1:0", ListenOperator: "127.0.0.1:0", DataDir: t.TempDir(),
			TLSCert: crt.Cert, TLSKey: crt.Key,
			NodeName: name, GossipListen: "127.0.0.1:0", Join: join, Version: "v-test",
			GossipProbeInterval: 100 * time.Millisecond}, log)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = n.Shutdown(context.Background()) })
		return n
	}
	a := start("a")
	b := start("b", a.cluster.GossipAddr())

	site, err := a.store.CreateSite(ctx, postgres.SiteSpec{Name: "s"})
	if err != nil {
		t.Fatal(err)
	}
	tlsConf, err := protocol.ClientTLS(caFile, "", "")
	if err != nil {
		t.Fatal(err)
	}
	c := protocol.NewClient(b.QUICAddr, tlsConf)
	defer c.Close()
	send := func(seq uint64) protocol.Ack {
		t.Helper()
		wire, _ := protocol.EncodeBatch(&protocol.Batch{Version: protocol.Version, AgentID: "agent-x", Seq: seq,
			Events: []protocol.Event{{Site: site.ID, TimeMicros: time.Now().UnixMicro(), Name: "page_view"}}})
		ack, err := c.SendBatch(ctx, wire)
		if err != nil {
			t.Fatal(err)
		}
		return ack
	}

	deadline := time.Now().Add(20 * time.Second)
	var ack protocol.Ack
	for {
		ack = send(1)
		if len(ack.Members) == 2 || time.Now().After(deadline) {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if ack.Status != protocol.AckOK || len(ack.Members) != 2 || ack.Members[0].Name != "a" || ack.Members[1].QUICAddr != b.QUICAddr || ack.Members[0].QUICAddr != a.QUICAddr {
		t.Fatalf("ack %+v, want OK naming a and b with their QUIC addresses", ack)
	}
	cfg, err := c.FetchConfig(ctx, protocol.ConfigRequest{AgentID: "agent-x"})
	if err != nil || len(cfg.Members) != 2 {
		t.Fatalf("config %+v, %v: want both members", cfg, err)
	}

	st := clusterStatus(t, b)
	if st.Node != "b" || st.State != "serving" || !st.Clustered || st.Agents != 1 || len(st.Members) != 2 ||
		!st.Members[1].Self || st.Members[1].Agents != 1 || st.Members[0].Version != "v-test" || st.Members[0].State != "alive" ||
		len(st.AgentsSeen) != 1 || st.AgentsSeen[0].Agent != "agent-x" || st.Members[0].Protocol != protocol.Version {
		t.Errorf("b's status %+v", st)
	}
	// a reads b's batch version: a staged row of it is left to a, not
	// quarantined; one newer still is read by no node.
	if !b.readsVersion(protocol.Version) || b.readsVersion(protocol.Version+1) {
		t.Errorf("b sees a read version %d: %v, version %d: %v; want true, false", protocol.Version, b.readsVersion(protocol.Version),
			protocol.Version+1, b.readsVersion(protocol.Version+1))
	}

	if err := b.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	// b said goodbye: a drops it at once, without a suspicion period.
	deadline = time.Now().Add(10 * time.Second)
	for {
		st := clusterStatus(t, a)
		if len(st.Members) == 1 && st.Members[0].Name == "a" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("a still sees %+v after b left", st.Members)
		}
		time.Sleep(50 * time.Millisecond)
	}
	ca := protocol.NewClient(a.QUICAddr, tlsConf)
	defer ca.Close()
	wire, _ := protocol.EncodeBatch(&protocol.Batch{Version: protocol.Version, AgentID: "agent-x", Seq: 2,
		Events: []protocol.Event{{Site: site.ID, TimeMicros: time.Now().UnixMicro(), Name: "page_view"}}})
	if ack, err := ca.SendBatch(ctx, wire); err != nil || ack.Status != protocol.AckOK || len(ack.Members) != 1 {
		t.Errorf("a after b left: %+v, %v; want OK naming a alone", ack, err)
	}
}

// With --tls-client-ca the node takes batches only from agents with a
// certificate of that CA, and stores them under the certificate's name.
func TestNodeRequiresAgentCertificates(t *testing.T) {
	ctx := context.Background()
	certs := t.TempDir()
	caFile, err := protocol.InitCA(certs)
	if err != nil {
		t.Fatal(err)
	}
	srv, err := protocol.IssueCert(certs, protocol.IssueRequest{Kind: protocol.KindAggregator, Name: "agg"})
	if err != nil {
		t.Fatal(err)
	}
	agent, err := protocol.IssueCert(certs, protocol.IssueRequest{Kind: protocol.KindAgent, Name: "edge-1"})
	if err != nil {
		t.Fatal(err)
	}
	db := testenv.PostgresURL(t)
	n, err := Start(ctx, Config{DatabaseURL: db, ListenQUIC: "127.0.0.1:0", ListenAPI: "127.0.0.1:0", ListenOperator: "127.0.0.1:0",
		DataDir: t.TempDir(), TLSCert: srv.Cert, TLSKey: srv.Key, TLSClientCA: caFile}, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	defer n.Shutdown(ctx)
	site, err := n.store.CreateSite(ctx, postgres.SiteSpec{Name: "s"})
	if err != nil {
		t.Fatal(err)
	}
	wire, _ := protocol.EncodeBatch(&protocol.Batch{Version: protocol.Version, AgentID: "q1", Seq: 1,
		Events: []protocol.Event{{Site: site.ID, TimeMicros: time.Now().UnixMicro(), Name: "page_view"}}})
	send := func(cert, key string) (protocol.Ack, error) {
		conf, err := protocol.ClientTLS(caFile, cert, key)
		if err != nil {
			t.Fatal(err)
		}
		c := protocol.NewClient(n.QUICAddr, conf)
		defer c.Close()
		sctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		return c.SendBatch(sctx, wire)
	}
	if ack, err := send("", ""); err == nil {
		t.Errorf("agent without certificate got %+v", ack)
	}
	if ack, err := send(agent.Cert, agent.Key); err != nil || ack.Status != protocol.AckOK {
		t.Fatalf("agent with certificate: %+v, %v", ack, err)
	}
	var key string
	if err := testenv.Pool(t, db).QueryRow(ctx, `SELECT agent_id FROM agent_batches`).Scan(&key); err != nil || key != "edge-1/q1" {
		t.Errorf("batch stored under %q (%v), want edge-1/q1", key, err)
	}
}

// The cluster status and the metrics tell how far reports lag ingest: a
// batch whose site another transaction holds the derivation of shows as
// staged, its age growing, and as nothing staged once it is derived.
func TestClusterStatusShowsBacklog(t *testing.T) {
	ctx := context.Background()
	url := testenv.PostgresURL(t)
	n, err := Start(ctx, Config{DatabaseURL: url, ListenQUIC: "127.0.0.1:0", ListenAPI: "127.0.0.1:0", ListenOperator: "127.0.0.1:0",
		DataDir: t.TempDir()}, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = n.Shutdown(context.Background()) })
	site, err := n.store.CreateSite(ctx, postgres.SiteSpec{Name: "backlog"})
	if err != nil {
		t.Fatal(err)
	}
	other, err := postgres.Open(ctx, url, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	d, err := other.BeginDerive(ctx, site.ID)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Rollback(ctx)
	now := time.Now().UnixMicro()
	sendBatch(t, n, 1, []protocol.Event{
		{Site: site.ID, Visitor: 1, TimeMicros: now, Name: "page_view"},
		{Site: site.ID, Visitor: 1, TimeMicros: now + 1, Name: "scroll"},
	})
	waitStatus := func(what string, ok func(StagedStatus) bool) StagedStatus {
		t.Helper()
		deadline := time.Now().Add(20 * time.Second)
		for {
			st := clusterStatus(t, n).Staged
			if ok(st) {
				return st
			}
			if time.Now().After(deadline) {
				t.Fatalf("cluster status staged = %+v after 20 s, want %s", st, what)
			}
			time.Sleep(50 * time.Millisecond) // polling, bounded above
		}
	}
	st := waitStatus("2 events staged on 1 site, 0.5 s old or more", func(st StagedStatus) bool {
		return st.Events == 2 && st.Sites == 1 && st.OldestSeconds >= 0.5
	})
	if time.Since(st.LookedAt) > 10*time.Second {
		t.Errorf("looked at %v, over 10 s ago", st.LookedAt)
	}
	if v := scrape(t, n.OperatorURL, "analytics_write_staged_events"); v != 2 {
		t.Errorf("analytics_write_staged_events = %v, want 2", v)
	}
	if v := scrape(t, n.OperatorURL, "analytics_write_staged_oldest_seconds"); v < 0.5 {
		t.Errorf("analytics_write_staged_oldest_seconds = %v, want 0.5 or more", v)
	}
	if st.QuarantinedRows != 0 {
		t.Errorf("%d quarantined rows, want none", st.QuarantinedRows)
	}
	d.Rollback(ctx)
	waitStatus("nothing staged", func(st StagedStatus) bool { return st.Events == 0 && st.Sites == 0 && st.OldestSeconds == 0 })
	// A row no derivation could take, as the write stage quarantines it.
	if _, err := testenv.Pool(t, url).Exec(ctx, `INSERT INTO staged_quarantine (site_id, id, events, payload, staged_at, reason)
		VALUES ($1, 1, 9, 'x', now(), 'test')`, int32(site.ID)); err != nil {
		t.Fatal(err)
	}
	if st := clusterStatus(t, n).Staged; st.QuarantinedRows != 1 || st.QuarantinedEvents != 9 {
		t.Errorf("status quarantine: %d rows, %d events; want 1, 9", st.QuarantinedRows, st.QuarantinedEvents)
	}
	if v := scrape(t, n.OperatorURL, "analytics_write_staged_oldest_seconds"); v != 0 {
		t.Errorf("analytics_write_staged_oldest_seconds = %v once derived, want 0", v)
	}
}
