package query

import (
	"context"
	"fmt"
	"strconv"
	"testing"
	"time"

	"github.com/avila-analytics/avila/query/plan"
)

// Session ids of sessionActiveSeed: the sessions' starts, Unix seconds.
const (
	seedSA, seedSB, seedSC = 1772701200, 1772722800, 1772754600 // 2026-03-05 09:00, 15:00, 23:50 UTC
	seedSD, seedSE         = 1772791200, 1772708400             // 2026-03-06 10:00, 2026-03-05 11:00
	seedSF, seedSG         = 1772712000, 1772714400             // 2026-03-05 12:00, 12:40
)

// sessionActiveSeed exercises GA4's active user (active at any point of
// the calendar day) in session reports: a returning user with a session
// from google that does not engage and a later one from a news site that
// engages, shipped in a later batch (a later derivation); a user whose
// session from a forum crosses midnight without engaging and who engages in
// a session of the next day, shipped last; a user inactive all day; a user
// with an inactive and an engaged session in one batch.
var sessionActiveSeed = []seedHit{
	{day: "05", at: "09:00", path: "/g/collect", name: "page_view", cid: "881.1772600000", sid: seedSA, sct: 2, ss: true,
		page: "/a", ref: "https://www.google.com/", ip: "198.51.100.30", ua: seedPhone, batch: 1},
	{day: "05", at: "15:00", path: "/g/collect", name: "page_view", cid: "881.1772600000", sid: seedSB, sct: 3, ss: true, engage: 12000,
		page: "/b", ref: "https://news.example.org/x", ip: "198.51.100.30", ua: seedPhone, batch: 2},

	{day: "05", at: "23:50", path: "/g/collect", name: "page_view", cid: "882.1772600000", sid: seedSC, sct: 2, ss: true,
		page: "/c", ref: "https://forum.example.net/t", ip: "198.51.100.31", ua: seedLaptop, batch: 1},
	{day: "06", at: "00:10", path: "/g/collect", name: "scroll", cid: "882.1772600000", sid: seedSC, sct: 2,
		page: "/c", ip: "198.51.100.31", ua: seedLaptop, batch: 2},
	{day: "06", at: "10:00", path: "/g/collect", name: "page_view", cid: "882.1772600000", sid: seedSD, sct: 3, ss: true, engage: 5000,
		page: "/d", ref: "https://blog.example.com/p", ip: "198.51.100.31", ua: seedLaptop, batch: 3},

	{day: "05", at: "11:00", path: "/g/collect", name: "page_view", cid: "883.1772600000", sid: seedSE, sct: 2, ss: true,
		page: "/a", ref: "https://www.google.com/", ip: "198.51.100.32", ua: seedOther, batch: 1},

	{day: "05", at: "12:00", path: "/g/collect", name: "page_view", cid: "884.1772600000", sid: seedSF, sct: 2, ss: true,
		page: "/a", ref: "https://www.google.com/", ip: "198.51.100.33", ua: seedPhone, batch: 2},
	{day: "05", at: "12:40", path: "/g/collect", name: "page_view", cid: "884.1772600000", sid: seedSG, sct: 3, ss: true, engage: 11000,
		page: "/b", ref: "https://news.example.org/x", ip: "198.51.100.33", ua: seedPhone, batch: 2},
}

