package node

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/avila-analytics/avila/internal/testenv"
	"github.com/avila-analytics/avila/protocol"
	"github.com/avila-analytics/avila/storage/postgres"
)

// realtimeReport posts body to node's runRealtimeReport for site.
func realtimeReport(t *testing.T, n *Node, site uint32, key, body string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, n.APIURL+"/v1beta/properties/"+itoa(site)+":runRealtimeReport", bytes.NewBufferString(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+key)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func startNode(t *testing.T, db, redisURL, prefix string) *Node {
	t.Helper()
	n, err := Start(context.Background(), Config{DatabaseURL: db, RedisURL: redisURL, RedisPrefix: prefix,
		ListenQUIC: "127.0.0.1:0", ListenAPI: "127.0.0.1:0", ListenOperator: "127.0.0.1:0", DataDir: t.TempDir()}, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		_ = n.Shutdown(ctx)
	})
	return n
}

func sendBatch(t *testing.T, n *Node, seq uint64, events []protocol.Event) {
	t.Helper()
	tlsConf, err := protocol.ClientTLS(n.CAFile, "", "")
	if err != nil {
		t.Fatal(err)
	}
	c := protocol.NewClient(n.QUICAddr, tlsConf)
	defer c.Close()
	wire, err := protocol.EncodeBatch(&protocol.Batch{Version: protocol.Version, AgentID: "realtime-test", Seq: seq, Events: events})
	if err != nil {
		t.Fatal(err)
	}
	ack, err := c.SendBatch(context.Background(), wire)
	if err != nil || ack.Status != protocol.AckOK || ack.Stored != len(events) {
		t.Fatalf("batch: %+v, %v", ack, err)
	}
}

