package bench

import (
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/vmihailenco/msgpack/v5"

	"github.com/avila-analytics/avila/protocol"
	"github.com/avila-analytics/avila/storage/postgres"
)

// fakeContents are content profile ids past the fake dictionary's ids.
func fakeContents() []int32 {
	ids := make([]int32, dictSizes[kindPage])
	for i := range ids {
		ids[i] = int32(50_000 + i)
	}
	return ids
}

// fakeClients are client profile ids past the fake dictionary's ids.
func fakeClients() []int32 {
	ids := make([]int32, maxVisitorSlots)
	for i := range ids {
		ids[i] = int32(100_000 + i)
	}
	return ids
}

func fakeTraffic() []int32 {
	ids := make([]int32, len(trafficSources))
	for i := range ids {
		ids[i] = int32(200_000 + i)
	}
	return ids
}

func fakeDictionary() *dictionary {
	var d dictionary
	id := int32(1)
	for kind := 1; kind <= numKinds; kind++ {
		for range dictSizes[kind] {
			d[kind] = append(d[kind], id)
			id++
		}
	}
	return &d
}

// The generated rows must be what the events table holds: in time order
// inside the range (BRIN and day partitions rely on it), with the mix of
// events asked for and ids from the dictionary.
func TestEventGen(t *testing.T) {
	d := fakeDictionary()
	to := time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)
	from := to.AddDate(0, 0, -datasetDays)
	const n = 50_000
	products := make([]int32, datasetProducts)
	for i := range products {
		products[i] = int32(900_000 + i)
	}
	g := newEventGen(7, d, fakeContents(), fakeClients(), fakeTraffic(), from, to, n, 1).withProducts(products, 1)
	pageView := d[kindName][0]
	var rows, views, withParams int
	var last time.Time
	visitors, sessions := map[int64]bool{}, map[int64]bool{}
	for g.Next() {
		v, err := g.Values()
		if err != nil {
			t.Fatal(err)
		}
		if len(v) != len(datasetCols) {
			t.Fatalf("%d values, want %d", len(v), len(datasetCols))
		}
		if v[3].(int32) != 7 {
			t.Fatalf("site %v", v[3])
		}
		ts := v[0].(time.Time)
		if ts.Before(from) || !ts.Before(to) || ts.Before(last) {
			t.Fatalf("row %d at %s: outside [%s, %s) or before the previous %s", rows, ts, from, to, last)
		}
		last = ts
		visitors[v[1].(int64)] = true
		if v[4].(int32) == pageView {
			views++
		}
		if b := v[11].([]byte); len(b) > 0 {
			if _, err := postgres.DecodeParams(b); err != nil {
				t.Fatalf("params: %v", err)
			}
			withParams++
		}
		for k := 4; k <= 5; k++ {
			if id := v[k].(int32); id < 0 || id > d[numKinds][len(d[numKinds])-1] {
				t.Fatalf("column %s: id %d not in the dictionary", eventCols[k], id)
			}
		}
		if c := v[6].(int32); c < 50_000 || c >= 50_000+int32(dictSizes[kindPage]) {
			t.Fatalf("content profile %d not one of the pages", c)
		}
		if c := v[7].(int32); c < 100_000 || c >= 100_000+int32(visitorSlots(n)) {
			t.Fatalf("client profile %d not one of the first %d visitor numbers", c, visitorSlots(n))
		}
		// A visitor-day's first event, and only it, starts the session
		// with a page view that carries its traffic.
		start := v[10].(int16)&int16(protocol.FlagSessionStart) != 0
		if tr := v[8].(int32); start != (tr != 0) || start && (tr < 200_000 || tr >= 200_000+int32(len(trafficSources))) ||
			start && v[4].(int32) != pageView {
			t.Fatalf("row %d: flags %v traffic %v name %v", rows, v[10], tr, v[4])
		}
		if start {
			if sessions[v[2].(int64)] {
				t.Fatalf("row %d: a second session start for session %v", rows, v[2])
			}
			sessions[v[2].(int64)] = true
		}
		rows++
	}
	if rows != n {
		t.Fatalf("%d rows, want %d", rows, n)
	}
	// eventMix's page view share of the events that do not start a
	// session, and every one that does.
	if want := (n-len(sessions))*eventMix[0].share/100 + len(sessions); views < want*95/100 || views > want*105/100 {
		t.Fatalf("%d page views of %d (%d sessions), want about %d", views, n, len(sessions), want)
	}
	// 11% of the events that do not start a session are ecommerce events
	// with an item, so 9% of all; purchases have a commerce row each.
	if want := (n - len(sessions)) * 11 / 100; len(g.items) < want*90/100 || len(g.items) > want*110/100 || len(g.commerce) == 0 {
		t.Fatalf("%d item rows, %d commerce rows; want about %d items", len(g.items), len(g.commerce), want)
	}
	if len(g.items) < n*88/1000 {
		t.Fatalf("%d item rows of %d events: under 9%% of the data set", len(g.items), n)
	}
	if len(sessions) != len(visitors) {
		t.Fatalf("%d sessions started for %d visitor-days", len(sessions), len(visitors))
	}
	if withParams < n*3/100 || withParams > n*7/100 {
		t.Fatalf("%d events with params of %d, want about 5%%", withParams, n)
	}
	if len(visitors) < 1000 || len(visitors) > n/2 {
		t.Fatalf("%d distinct visitor-days for %d events", len(visitors), n)
	}
	// Same seed, same data.
	a, b := newEventGen(7, d, fakeContents(), fakeClients(), fakeTraffic(), from, to, 10, 42), newEventGen(7, d, fakeContents(), fakeClients(), fakeTraffic(), from, to, 10, 42)
	for a.Next() && b.Next() {
		va, _ := a.Values()
		x := append([]any(nil), va...)
		vb, _ := b.Values()
		for i := range x {
			if bx, ok := x[i].([]byte); ok {
				if string(bx) != string(vb[i].([]byte)) {
					t.Fatal("same seed, different params")
				}
				continue
			}
			if x[i] != vb[i] {
				t.Fatalf("same seed, column %s differs: %v vs %v", eventCols[i], x[i], vb[i])
			}
		}
	}
}

