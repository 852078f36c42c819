package postgres

import (
	"context"
	"math/rand/v2"
	"testing"

	"github.com/avila-analytics/avila/protocol"
)

// TestProfileKeyOf: every profile's key read at constant indices is the
// key read kind by kind from its Kinds, over random dims ids.
func TestProfileKeyOf(t *testing.T) {
	rng := rand.New(rand.NewPCG(31, 32))
	for range 1000 {
		var dims [numDimKinds]int32
		for k := range dims {
			dims[k] = rng.Int32()
		}
		site := rng.Int32()
		for _, p := range Profiles {
			if got, want := profileKeyOf(p, site, &dims), profileKeyOfKinds(p, site, &dims); got != want {
				t.Fatalf("%s: key %+v, by its kinds %+v", p.Table, got, want)
			}
		}
	}
}

// TestEventProfilesIDs: the content, client and traffic ids resolution
// gives each row are the ids of the profile rows holding the row's dims
// ids (traffic: the session's first event's, the rows of other events
// 0), so that no profile's id lands in another's column.
func TestEventProfilesIDs(t *testing.T) {
	s := newStore(t)
	ctx := context.Background()
	site, err := s.CreateSite(ctx, SiteSpec{Name: "profiles"})
	if err != nil {
		t.Fatal(err)
	}
	events := resolveBenchEvents(t, site.ID, 400)
	for i := range events {
		if i%20 == 0 {
			events[i].Flags |= protocol.FlagSessionStart
		}
	}
	var res Resolved
	if err := s.ResolveEventsTo(ctx, &res, events, benchTraffic); err != nil {
		t.Fatal(err)
	}
	stored := map[profileKey]int32{}
	for _, p := range Profiles {
		cols := "site_id"
		for _, k := range p.Kinds {
			cols += ", " + DimColumns[k]
		}
		rows, err := s.pool.Query(ctx, "SELECT id, "+cols+" FROM "+p.Table)
		if err != nil {
			t.Fatal(err)
		}
		for rows.Next() {
			var id int32
			var k profileKey
			dest := []any{&id, &k.site}
			for j := range p.Kinds {
				dest = append(dest, &k.ids[j])
			}
			if err := rows.Scan(dest...); err != nil {
				t.Fatal(err)
			}
			stored[k] = id
		}
		if err := rows.Err(); err != nil {
			t.Fatal(err)
		}
	}
	var traffic int
	for i := range res.Rows {
		r := &res.Rows[i]
		for _, c := range []struct {
			p  *Profile
			id int32
		}{{ContentProfile, r.Content}, {ClientProfile, r.Client}, {TrafficProfile, r.Traffic}} {
			k := profileKeyOfKinds(c.p, r.Site, &r.Dims)
			want, ok := stored[k]
			if k.ids == ([maxProfileKinds]int32{}) {
				want, ok = 0, true
			}
			if !ok || c.id != want {
				t.Fatalf("row %d: %s id %d, the table's %d (%v)", i, c.p.Table, c.id, want, ok)
			}
		}
		if r.Traffic != 0 {
			traffic++
		}
	}
	if traffic == 0 {
		t.Fatal("no row has a traffic profile: the test needs some")
	}
}