// TestRealtimeThroughIngest: a batch committed on node B shows in node A's
// runRealtimeReport and on a WebSocket connected to node A before the commit
// (shared Redis); a node without Redis answers its own commits the same way.
func TestRealtimeThroughIngest(t *testing.T) {
	db := testenv.PostgresURL(t)
	prefix := testenv.Prefix(t)
	a := startNode(t, db, testenv.RedisURL(t), prefix)
	b := startNode(t, db, testenv.RedisURL(t), prefix)
	ctx := context.Background()
	site, err := a.store.CreateSite(ctx, postgres.SiteSpec{Name: "live"})
	if err != nil {
		t.Fatal(err)
	}
	other, err := a.store.CreateSite(ctx, postgres.SiteSpec{Name: "other"})
	if err != nil {
		t.Fatal(err)
	}
	key, err := a.store.CreateAPIKey(ctx, "realtime", []uint32{site.ID})
	if err != nil {
		t.Fatal(err)
	}
	wsURL := "ws" + strings.TrimPrefix(a.APIURL, "http") + "/v1/realtime/ws?property=" + itoa(site.ID) + "&key=" + key
	dctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	conn, _, err := websocket.Dial(dctx, wsURL, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.CloseNow()
	if _, _, err := conn.Read(dctx); err != nil { // the first summary, before the commit
		t.Fatal(err)
	}
	if v := scrape(t, a.OperatorURL, "analytics_realtime_sockets"); v != 1 {
		t.Errorf("analytics_realtime_sockets = %v on node A, want 1", v)
	}
	if _, resp, err := websocket.Dial(dctx, strings.Replace(wsURL, "property="+itoa(site.ID), "property="+itoa(other.ID), 1), nil); err == nil || resp.StatusCode != http.StatusForbidden {
		t.Fatalf("socket for another property: %v %v, want 403", resp, err)
	}

	now := time.Now()
	events := []protocol.Event{
		// Visitors with engagement time: active users.
		{Site: site.ID, TimeMicros: now.UnixMicro(), Name: "page_view", Visitor: 1, Country: "FR", Title: "Accueil", EngageMs: 10},
		{Site: site.ID, TimeMicros: now.UnixMicro(), Name: "click", Visitor: 1, Country: "FR", Title: "Accueil", EngageMs: 10},
		{Site: site.ID, TimeMicros: now.UnixMicro(), Name: "page_view", Visitor: 2, Country: "FR", Title: "Prix", EngageMs: 10},
		{Site: site.ID, TimeMicros: now.Add(-45 * time.Minute).UnixMicro(), Name: "page_view", Visitor: 3, Country: "FR", EngageMs: 10},
	}
	sendBatch(t, b, 1, events)
	// Node B derives the batch: the session_start and first_visit it adds
	// to each new visitor's session count in realtime too, once (visitor
	// 3's are as old as its event, out of the window).
	if err := b.Flush(ctx); err != nil {
		t.Fatal(err)
	}

	const body = `{"dimensions":[{"name":"eventName"}],"metrics":[{"name":"activeUsers"},{"name":"eventCount"}]}`
	want := []string{`{"dimensionValues":[{"value":"page_view"}],"metricValues":[{"value":"2"},{"value":"2"}]}`,
		// session_start carries no engagement, but its users are active
		// (their first visits): each counts under it, as in the reports
		// (activeUsers by eventName counts the users active that day).
		`{"dimensionValues":[{"value":"session_start"}],"metricValues":[{"value":"2"},{"value":"2"}]}`,
		`{"dimensionValues":[{"value":"first_visit"}],"metricValues":[{"value":"2"},{"value":"2"}]}`,
		`{"dimensionValues":[{"value":"click"}],"metricValues":[{"value":"1"},{"value":"1"}]}`, `"rowCount":4`}
	hasAll := func(out string) bool {
		for _, w := range want {
			if !strings.Contains(out, w) {
				return false
			}
		}
		return true
	}
	// Whichever node derived it announces the derived events after its
	// commit, maybe just after Flush returned: poll.
	for _, n := range []*Node{a, b} {
		for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(50 * time.Millisecond) {
			code, out := realtimeReport(t, n, site.ID, key, body)
			if code == 200 && hasAll(out) {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("runRealtimeReport: %d %s, want rows %s", code, out, want)
			}
		}
	}
	if code, out := realtimeReport(t, a, other.ID, key, body); code != http.StatusForbidden {
		t.Fatalf("another property: %d %s, want 403", code, out)
	}
	rctx, rcancel := context.WithTimeout(ctx, 15*time.Second)
	defer rcancel()
	for {
		_, msg, err := conn.Read(rctx)
		if err != nil {
			t.Fatalf("socket on node A never saw node B's commit: %v", err)
		}
		var s struct{ ActiveUsers, EventCount, ScreenPageViews int64 }
		if err := json.Unmarshal(msg, &s); err != nil {
			t.Fatal(err)
		}
		// The staged batch shows first (3 events), then what its
		// derivation added (7).
		if s.EventCount == 7 {
			if s.ActiveUsers != 2 || s.ScreenPageViews != 2 {
				t.Fatalf("summary %s, want 2 users, 7 events, 2 views", msg)
			}
			break
		}
		if s.EventCount > 7 {
			t.Fatalf("summary %s: more than the 7 events stored", msg)
		}
	}

	if v := scrape(t, b.OperatorURL, "analytics_realtime_redis_errors_total"); v != 0 {
		t.Errorf("analytics_realtime_redis_errors_total = %v on node B, want 0", v)
	}

	// Without Redis: a node counts its own commits in memory, same answer.
	// On a database of its own: nodes A and B, still running, derive any
	// site's staged batches, and one of their timed looks landing between
	// this node's staging and its Flush would count what the derivation
	// adds in Redis, not here.
	solo := startNode(t, testenv.PostgresURL(t), "", "")
	alone, err := solo.store.CreateSite(ctx, postgres.SiteSpec{Name: "alone"})
	if err != nil {
		t.Fatal(err)
	}
	sendBatch(t, solo, 2, []protocol.Event{
		{Site: alone.ID, TimeMicros: now.UnixMicro(), Name: "page_view", Visitor: 1, Flags: protocol.FlagFirstVisit},
		{Site: alone.ID, TimeMicros: now.UnixMicro(), Name: "click", Visitor: 1, EngageMs: 10},
		{Site: alone.ID, TimeMicros: now.UnixMicro(), Name: "page_view", Visitor: 2, Flags: protocol.FlagFirstVisit},
	})
	if err := solo.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	key2, err := solo.store.CreateAPIKey(ctx, "alone", []uint32{alone.ID})
	if err != nil {
		t.Fatal(err)
	}
	if code, out := realtimeReport(t, solo, alone.ID, key2, body); code != 200 || !hasAll(out) {
		t.Fatalf("runRealtimeReport without Redis: %d %s, want rows %s", code, out, want)
	}
}

// TestRealtimeMaxCells: Config.RealtimeMaxCells bounds the cells a site's
// minute holds in the node's memory; a node without the setting holds
// them all.
func TestRealtimeMaxCells(t *testing.T) {
	db := testenv.PostgresURL(t)
	ctx := context.Background()
	for i, tc := range []struct{ max, want int }{{2, 2}, {0, 5}} {
		n, err := Start(ctx, Config{DatabaseURL: db, ListenQUIC: "127.0.0.1:0", ListenAPI: "127.0.0.1:0", ListenOperator: "127.0.0.1:0",
			DataDir: t.TempDir(), RealtimeMaxCells: tc.max}, slog.New(slog.DiscardHandler))
		if err != nil {
			t.Fatal(err)
		}
		site, err := n.store.CreateSite(ctx, postgres.SiteSpec{Name: "cells"})
		if err != nil {
			t.Fatal(err)
		}
		now := time.Now().UnixMicro()
		var events []protocol.Event
		for v := range 5 { // five users: five cells of one minute
			events = append(events, protocol.Event{Site: site.ID, Visitor: uint64(v + 1), TimeMicros: now, Name: "page_view",
				Host: "example.com", Path: "/", Country: "DE", Device: "desktop"})
		}
		sendBatch(t, n, uint64(i+1), events) // one database: a batch key each
		w, err := n.realtime.Window(ctx, site.ID)
		if err != nil {
			t.Fatal(err)
		}
		cells := 0
		for _, m := range w.Minutes {
			cells += len(m.Cells)
		}
		if cells != tc.want {
			t.Errorf("RealtimeMaxCells %d: %d cells held, want %d", tc.max, cells, tc.want)
		}
		sctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		if err := n.Shutdown(sctx); err != nil {
			t.Error(err)
		}
		cancel()
	}
}