// eventFromRow must rebuild every stored field, or wire bytes would be
// measured on thinner events than the agent ships.
func TestEventFromRow(t *testing.T) {
	params, _ := msgpack.Marshal(&postgres.EventParams{Params: map[string]string{"method": "email"}, NumParams: map[string]float64{"value": 2}})
	ts := time.Date(2026, 3, 1, 12, 0, 0, 123000, time.UTC)
	dims := map[int32]string{}
	row := storedRow{site: 3, ts: ts, visitor: 99, session: 1718000000, engage: 1500, flags: int16(protocol.FlagSessionStart), params: params}
	for k := range numKinds {
		id := int32(100 + k)
		dims[id] = dictValue(k+1, 0)
		row.dims[k] = id
	}
	row.dims[kindReferrer-1] = 0 // absent
	e, err := eventFromRow(&row, dims)
	if err != nil {
		t.Fatal(err)
	}
	want := protocol.Event{Site: 3, TimeMicros: ts.UnixMicro(), Name: "page_view", Visitor: 99, SessionID: 1718000000,
		Flags: protocol.FlagSessionStart, EngageMs: 1500, Host: benchHost, Path: "/section-0/article-0",
		Title: "Article 0 | Bench Example", Language: "en-us", Screen: "1920x1080", Country: "C00", Region: "Region 0",
		City: "City 0", Browser: "Chrome", OS: "Windows", Device: "desktop",
		Params: map[string]string{"method": "email"}, NumParams: map[string]float64{"value": 2}}
	if diff := cmp.Diff(want, e); diff != "" {
		t.Fatalf("rebuilt event (-want +got):\n%s", diff)
	}
	row.dims[0] = 12345
	if _, err := eventFromRow(&row, dims); err == nil {
		t.Fatal("row with an id missing from dims accepted")
	}
}
