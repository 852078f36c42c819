package ingest

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/avila-analytics/avila/internal/testenv"
	"github.com/avila-analytics/avila/protocol"
	"github.com/avila-analytics/avila/storage/postgres"
)

// TestBatchDebugRecord: at debug level every decoded batch is logged once
// with its id (agent, seq) and what became of it.
func TestBatchDebugRecord(t *testing.T) {
	s := openStore(t, testenv.PostgresURL(t))
	ctx := context.Background()
	site, err := s.CreateSite(ctx, postgres.SiteSpec{Name: "a"})
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	log := slog.New(slog.NewJSONHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug}))
	h := New(Options{Logger: log, Now: func() time.Time { return now0 }}, s, derived(s))
	for range 2 {
		if ack := h.HandleBatch(ctx, wire(t, "agent-7", 42, events(site.ID, 3)), protocol.Peer{}); ack.Status != protocol.AckOK {
			t.Fatalf("batch: %+v", ack)
		}
	}
	var recs []map[string]any
	for _, line := range strings.Split(strings.TrimSpace(buf.String()), "\n") {
		var rec map[string]any
		if err := json.Unmarshal([]byte(line), &rec); err != nil {
			t.Fatalf("log line %q: %v", line, err)
		}
		if rec["msg"] == "batch" {
			recs = append(recs, rec)
		}
	}
	if len(recs) != 2 {
		t.Fatalf("%d batch records, want 2:\n%s", len(recs), buf.String())
	}
	for i, wantDup := range []bool{false, true} {
		r := recs[i]
		if r["agent"] != "agent-7" || r["seq"] != float64(42) || r["events"] != float64(3) || r["status"] != "ok" || r["duplicate"] != wantDup {
			t.Errorf("record %d: %v", i, r)
		}
	}
}
