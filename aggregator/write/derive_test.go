package write

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/avila-analytics/avila/protocol"
	"github.com/avila-analytics/avila/storage/postgres"
)

// visitEvents are n events of 40 visitors, a minute apart per visitor, no
// GA4 session ids: sessions come from the write stage alone.
func visitEvents(site uint32, from, n int) []protocol.Event {
	out := make([]protocol.Event, n)
	for i := range out {
		j := from + i
		out[i] = protocol.Event{Site: site, Visitor: uint64(j%40 + 1), Name: "page_view",
			TimeMicros: day0.Add(time.Duration(j/40) * time.Minute).UnixMicro(), Path: fmt.Sprintf("/p/%d", j%7)}
	}
	return out
}

// derivedTotals are the counts that each must equal the number of events
// derived: events rows, events held by sessions, events in the rollups;
// the events the write stage derived itself (session_start, first_visit),
// which all three hold too, taken out.
// waitDerived polls until no event of site is staged, and fails the test
// if some still are after limit.
func waitDerived(t *testing.T, s *testStore, site uint32, limit time.Duration) {
	t.Helper()
	start := time.Now()
	for {
		n, err := s.StagedEvents(context.Background(), site)
		if err != nil {
			t.Fatal(err)
		}
		if n == 0 {
			return
		}
		if time.Since(start) > limit {
			t.Fatalf("%d events still staged after %s", n, limit)
		}
		time.Sleep(5 * time.Millisecond) // polling, with the limit above
	}
}

func derivedTotals(t *testing.T, s *testStore, site uint32) [3]int {
	t.Helper()
	own := count(t, s, "SELECT count(*) FROM events WHERE site_id = $1 AND flags & $2 <> 0", int32(site), postgres.EventFlagDerived)
	return [3]int{
		count(t, s, "SELECT count(*) FROM events WHERE site_id = $1", int32(site)) - own,
		count(t, s, "SELECT coalesce(sum(events), 0) FROM sessions WHERE site_id = $1", int32(site)) - own,
		count(t, s, "SELECT coalesce(sum(events), 0) FROM rollup_days WHERE site_id = $1 AND kind = 0", int32(site)) - own,
	}
}

// TestStageThenDerive: an acknowledged batch is staged, not yet in the
// tables reports read; a derivation makes it visible once, and a resend
// of a derived batch stages nothing.
func TestStageThenDerive(t *testing.T) {
	s := newStore(t)
	ctx := context.Background()
	site, _ := s.CreateSite(ctx, postgres.SiteSpec{Name: "stage"})
	res, err := s.w.WriteBatch(ctx, "a", 1, visitEvents(site.ID, 0, 200), nil)
	if err != nil || res.Staged != 200 {
		t.Fatalf("stage: %+v, %v", res, err)
	}
	if n, err := s.StagedEvents(ctx, site.ID); err != nil || n != 200 {
		t.Fatalf("staged events %d, %v; want 200", n, err)
	}
	if got := derivedTotals(t, s, site.ID); got != [3]int{} {
		t.Fatalf("visible before derivation: %v", got)
	}
	var derived []int
	s.w.cfg.Derived = func(_ context.Context, got uint32, events []protocol.Event) {
		if got != site.ID {
			t.Errorf("Derived called for site %d, want %d", got, site.ID)
		}
		derived = append(derived, len(events))
	}
	if err := s.w.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if got := derivedTotals(t, s, site.ID); got != [3]int{200, 200, 200} {
		t.Fatalf("events, in sessions, in rollups after derivation: %v, want 200 each", got)
	}
	own := count(t, s, "SELECT count(*) FROM events WHERE flags & $1 <> 0", postgres.EventFlagDerived)
	if len(derived) != 1 || derived[0] != 200+own || own == 0 {
		t.Errorf("Derived saw %v, want one derivation of 200 events and the %d it derived", derived, own)
	}
	if n, _ := s.StagedEvents(ctx, site.ID); n != 0 {
		t.Errorf("%d events still staged", n)
	}
	if res, err := s.w.WriteBatch(ctx, "a", 1, visitEvents(site.ID, 0, 200), nil); err != nil || !res.Duplicate {
		t.Fatalf("resend: %+v, %v", res, err)
	}
	if err := s.w.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if got := derivedTotals(t, s, site.ID); got != [3]int{200, 200, 200} {
		t.Fatalf("after a resend: %v, want 200 each", got)
	}
}

