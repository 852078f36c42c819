package ingest

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/avila-analytics/avila/aggregator/write"
	"github.com/avila-analytics/avila/internal/testenv"
	"github.com/avila-analytics/avila/protocol"
	"github.com/avila-analytics/avila/storage/postgres"
)

// Dead letters that the current rules repair are written exactly once, even
// when a replay is interrupted between its write and the delete; those that
// still break a rule stay, with the reason; a dry run writes nothing.
func TestReplay(t *testing.T) {
	url := testenv.PostgresURL(t)
	s, db := openStore(t, url), testenv.Pool(t, url)
	ctx := context.Background()
	a, _ := s.CreateSite(ctx, postgres.SiteSpec{Name: "a"})
	b, _ := s.CreateSite(ctx, postgres.SiteSpec{Name: "b"})
	h := newHandler(s)
	w := write.New(write.Config{}, s)
	ev := events(a.ID, 5)
	ev[1].Title = "caf\xe9"                      // repairable: invalid UTF-8
	ev[2].Path = "/" + strings.Repeat("p", 1200) // repairable: cut to 1000 characters
	ev[3].Name = strings.Repeat("n", 41)         // still refused
	ev[4].Site = b.ID
	ev[4].City = "a\x00b" // repairable, other property
	if ack := h.HandleBatch(ctx, wire(t, "agent-x", 1, ev), protocol.Peer{}); ack.Status != protocol.AckOK || ack.DeadLetters != 4 {
		t.Fatalf("ack %+v, want 4 dead letters", ack)
	}
	now := func() time.Time { return now0 }
	stored := func(site uint32) int {
		return count(t, db, fmt.Sprintf("SELECT count(*) FROM events WHERE site_id = %d AND flags & 256 = 0", site))
	}
	if stored(a.ID) != 1 || stored(b.ID) != 0 {
		t.Fatalf("before replay: %d and %d events", stored(a.ID), stored(b.ID))
	}

	res, err := Replay(ctx, s, w, ReplayOptions{DryRun: true, Now: now})
	if err != nil {
		t.Fatal(err)
	}
	outcomes := func(res []ReplayResult) map[string]int {
		m := map[string]int{}
		for _, r := range res {
			m[r.Outcome]++
		}
		return m
	}
	if o := outcomes(res); o[ReplayWouldStore] != 3 || o[ReplayRefused] != 1 || len(res) != 4 {
		t.Fatalf("dry run: %+v", res)
	}
	if stored(a.ID) != 1 || count(t, db, "SELECT count(*) FROM dead_letters") != 4 {
		t.Fatal("dry run wrote or deleted")
	}

	// Property b only; then a replay interrupted after writing one event of a.
	res, err = Replay(ctx, s, w, ReplayOptions{Site: b.ID, Now: now})
	if err != nil || len(res) != 1 || res[0].Outcome != ReplayStored || res[0].Repairs != "nul_byte" {
		t.Fatalf("replay of property b: %+v, %v", res, err)
	}
	rows, err := s.DeadLetters(ctx, postgres.DeadLetterFilter{AgentID: "agent-x", Limit: 1})
	if err != nil || len(rows) != 1 {
		t.Fatalf("dead letters: %v %v", rows, err)
	}
	var e protocol.Event
	if err := protocol.DecodeEvent(rows[0].Event, &e); err != nil {
		t.Fatal(err)
	}
	e.Title = "café"
	if _, err := writeReplayed(ctx, w, rows[0], e); err != nil {
		t.Fatal(err)
	}
	res, err = Replay(ctx, s, w, ReplayOptions{Now: now})
	if err != nil {
		t.Fatal(err)
	}
	if o := outcomes(res); o[ReplayAlreadyStored] != 1 || o[ReplayStored] != 1 || o[ReplayRefused] != 1 {
		t.Fatalf("replay: %+v", res)
	}
	for _, r := range res {
		if r.Outcome == ReplayRefused && !strings.Contains(r.Reason, "event_name_length") {
			t.Fatalf("refused without naming the rule: %+v", r)
		}
	}
	if stored(a.ID) != 3 || stored(b.ID) != 1 {
		t.Fatalf("after replay: %d and %d events, want 3 and 1", stored(a.ID), stored(b.ID))
	}
	if n := count(t, db, "SELECT count(*) FROM dead_letters"); n != 1 {
		t.Fatalf("%d dead letters left, want the one still refused", n)
	}
	// A second replay writes nothing.
	res, err = Replay(ctx, s, w, ReplayOptions{Now: now})
	if err != nil || len(res) != 1 || res[0].Outcome != ReplayRefused || stored(a.ID) != 3 {
		t.Fatalf("second replay: %+v %v, %d events", res, err, stored(a.ID))
	}
}
