package e2e

import (
	"context"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/quic-go/quic-go"

	"github.com/avila-analytics/avila/internal/testenv"
	"github.com/avila-analytics/avila/protocol"
)

// Malformed QUIC frames, a truncated zstd payload, an oversized HTTP body and
// a batch holding one bad event each get a clear answer; both processes keep
// running and a load sent around them is stored exactly once.
func TestBadInputLosesNothing(t *testing.T) {
	s := newStack(t, testenv.PostgresURL(t))
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	loadDone := make(chan *loadResult, 1)
	go func() { loadDone <- sendHits(ctx, s, 10_000, 8, nil) }()

	cliTLS, err := protocol.ClientTLS(s.ca, "", "")
	if err != nil {
		t.Fatal(err)
	}
	quicAddr := s.agg.ready["quic"]

	// Raw frames on their own streams.
	conn, err := quic.DialAddr(ctx, quicAddr, cliTLS, &quic.Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.CloseWithError(0, "")
	raw := func(name string, frame []byte, want string) {
		t.Helper()
		str, err := conn.OpenStreamSync(ctx)
		if err != nil {
			t.Fatal(err)
		}
		_, _ = str.Write(frame)
		_ = str.Close()
		typ, payload, err := protocol.ReadFrame(str, protocol.MaxFrameSize)
		var ack protocol.Ack
		if err != nil || typ != protocol.FrameAck || protocol.DecodeMsg(payload, &ack) != nil {
			t.Fatalf("%s: no ack: %v", name, err)
		}
		if ack.Status != protocol.AckReject || !strings.Contains(ack.Reason, want) {
			t.Fatalf("%s: ack %+v, want reject saying %q", name, ack, want)
		}
	}
	raw("unknown frame type", []byte{99, 0, 0, 0, 1, 0}, "unknown frame type")
	raw("length beyond limit", []byte{1, 0x7f, 0xff, 0xff, 0xff}, "frame too large")

	client := protocol.NewClient(quicAddr, cliTLS)
	defer client.Close()
	good := protocol.Event{Site: s.site.ID, TimeMicros: time.Now().UnixMicro(), Name: "page_view", Visitor: 7, Path: "/bad-input/good"}
	bad := good
	bad.Name = strings.Repeat("n", 41)
	wire, err := protocol.EncodeBatch(&protocol.Batch{Version: protocol.Version, AgentID: "e2e-bad-input", Seq: 1, Events: []protocol.Event{good, bad}})
	if err != nil {
		t.Fatal(err)
	}
	ack, err := client.SendBatch(ctx, wire[:len(wire)-4])
	if err != nil || ack.Status != protocol.AckReject || !strings.Contains(ack.Reason, "zstd") {
		t.Fatalf("truncated zstd: ack %+v err %v, want reject naming zstd", ack, err)
	}
	ack, err = client.SendBatch(ctx, wire)
	if err != nil || ack.Status != protocol.AckOK || ack.Stored != 1 || ack.DeadLetters != 1 {
		t.Fatalf("batch with one bad event: ack %+v err %v, want OK with 1 stored and 1 dead letter", ack, err)
	}
	var reason string
	if err := s.db.QueryRow(ctx, `SELECT reason FROM dead_letters WHERE agent_id = 'e2e-bad-input'`).Scan(&reason); err != nil {
		t.Fatalf("dead letter not recorded: %v", err)
	}
	if !strings.Contains(reason, "name") {
		t.Fatalf("dead letter reason %q does not name the event name", reason)
	}

	// An oversized body at the edge: 413 with a reason.
	body := strings.Repeat("v=2&tid="+s.site.MeasurementID+"&en=page_view&dl=http%3A%2F%2Fe2e.test%2Fbig\n", 400)
	resp, err := http.Post(s.agent.ready["agent"]+"/g/collect?v=2&tid="+s.site.MeasurementID, "text/plain", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	msg, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusRequestEntityTooLarge || len(msg) == 0 {
		t.Fatalf("oversized body: %d %q, want 413 with a reason", resp.StatusCode, msg)
	}

	res := <-loadDone
	s.agg.alive()
	s.agent.alive()
	if len(res.acked) != 10_000 {
		t.Fatalf("load around bad input: %d of 10000 acknowledged, statuses %v", len(res.acked), res.status)
	}
	stored := s.expectExactlyOnce(res)
	if len(stored) != 10_000 {
		t.Fatalf("stored %d distinct hits, want 10000", len(stored))
	}
}
