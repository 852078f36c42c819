package governance_test

import (
	"context"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/avila-analytics/avila/aggregator/governance"
	"github.com/avila-analytics/avila/protocol"
	"github.com/avila-analytics/avila/protocol/identity"
	"github.com/avila-analytics/avila/storage/postgres"
)

// visitorOfHash inverts postgres.VisitorHash (SplitMix64's finalizer, a
// bijection): the visitor key whose hash is h, to craft visitors that share
// a sketch register, or a whole sparse encoding, with a subject.
func visitorOfHash(h uint64) uint64 {
	unshift := func(v uint64, s uint) uint64 {
		for x := v >> s; x != 0; x >>= s {
			v ^= x
		}
		return v
	}
	inverse := func(c uint64) uint64 { // of an odd c, mod 2^64 (Newton)
		x := c
		for range 6 {
			x *= 2 - c*x
		}
		return x
	}
	h = unshift(h, 31)
	h *= inverse(0x94d049bb133111eb)
	h = unshift(h, 27)
	h *= inverse(0xbf58476d1ce4e5b9)
	return unshift(h, 30)
}

// TestEraseKeepsCompetitorsEqualsNeverStored is the erasure oracle where
// other visitors are indistinguishable from the subject in the sketches:
// two competitors whose hashes differ from the subject's in their lowest
// bit or the one above (so they share its register, rank and sparse
// encoding), and a visitor with a session whose hash differs so from one
// of the subject's sessions', are in the subject's cells, in the small (sparse) cells of a
// packed day and of a day still in rows. Their activity is what decides
// whether the shared encoding stays in a cell's active sketch:
//
//   - the first is active on the day through other events and another
//     session, but its events in the subject's page cell and its session
//     from the subject's source are quiet: the encoding stays in those
//     cells' active sketches (GA4 counts a user active on the day in every
//     cell of the day, and a session's user active when the user is active
//     on a day the session has events on);
//   - the second is not active on the day: its quiet events on a page of
//     the subject's leave the encoding in the users sketch only, and its
//     session from the subject's other source, quiet, goes on past
//     midnight into the next day, on which the competitor is active in
//     another session, so the session counts it active (the erasure reads
//     the days after a session's first).
//
// The sessions sketches by page keep the shared session encoding on the
// page both sessions saw. So the erasure must find the competitors, of
// visitors and of sessions, in rows and in packs, and read
// their activity as a rebuild would; reports after it equal those of the
// site that never held the subject.
func TestEraseKeepsCompetitorsEqualsNeverStored(t *testing.T) {
	ctx := context.Background()
	s := newStack(t)
	with, without := s.site(t, "rivals-with"), s.site(t, "rivals-without")
	h, err := identity.New(with, secret)
	if err != nil {
		t.Fatal(err)
	}
	cid, _ := identity.ClientIDFromCookie(subjectCookie)
	key := h.Client(cid)
	sh := postgres.VisitorHash(key)
	rival, idle := visitorOfHash(sh^1), visitorOfHash(sh^2)
	if postgres.VisitorHash(rival) != sh^1 || postgres.VisitorHash(idle) != sh^2 {
		t.Fatal("visitorOfHash does not invert VisitorHash")
	}
	if (sh&(1<<50-1))>>2 == 0 {
		t.Fatal("the subject's hash has its rank in its lowest bits: the competitors would not share it")
	}
	madrid, err := time.LoadLocation("Europe/Madrid") // the test sites' zone
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now().In(madrid)
	today := time.Date(now.Year(), now.Month(), now.Day(), 0, 0, 0, 0, madrid)

	// One session of visitor from start: pages a minute apart, the first
	// from referrer; quiet: no engagement at all, else every event engaged.
	session := func(visitor uint64, start time.Time, referrer string, quiet bool, pages ...string) []protocol.Event {
		var out []protocol.Event
		for i, p := range pages {
			e := protocol.Event{Site: with, TimeMicros: start.Add(time.Duration(i) * time.Minute).UnixMicro(), Name: "page_view",
				Visitor: visitor, SessionID: start.Unix(), Host: "www.example.com", Path: p, Title: "Title " + p, Country: "ES",
				City: "City ES", Browser: "Firefox", OS: "Linux", Device: "desktop", Language: "es-es"}
			if i == 0 {
				e.Flags, e.Referrer = protocol.FlagSessionStart, referrer
			}
			if !quiet {
				e.EngageMs, e.Flags = 4000, e.Flags|protocol.FlagEngaged
			}
			out = append(out, e)
		}
		return out
	}
	var subj, others []protocol.Event
	for _, daysAgo := range []int{6, 2} { // a packed day, a day in rows
		d := today.AddDate(0, 0, -daysAgo)
		tag := "-" + d.Format("0102")
		// Wall clock in Madrid (so past 24 is the next day's, even on a
		// day the clocks change).
		at := func(hours float64) time.Time {
			return time.Date(d.Year(), d.Month(), d.Day(), 0, int(hours*60), 0, 0, madrid)
		}
		src := func(name string) string { return "https://" + name + tag + ".example.org/" }
		subj = append(subj, session(key, at(10), src("shared"), false, "/with-rival"+tag, "/with-idle"+tag, "/alone"+tag, "/session-rival"+tag)...)
		// A visitor of its own whose session's hash differs from that
		// subject's session's in its lowest bit, on one of its pages.
		sid := at(12).Unix()
		sessionRival := visitorOfHash(postgres.SessionHash(int64(key), at(10).Unix())^1) ^ postgres.VisitorHash(uint64(sid))
		if postgres.SessionHash(int64(sessionRival), sid) != postgres.SessionHash(int64(key), at(10).Unix())^1 {
			t.Fatal("the session rival's session hash is not the one crafted")
		}
		others = append(others, session(sessionRival, at(12), "", false, "/session-rival"+tag)...)
		subj = append(subj, session(key, at(20), src("late"), false, "/late"+tag)...)
		others = append(others, session(rival, at(9), src("shared"), true, "/with-rival"+tag)...)
		others = append(others, session(rival, at(15), "", false, "/elsewhere"+tag, "/elsewhere"+tag)...)
		others = append(others, session(idle, at(11), "", true, "/with-idle"+tag)...)
		// A quiet session from day d into the next, on which the
		// competitor is active in a later session.
		late := session(idle, at(23.8), src("late"), true, "/night"+tag)
		late = append(late, session(idle, at(24.2), "", true, "/night"+tag)...)
		late[1].SessionID, late[1].Flags = late[0].SessionID, late[1].Flags&^protocol.FlagSessionStart
		others = append(others, late...)
		others = append(others, session(idle, at(24.4), "", false, "/next-day"+tag)...)
	}
	rng := rand.New(rand.NewPCG(19, 5))
	base := append(seed(rng, with, 12, 10, time.Now()), others...)
	sortByTime(base)
	mixed := append(append([]protocol.Event{}, base...), subj...)
	sortByTime(mixed)
	s.write(t, mixed)
	s.write(t, onSite(base, without))
	s.pack(t)
	for _, v := range []uint64{key, rival, idle} {
		var packed, rows int64
		if err := s.db.QueryRow(ctx, `SELECT (SELECT count(*) FROM event_packs WHERE site_id = $1 AND $2 = ANY(visitor_id)),
			(SELECT count(*) FROM events WHERE site_id = $1 AND visitor_id = $2)`, with, int64(v)).Scan(&packed, &rows); err != nil || packed == 0 || rows == 0 {
			t.Fatalf("visitor %x has %d packs and %d rows (%v): the test would not cover both", v, packed, rows, err)
		}
	}

	bodies := append(reports("14daysAgo"), competitorReports("14daysAgo")...)
	differs := 0
	for _, body := range bodies {
		if s.report(t, with, body) != s.report(t, without, body) {
			differs++
		}
	}
	if differs == 0 {
		t.Fatal("before the erasure the sites answer alike, which proves nothing")
	}
	svc := &governance.Service{Store: s.store}
	out, err := svc.Erase(ctx, governance.Subject{Site: with, Identity: governance.ClientID, Key: key}, "test")
	if err != nil {
		t.Fatal(err)
	}
	if out.Events != int64(len(subj)) || out.Sketches.Kept == 0 || out.Sketches.Sparse == 0 {
		t.Fatalf("erased %d events (want %d), sketches %+v: want some kept by the competitors and some taken out", out.Events, len(subj), out.Sketches)
	}
	for i, body := range bodies {
		got, want := s.report(t, with, body), s.report(t, without, body)
		if got != want {
			t.Errorf("report %d %v after the erasure:\n got %s\nwant %s", i, body, got, want)
		}
	}
	if !t.Failed() {
		t.Logf("%d of %d reports differed before the erasure, none after; sketches %+v", differs, len(bodies), out.Sketches)
	}
}

// competitorReports are users by day and page or session source, event
// and session scoped: the cells whose sketches the competitors share.
func competitorReports(from string) []map[string]any {
	dr := []map[string]any{{"startDate": from, "endDate": "today"}}
	names := func(ns ...string) []map[string]any {
		var out []map[string]any
		for _, n := range ns {
			out = append(out, map[string]any{"name": n})
		}
		return out
	}
	order := []map[string]any{{"dimension": map[string]any{"dimensionName": "date"}}}
	return []map[string]any{
		{"dateRanges": dr, "dimensions": names("date", "pagePath"), "metrics": names("totalUsers", "activeUsers"), "orderBys": order},
		{"dateRanges": dr, "dimensions": names("date", "sessionSource"), "metrics": names("totalUsers", "activeUsers"), "orderBys": order},
		{"dateRanges": dr, "dimensions": names("date", "sessionSource"), "metrics": names("sessions", "totalUsers", "activeUsers"), "orderBys": order},
	}
}
