package postgres

import (
	"context"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/avila-analytics/avila/protocol"
)

// TestResolveEventsToReuses: ResolveEventsTo into a Resolved that held
// the rows of more events, with session starts, parameters and commerce
// ids where the new events have none, gives the rows ResolveEventsTo gives
// afresh, and leaves the array zero past them.
func TestResolveEventsToReuses(t *testing.T) {
	s := newStore(t)
	ctx := context.Background()
	site, err := s.CreateSite(ctx, SiteSpec{Name: "resolve"})
	if err != nil {
		t.Fatal(err)
	}
	first := resolveBenchEvents(t, site.ID, 300)
	for i := range first {
		first[i].Flags |= protocol.FlagSessionStart
		first[i].Params = map[string]string{"k": "v"}
	}
	later := resolveBenchEvents(t, site.ID, 100)[50:]
	for i := range later {
		later[i].Flags &^= protocol.FlagSessionStart
		later[i].Params, later[i].NumParams, later[i].UserProps = nil, nil, nil
	}
	var res Resolved
	if err := s.ResolveEventsTo(ctx, &res, first, benchTraffic); err != nil {
		t.Fatal(err)
	}
	keptNothing := func() {
		t.Helper()
		for k, m := range res.dims.known {
			if len(m) != 0 {
				t.Fatalf("the known strings of kind %d kept: %d", k+1, len(m))
			}
		}
		if len(res.dims.pending) != 0 {
			t.Fatalf("%d slots kept", len(res.dims.pending))
		}
		for _, sl := range res.dims.pending[:cap(res.dims.pending)] {
			if sl.ids != nil {
				t.Fatal("the array of slots points at rows")
			}
		}
	}
	keptNothing()
	firstParams := res.params.used
	if len(firstParams) == 0 {
		t.Fatal("the events' parameters went into no buffer: the test needs them")
	}
	firstParams = append([][]byte(nil), firstParams...)
	if cap(res.dims.pending) == 0 {
		t.Fatal("the strings of a new site waited in no slot: the test needs them")
	}
	for i := range res.Rows {
		res.Rows[i].Commerce, res.Rows[i].Amounts, res.Rows[i].DayActive = 7, new(Amounts), true // as a derivation sets them
	}
	if err := s.ResolveEventsTo(ctx, &res, later, benchTraffic); err != nil {
		t.Fatal(err)
	}
	want, err := resolveNew(ctx, s, later, benchTraffic)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(want, &res, cmpopts.IgnoreUnexported(Resolved{})); diff != "" {
		t.Fatalf("reused rows differ from fresh ones (-fresh +reused):\n%s", diff)
	}
	keptNothing()
	for i, r := range res.Rows[len(res.Rows):cap(res.Rows)] {
		if r.Params != nil || r.Amounts != nil || r.Commerce != 0 {
			t.Fatalf("row %d past the events kept %+v", len(res.Rows)+i, r)
		}
	}
	// More events again, of another site too: the pairs and profiles
	// kept from the last resolutions are written over.
	other, err := s.CreateSite(ctx, SiteSpec{Name: "resolve-other"})
	if err != nil {
		t.Fatal(err)
	}
	again := append(resolveBenchEvents(t, other.ID, 120), first[100:]...)
	for i := range again[:60] {
		again[i].Flags |= protocol.FlagSessionStart
		again[i].Referrer = "https://other.example/" + again[i].Path
	}
	for i := range again {
		if len(again[i].Params) > 1 { // written in the map's order, which varies
			again[i].Params = map[string]string{"k": again[i].Path}
		}
	}
	for i := range res.Rows {
		res.Rows[i].Commerce, res.Rows[i].Amounts = 7, new(Amounts)
	}
	if err := s.ResolveEventsTo(ctx, &res, again, benchTraffic); err != nil {
		t.Fatal(err)
	}
	if want, err = resolveNew(ctx, s, again, benchTraffic); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(want, &res, cmpopts.IgnoreUnexported(Resolved{})); diff != "" {
		t.Fatalf("rows reused twice differ from fresh ones (-fresh +reused):\n%s", diff)
	}
	keptNothing()
	// The params columns were written over the first resolution's
	// buffers (the second's events have none).
	if len(res.params.used) == 0 || &res.params.used[0][:1][0] != &firstParams[len(firstParams)-1][:1][0] {
		t.Fatal("the params columns did not reuse the buffers of the first resolution")
	}
}

// resolveNew is s.ResolveEventsTo into a new Resolved.
func resolveNew(ctx context.Context, s *Store, events []protocol.Event, attribute func(path, referrer string) Traffic) (*Resolved, error) {
	res := new(Resolved)
	if err := s.ResolveEventsTo(ctx, res, events, attribute); err != nil {
		return nil, err
	}
	return res, nil
}
