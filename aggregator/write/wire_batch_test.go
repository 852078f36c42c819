package write

import (
	"bytes"
	"context"
	"testing"

	"github.com/avila-analytics/avila/protocol"
	"github.com/avila-analytics/avila/storage/postgres"
)

// TestWriteWireBatch: a one-site batch is staged as the wire form it came
// in, and derives as WriteBatch's would; a batch of several sites is split
// by site as WriteBatch does.
func TestWriteWireBatch(t *testing.T) {
	s := newStore(t)
	ctx := context.Background()
	a, _ := s.CreateSite(ctx, postgres.SiteSpec{Name: "a"})
	b, _ := s.CreateSite(ctx, postgres.SiteSpec{Name: "b"})
	w := New(Config{}, s.Store)
	events := testEvents(a.ID, 30)
	wire, err := protocol.EncodeBatch(&protocol.Batch{Version: protocol.Version, AgentID: "edge", Seq: 1, Events: events})
	if err != nil {
		t.Fatal(err)
	}
	res, err := w.WriteWireBatch(ctx, "edge", 1, events, wire)
	if err != nil || res.Staged != 30 {
		t.Fatalf("staged %d, %v; want 30", res.Staged, err)
	}
	var payload []byte
	if err := s.Pool.QueryRow(ctx, "SELECT payload FROM staged_events WHERE site_id = $1", int32(a.ID)).Scan(&payload); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(payload, wire) {
		t.Fatalf("staged payload is not the wire batch (%d bytes, wire %d)", len(payload), len(wire))
	}

	mixed := append(testEvents(a.ID, 10), testEvents(b.ID, 5)...)
	for i := range mixed {
		mixed[i].TimeMicros += 3600e6 // after the first batch's
	}
	wire2, err := protocol.EncodeBatch(&protocol.Batch{Version: protocol.Version, AgentID: "edge", Seq: 2, Events: mixed})
	if err != nil {
		t.Fatal(err)
	}
	if res, err := w.WriteWireBatch(ctx, "edge", 2, mixed, wire2); err != nil || res.Staged != 15 {
		t.Fatalf("staged %d, %v; want 15", res.Staged, err)
	}
	if n := count(t, s, "SELECT count(*) FROM staged_events WHERE site_id = $1", int32(b.ID)); n != 1 {
		t.Fatalf("%d staged rows of the second site, want its own share", n)
	}
	if err := w.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if got := derivedTotals(t, s, a.ID); got != [3]int{40, 40, 40} {
		t.Fatalf("site a: events, in sessions, in rollups: %v, want 40 each", got)
	}
	if got := derivedTotals(t, s, b.ID); got != [3]int{5, 5, 5} {
		t.Fatalf("site b: events, in sessions, in rollups: %v, want 5 each", got)
	}
}
