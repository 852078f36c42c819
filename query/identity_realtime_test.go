package query

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"net/http"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/avila-analytics/avila/aggregator/write"
	"github.com/avila-analytics/avila/internal/testenv"
	"github.com/avila-analytics/avila/protocol"
	"github.com/avila-analytics/avila/query/engine/realtime"
	"github.com/avila-analytics/avila/query/plan"
	"github.com/avila-analytics/avila/storage/redis"
)

// realtimeSeed is identitySeed's rules within GA4's realtime window (the 30
// minutes before 12:00 on the 7th): a phone changing network with a
// server-side purchase joining its session, then a second session, and a
// late hit of the first session, signed in, shipped after the second; a
// laptop whose hits say neither _ss nor _fv (GA4 infers both events) and
// that logs in mid-session; denied consent; t.js without a client id; a
// tablet active at 09:20 whose session in the window is not (an active
// user of the day); a device with three short sessions (ids of their
// own) and a late hit of the first, signed in, shipped after the third.
var realtimeSeed = []seedHit{
	{day: "07", at: "11:35", path: "/g/collect", name: "page_view", cid: "555.1772883300", sid: 1772883300, sct: 1, ss: true, fv: true,
		page: "/home", ref: "https://www.google.com/", ip: "198.51.100.7", ua: seedPhone, batch: 1},
	{day: "07", at: "11:40", path: "/g/collect", name: "page_view", cid: "555.1772883300", sid: 1772883300, sct: 1, engage: 4000,
		page: "/product", ip: "203.0.113.200", ua: seedPhone, batch: 2},
	{day: "07", at: "11:45", path: "/mp/collect", name: "purchase", cid: "555.1772883300", sid: 1772883300, ip: "10.0.0.5", ua: "shop-server/1", batch: 3},
	{day: "07", at: "11:58", path: "/g/collect", name: "page_view", cid: "555.1772883300", sid: 1772884680, sct: 2, ss: true,
		page: "/home", ip: "192.0.2.44", ua: seedPhone, batch: 3},
	{day: "07", at: "11:46", path: "/g/collect", name: "page_view", cid: "555.1772883300", uid: "u-88", sid: 1772883300, sct: 1, engage: 3000,
		page: "/product", ip: "192.0.2.44", ua: seedPhone, batch: 4},

	{day: "07", at: "11:36", path: "/g/collect", name: "page_view", cid: "666.1772883360", sid: 1772883360, sct: 1, gcs: "G111",
		page: "/login", ref: "https://news.example.org/x", ip: "198.51.100.9", ua: seedLaptop, batch: 1},
	{day: "07", at: "11:38", path: "/g/collect", name: "login", cid: "666.1772883360", uid: "u-77", sid: 1772883360, sct: 1, gcs: "G111", engage: 15000,
		page: "/login", ip: "198.51.100.9", ua: seedLaptop, batch: 2},

	{day: "07", at: "11:50", path: "/g/collect", name: "page_view", cid: "777.1772884200", sid: 1772884200, sct: 1, ss: true, fv: true, gcs: "G100",
		page: "/home", ip: "100.64.1.1", ua: seedOther, batch: 2},

	{day: "07", at: "11:52", path: "/api/event", name: "page_view", page: "/home", ip: "100.64.3.3", ua: seedOther, batch: 2},
	{day: "07", at: "11:55", path: "/api/event", name: "page_view", page: "/about", ip: "100.64.3.3", ua: seedOther, batch: 3},

	{day: "07", at: "09:20", path: "/g/collect", name: "page_view", cid: "888.1772875200", sid: 1772875200, sct: 1, ss: true, fv: true, engage: 5000,
		page: "/pricing", ip: "198.51.100.20", ua: seedOther, batch: 0},
	{day: "07", at: "11:50", path: "/g/collect", name: "page_view", cid: "888.1772875200", sid: 1772884200, sct: 2, ss: true,
		page: "/pricing", ip: "198.51.100.20", ua: seedOther, batch: 2},

	{day: "07", at: "11:32", path: "/g/collect", name: "page_view", cid: "999.1772883120", sid: 1772883120, sct: 1, ss: true, fv: true,
		page: "/docs", ip: "203.0.113.9", ua: seedOther, batch: 1},
	{day: "07", at: "11:38", path: "/g/collect", name: "page_view", cid: "999.1772883120", sid: 1772883480, sct: 2, ss: true,
		page: "/docs", ip: "203.0.113.9", ua: seedOther, batch: 2},
	{day: "07", at: "11:44", path: "/g/collect", name: "page_view", cid: "999.1772883120", sid: 1772883840, sct: 3, ss: true,
		page: "/docs", ip: "203.0.113.9", ua: seedOther, batch: 3},
	{day: "07", at: "11:34", path: "/g/collect", name: "scroll", cid: "999.1772883120", uid: "u-66", sid: 1772883120, sct: 1, engage: 2000,
		page: "/faq", ip: "203.0.113.9", ua: seedOther, batch: 4},
}