// refSessionActive is GA4's sessions and activeUsers by a session-scoped
// dimension (sessionSource, landingPage, or "": in all) over the sessions (refGA4) that
// began on the seed's days from first to last (UTC dates), as "sessions
// activeUsers": a session's user counts as active under the session's
// value when the user was active, by any event, on a day on which the
// session has an event (GA4's is_active_user over the events of sessions
// with that value).
func refSessionActive(seed []seedHit, dim, first, last string) map[string]string {
	active := map[[2]string]bool{}
	for _, s := range refGA4(seed) {
		for i, h := range s.hits {
			if h.engage > 0 || (i == 0 && h.fv) {
				active[[2]string{s.user, h.time().Format(time.DateOnly)}] = true
			}
		}
	}
	sessions, users := map[string]int{}, map[string]map[string]bool{}
	for _, s := range refGA4(seed) {
		if start := s.hits[0].time().Format(time.DateOnly); start < first || start > last {
			continue
		}
		var v string
		switch dim {
		case "sessionSource":
			v = s.source
		case "landingPage":
			v = "(not set)"
			for _, h := range s.hits {
				if h.name == "page_view" {
					v = h.page
					break
				}
			}
		}
		sessions[v]++
		if users[v] == nil {
			users[v] = map[string]bool{}
		}
		for _, h := range s.hits {
			if active[[2]string{s.user, h.time().Format(time.DateOnly)}] {
				users[v][s.user] = true
			}
		}
	}
	out := map[string]string{}
	for v, n := range sessions {
		out[v] = strconv.Itoa(n) + " " + strconv.Itoa(len(users[v]))
	}
	return out
}

// TestIdentityOracleSessionActive: session reports (sessions with
// activeUsers by sessionSource, landingPage, and in all) count a session's
// user as active when it was active on a day of the session's events, as
// refSessionActive: a session that did not engage counts its user when a
// later session of the day (a later derivation, by another writer) does,
// a session crossing midnight counts its user active on the next day,
// a user inactive all day counts under none; on the sessions table, on the
// session rollups, and after both are rebuilt.
func TestIdentityOracleSessionActive(t *testing.T) {
	ctx := context.Background()
	store, reports, site, batches := collectIdentitySeed(t, sessionActiveSeed, "2026-03-05", "2026-03-06")
	writeByNewWriters(t, store, batches)
	if want := refSessionActive(sessionActiveSeed, "sessionSource", "2026-03-05", "2026-03-05"); want["google"] != "3 2" || want["forum.example.net"] != "1 1" {
		t.Fatalf("reference: %v; the seed is built for google 3 sessions of 2 active users, forum.example.net 1 of 1", want)
	}
	now := time.Date(2026, 3, 7, 12, 0, 0, 0, time.UTC)
	keys := stubKeys{testKey: {site.ID}}
	prop := fmt.Sprint(site.ID)
	ranges := [][2]string{{"2026-03-05", "2026-03-06"}, {"2026-03-05", "2026-03-05"}, {"2026-03-06", "2026-03-06"}}
	check := func(t *testing.T) {
		for _, route := range identityRoutes {
			t.Run(route.name, func(t *testing.T) {
				h := newHandler(Options{Now: func() time.Time { return now }}, reports, keys)
				h.route = route.r
				for _, days := range ranges {
					dr := []plan.DateRange{{StartDate: days[0], EndDate: days[1]}}
					for _, dim := range []string{"sessionSource", "landingPage"} {
						if dim == "landingPage" && route.r == plan.RouteRollups {
							continue // session rollups hold no landing page
						}
						got := reportRows(t, h, prop, plan.RunReportRequest{DateRanges: dr, Dimensions: dims(dim), Metrics: mets("sessions", "activeUsers")})
						if want := refSessionActive(sessionActiveSeed, dim, days[0], days[1]); !mapsEqual(got, want) {
							t.Errorf("sessions activeUsers by %s over %s..%s: got %v, want %v", dim, days[0], days[1], got, want)
						}
					}
					// In all: the users active on a day of one of the
					// range's sessions.
					got := reportRows(t, h, prop, plan.RunReportRequest{DateRanges: dr, Metrics: mets("sessions", "activeUsers")})
					if want := refSessionActive(sessionActiveSeed, "", days[0], days[1]); !mapsEqual(got, want) {
						t.Errorf("sessions activeUsers over %s..%s: got %v, want %v", days[0], days[1], got, want)
					}
				}
			})
		}
	}
	t.Run("derived", check)
	if err := store.RebuildRollups(ctx, site.ID); err != nil {
		t.Fatal(err)
	}
	t.Run("rebuilt", check)
}