// TestDerivationCutShort: a derivation that dies after writing its rows
// but before committing (as under SIGKILL: PostgreSQL rolls the
// transaction back) leaves the staged events to the next, which derives
// each exactly once. A derivation holding a site keeps every other out.
func TestDerivationCutShort(t *testing.T) {
	s := newStore(t)
	ctx := context.Background()
	site, _ := s.CreateSite(ctx, postgres.SiteSpec{Name: "cut"})
	if _, err := s.w.WriteBatch(ctx, "a", 1, visitEvents(site.ID, 0, 300), nil); err != nil {
		t.Fatal(err)
	}
	// A second node: its own pool, its own write stage.
	other := s.otherNode(t)
	d, err := other.BeginDerive(ctx, site.ID)
	if err != nil {
		t.Fatal(err)
	}
	staged, _, err := d.TakeInto(ctx, nil, 10, 1000)
	if err != nil || len(staged) != 1 {
		t.Fatalf("take: %d rows, %v", len(staged), err)
	}
	b, err := protocol.DecodeBatch(staged[0].Payload)
	if err != nil {
		t.Fatal(err)
	}
	if err := other.EnsureEventDays(ctx, b.Events); err != nil {
		t.Fatal(err)
	}
	res, err := resolveNew(ctx, other, b.Events, trafficSource)
	if err != nil {
		t.Fatal(err)
	}
	if err := d.CopyEvents(ctx, res.Rows); err != nil {
		t.Fatal(err)
	}
	// Meanwhile the site is the other's: a derivation elsewhere backs off.
	if _, err := s.BeginDerive(ctx, site.ID); !errors.Is(err, postgres.ErrSiteBusy) {
		t.Fatalf("a second derivation of the site began: %v", err)
	}
	if n, _, err := s.w.deriveSite(ctx, site.ID, false); !errors.Is(err, postgres.ErrSiteBusy) || n != 0 {
		t.Fatalf("derivation beside another: %d events, %v; want ErrSiteBusy", n, err)
	}
	d.Rollback(ctx)
	if got := derivedTotals(t, s, site.ID); got != [3]int{} {
		t.Fatalf("rows of a derivation rolled back are visible: %v", got)
	}
	if err := s.w.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if got := derivedTotals(t, s, site.ID); got != [3]int{300, 300, 300} {
		t.Fatalf("after the next derivation: %v, want 300 each", got)
	}
}

// TestTwoNodesOneSite: two aggregator nodes stage one site's batches side
// by side, in any order, while both derive in the background; every event
// is derived once, and each visitor's session (a GA4 session id) holds its
// events from both nodes' batches.
func TestTwoNodesOneSite(t *testing.T) {
	s := newStore(t)
	ctx := context.Background()
	site, _ := s.CreateSite(ctx, postgres.SiteSpec{Name: "two"})
	other := s.otherNode(t)
	nodes := []*Writer{New(Config{Every: 10 * time.Millisecond}, s.Store), New(Config{Every: 10 * time.Millisecond}, other)}
	runCtx, cancel := context.WithCancel(ctx)
	var loops sync.WaitGroup
	for _, w := range nodes {
		loops.Go(func() { w.Run(runCtx) })
	}
	defer loops.Wait()
	defer cancel()

	const batches, per = 40, 100
	events := visitEvents(site.ID, 0, batches*per)
	for i := range events {
		events[i].SessionID = 1748779200 + int64(events[i].Visitor)
	}
	var senders sync.WaitGroup
	errs := make(chan error, batches)
	for b := range batches {
		senders.Go(func() {
			if _, err := nodes[b%2].WriteBatch(ctx, "edge", uint64(b+1), events[b*per:(b+1)*per], nil); err != nil {
				errs <- err
			}
		})
	}
	senders.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	waitDerived(t, s, site.ID, time.Minute)
	const want = batches * per
	if got := derivedTotals(t, s, site.ID); got != [3]int{want, want, want} {
		t.Fatalf("events, in sessions, in rollups: %v, want %d each", got, want)
	}
	// 40 visitors, one session id each: one session each, however the
	// batches were split between nodes and derivations.
	if n := count(t, s, "SELECT count(*) FROM sessions WHERE site_id = $1", int32(site.ID)); n != 40 {
		t.Errorf("%d sessions, want one per visitor (40)", n)
	}
	// Derived exactly once: one session_start per session, one
	// first_visit per new visitor, however the derivations went.
	if n := count(t, s, `SELECT count(*) FROM events e JOIN dims d ON d.id = e.name_id
		WHERE e.site_id = $1 AND e.flags & $2 <> 0 AND d.value = 'session_start'`, int32(site.ID), postgres.EventFlagDerived); n != 40 {
		t.Errorf("%d derived session_start events, want one per session (40)", n)
	}
	if n := count(t, s, `SELECT count(*) FROM events e JOIN dims d ON d.id = e.name_id
		WHERE e.site_id = $1 AND e.flags & $2 <> 0 AND d.value = 'first_visit'`, int32(site.ID), postgres.EventFlagDerived); n != 40 {
		t.Errorf("%d derived first_visit events, want one per new visitor (40)", n)
	}
	if n := count(t, s, `SELECT count(*) FROM events e WHERE e.site_id = $1 AND NOT EXISTS (SELECT 1 FROM sessions x
		WHERE x.site_id = e.site_id AND x.visitor_id = e.visitor_id AND x.session_id = e.session_id)`, int32(site.ID)); n != 0 {
		t.Errorf("%d events without their session", n)
	}
}

// resolveNew is s.ResolveEventsTo into a new Resolved.
func resolveNew(ctx context.Context, s *postgres.Store, events []protocol.Event, attribute func(path, referrer string) postgres.Traffic) (*postgres.Resolved, error) {
	res := new(postgres.Resolved)
	if err := s.ResolveEventsTo(ctx, res, events, attribute); err != nil {
		return nil, err
	}
	return res, nil
}