// TestIdentityOracleRealtime: realtime's eventCount by eventName, the
// session_start and first_visit the write stage derives included, and its
// activeUsers, overall and by eventName and unifiedScreenName, equal
// refGA4's over the hits in the window, and the standard reports equal
// refGA4's over the day, counted once whichever node staged a batch and
// whichever derived it: two nodes share Redis, one stages every batch, the
// other derives them. Without Redis one node's memory counts both. Each
// batch is recorded at its time (the clock moves), then realtime is read
// at 12:00. The laptop's login mid-session counts one user, the
// session's, as in the reports; so does the late signed-in hit of the
// device's first of three sessions; the tablet, active at 09:20, is an
// active user of the day in the window.
func TestIdentityOracleRealtime(t *testing.T) {
	ctx := context.Background()
	store, reports, site, batches := collectIdentitySeed(t, realtimeSeed, "2026-03-07")
	end := time.Date(2026, 3, 7, 12, 0, 0, 0, time.UTC)
	var now time.Time
	clock := func() time.Time { return now }
	c, err := redis.Open(ctx, redis.Options{URL: testenv.RedisURL(t)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	prefix := testenv.Prefix(t)
	stager := redis.NewRedisRealtime(c, redis.RealtimeOptions{Prefix: prefix, Now: clock})
	deriver := redis.NewRedisRealtime(c, redis.RealtimeOptions{Prefix: prefix, Now: clock})
	alone := redis.NewRealtime(redis.RealtimeOptions{Now: clock})
	record := func(rts ...rtStore) func(context.Context, uint32, []protocol.Event) {
		return func(ctx context.Context, _ uint32, events []protocol.Event) {
			for _, rt := range rts {
				rt.Record(ctx, events)
			}
		}
	}
	// Node A stages, node B derives; the one-node case hears both.
	a := write.New(write.Config{}, store)
	b := write.New(write.Config{Added: record(deriver, alone)}, store)
	for _, n := range slices.Sorted(maps.Keys(batches)) {
		for _, e := range batches[n] {
			now = maxTime(now, time.UnixMicro(e.TimeMicros))
		}
		if _, err := a.WriteBatch(ctx, "seed", uint64(n), batches[n], nil); err != nil {
			t.Fatal(err)
		}
		record(stager, alone)(ctx, site.ID, batches[n])
		if err := b.Flush(ctx); err != nil {
			t.Fatal(err)
		}
	}
	now = end

	want := refTotals(refGA4(realtimeSeed))
	if want.events["session_start"] != 10 || want.events["first_visit"] != 6 { // the seed's design
		t.Fatalf("reference: %v; the seed is built for 10 session_start and 6 first_visit", want.events)
	}
	wantNames := map[string]string{}
	for n, c := range want.events {
		wantNames[n] = strconv.Itoa(c)
	}
	wantActive := refActiveBy(refGA4(realtimeSeed), time.Time{}).by
	if wantActive["unifiedScreenName"]["/login"] != "1" { // the seed's design: the laptop's login and first_visit
		t.Fatalf("reference: activeUsers by unifiedScreenName %v; the seed is built for 1 on /login", wantActive["unifiedScreenName"])
	}
	// Realtime: the hits from 11:31 (the window's first minute at 12:00).
	rtActive := refActiveBy(refGA4(realtimeSeed), end.Add(-29*time.Minute))
	if rtActive.events["session_start"] != 9 || rtActive.events["first_visit"] != 5 || rtActive.by["unifiedScreenName"]["/pricing"] != "1" ||
		rtActive.by["eventName"]["scroll"] != "1" {
		t.Fatalf("reference in the window: %v %v; the seed is built for 9 session_start, 5 first_visit, the tablet active on /pricing and one user of scroll",
			rtActive.events, rtActive.by)
	}
	wantRTNames := map[string]string{}
	for n, c := range rtActive.events {
		wantRTNames[n] = strconv.Itoa(c)
	}
	keys := stubKeys{testKey: {site.ID}}
	prop := fmt.Sprint(site.ID)
	today := []plan.DateRange{{StartDate: "today", EndDate: "today"}}
	for _, route := range []struct {
		name string
		r    plan.Route
	}{{"events", plan.RouteEvents}, {"rollups", plan.RouteRollups}} {
		h := newHandler(Options{Now: clock}, reports, keys)
		h.route = route.r
		got := reportRows(t, h, prop, plan.RunReportRequest{DateRanges: today, Dimensions: dims("eventName"), Metrics: mets("eventCount")})
		if !mapsEqual(got, wantNames) {
			t.Errorf("report from %s: eventCount by eventName %v, want %v", route.name, got, wantNames)
		}
		got = reportRows(t, h, prop, plan.RunReportRequest{DateRanges: today, Metrics: mets("activeUsers", "eventCount")})
		if w := fmt.Sprintf("%d %d", want.active, eventTotal(want.events)); got[""] != w {
			t.Errorf("report from %s: activeUsers eventCount %q, want %q", route.name, got[""], w)
		}
		// The reports' pagePath is realtime's unifiedScreenName for pages
		// without a title.
		for d, rd := range map[string]string{"eventName": "eventName", "unifiedScreenName": "pagePath"} {
			got := nonZero(reportRows(t, h, prop, plan.RunReportRequest{DateRanges: today, Dimensions: dims(rd), Metrics: mets("activeUsers")}))
			if !mapsEqual(got, wantActive[d]) {
				t.Errorf("report from %s: activeUsers by %s %v, want %v", route.name, d, got, wantActive[d])
			}
		}
	}
	for _, rt := range []struct {
		name string
		rt   rtStore
	}{{"staging node", stager}, {"deriving node", deriver}, {"one node without redis", alone}} {
		h := newHandler(Options{Now: clock, Realtime: rt.rt}, reports, keys)
		got := realtimeRows(t, h, prop, realtime.RunRealtimeReportRequest{Dimensions: dims("eventName"), Metrics: mets("eventCount")})
		if !mapsEqual(got, wantRTNames) {
			t.Errorf("realtime on the %s: eventCount by eventName %v, want %v", rt.name, got, wantRTNames)
		}
		got = realtimeRows(t, h, prop, realtime.RunRealtimeReportRequest{Metrics: mets("activeUsers", "eventCount")})
		if w := fmt.Sprintf("%d %d", rtActive.active, eventTotal(rtActive.events)); got[""] != w {
			t.Errorf("realtime on the %s: activeUsers eventCount %q, want %q", rt.name, got[""], w)
		}
		for _, d := range []string{"eventName", "unifiedScreenName"} {
			got := nonZero(realtimeRows(t, h, prop, realtime.RunRealtimeReportRequest{Dimensions: dims(d), Metrics: mets("activeUsers")}))
			if !mapsEqual(got, rtActive.by[d]) {
				t.Errorf("realtime on the %s: activeUsers by %s %v, want %v", rt.name, d, got, rtActive.by[d])
			}
		}
	}
}

// refActive is GA4's activeUsers over refGA4's hits from a time on.
type refActive struct {
	active int                          // distinct active users
	events map[string]int               // event counts by name
	by     map[string]map[string]string // activeUsers by eventName and by unifiedScreenName
}

// refActiveBy is GA4's activeUsers, overall and by eventName and by
// unifiedScreenName, and the event counts, over refGA4's sessions' hits
// at or after from (the derived events at their session's first hit):
// the distinct users (a session's user, its first hit's) who triggered
// an event of the value on a day on which they were active at some
// point, before from too, a user being active by an event with
// engagement time or a first visit (_fv on a hit, or the first_visit GA4
// adds to a new user's session). GA4 adds session_start to every session
// and first_visit to a new user's, with its first hit's page; the
// seeds' pages have no title, so a screen is its path ("(not set)" for
// the server's purchase). Values without active users are left out.
func refActiveBy(sessions []*refSession, from time.Time) refActive {
	activeOn := map[[2]string]bool{}
	for _, s := range sessions {
		if s.newUser {
			activeOn[[2]string{s.user, s.hits[0].day}] = true
		}
		for _, h := range s.hits {
			if h.engage > 0 || h.fv {
				activeOn[[2]string{s.user, h.day}] = true
			}
		}
	}
	out := refActive{events: map[string]int{}, by: map[string]map[string]string{}}
	all := map[string]bool{}
	users := map[string]map[string]map[string]bool{"eventName": {}, "unifiedScreenName": {}}
	add := func(s *refSession, name string, h *seedHit) {
		if h.time().Before(from) {
			return
		}
		out.events[name]++
		if !activeOn[[2]string{s.user, h.day}] {
			return
		}
		all[s.user] = true
		for d, v := range map[string]string{"eventName": name, "unifiedScreenName": cmp.Or(h.page, plan.NotSet)} {
			if users[d][v] == nil {
				users[d][v] = map[string]bool{}
			}
			users[d][v][s.user] = true
		}
	}
	for _, s := range sessions {
		add(s, "session_start", s.hits[0])
		if s.newUser {
			add(s, "first_visit", s.hits[0])
		}
		for _, h := range s.hits {
			add(s, h.name, h)
		}
	}
	out.active = len(all)
	for d, byValue := range users {
		out.by[d] = map[string]string{}
		for v, us := range byValue {
			out.by[d][v] = strconv.Itoa(len(us))
		}
	}
	return out
}

// maxTime is the later of a and b.
func maxTime(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}

// nonZero is rows without those whose one metric is 0.
func nonZero(rows map[string]string) map[string]string {
	out := map[string]string{}
	for k, v := range rows {
		if v != "0" {
			out[k] = v
		}
	}
	return out
}

// realtimeRows runs a realtime report and returns its rows as reportRows
// does.
func realtimeRows(t *testing.T, h http.Handler, prop string, req realtime.RunRealtimeReportRequest) map[string]string {
	t.Helper()
	body, err := json.Marshal(req)
	if err != nil {
		t.Fatal(err)
	}
	code, out := postRealtime(t, h, prop, testKey, string(body))
	if code != http.StatusOK {
		t.Fatalf("runRealtimeReport %+v: %d %s", req, code, out)
	}
	var resp realtime.RunRealtimeReportResponse
	if err := json.Unmarshal(out, &resp); err != nil {
		t.Fatal(err)
	}
	return keyedRows(resp.Rows)
}
