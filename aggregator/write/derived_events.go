package write

import (
	"slices"

	"github.com/avila-analytics/avila/aggregator/sessions"
	"github.com/avila-analytics/avila/protocol"
)

// GA4's automatically collected events the write stage derives.
const (
	sessionStartName = "session_start"
	// firstVisitName is the event GA4 logs on a client's first visit.
	firstVisitName = "first_visit"
)

// newUsers tells, per assigned session, whether it is a new user's (GA4
// newVsReturning "new", the session that gets first_visit): the sender
// says so (gtag.js _fv, a first_visit event, session count 1), or, without
// its word (no session count above 1), the session is its visitor's first:
// new in this derivation, no earlier session of the visitor within
// sessions.Lookback, and, for a persistent visitor, a key the site's known
// users did not hold before this derivation (firstSeen).
func newUsers(events []protocol.Event, as *sessions.Assignment, firstSeen map[uint64]bool, out []bool) []bool {
	out = grownTo(out, len(as.Sessions))
	for i := range as.Sessions {
		a := &as.Sessions[i]
		said, returning, persistent := false, false, false
		for _, ei := range a.Events {
			e := &events[ei]
			if e.Flags&protocol.FlagFirstVisit != 0 || e.Name == firstVisitName || e.SessionNum == 1 {
				said = true
			}
			if e.SessionNum > 1 {
				returning = true
			}
			if e.Flags&protocol.FlagPersistent != 0 {
				persistent = true
			}
		}
		first := !a.Existing && !returning && !a.Prior && (!persistent || firstSeen[a.Visitor])
		out[i] = said || first
	}
	return out
}

// deriveEvents appends the events GA4 creates itself: session_start on
// the first event of each session new in this derivation, and first_visit
// on the first event of a new user's session (newUser), unless the sender
// sent that event in the session. Each carries its trigger's page (host,
// path, title, referrer) and client fields, its time and its session, so
// eventCount and eventName count them like any event. They are added to
// the assignment (as.Of, the sessions' Events after their own), and
// the returned count tells the caller which rows to mark as derived (the
// last n). A derivation that does not commit derives them again when its
// events are taken again: exactly once, like the events they come from.
func deriveEvents(events []protocol.Event, as *sessions.Assignment, newUser []bool) ([]protocol.Event, int) {
	// The array grows once, to the events added, when it may lack room:
	// appends would grow it a quarter at a time, each a copy of the
	// chunk's events.
	if fresh := newSessions(as); len(events)+2*fresh > cap(events) {
		events = slices.Grow(events, addedCount(events, as, newUser))
	}
	n := 0
	for i := range as.Sessions {
		a := &as.Sessions[i]
		if a.Existing {
			continue
		}
		start, first := toAdd(events, a, newUser[i])
		trigger := events[a.Events[0]] // a copy: events may grow below
		add := func(name string, flags uint8) {
			e := protocol.Event{
				Site: trigger.Site, TimeMicros: trigger.TimeMicros, Name: name, Visitor: a.Visitor, User: trigger.User,
				Client: trigger.Client, SessionID: trigger.SessionID, SessionNum: trigger.SessionNum,
				Flags: flags | trigger.Flags&protocol.FlagPersistent,
				Host:  trigger.Host, Path: trigger.Path, Title: trigger.Title, Referrer: trigger.Referrer,
				Language: trigger.Language, Screen: trigger.Screen, Country: trigger.Country, Region: trigger.Region,
				City: trigger.City, Browser: trigger.Browser, BrowserVer: trigger.BrowserVer, OS: trigger.OS, Device: trigger.Device,
			}
			events = append(events, e)
			as.Of = append(as.Of, i)
			a.Events = append(a.Events, len(events)-1)
			n++
		}
		// FlagSessionStart makes session_start carry the session's
		// traffic source, as a sender's session start does.
		if start {
			add(sessionStartName, protocol.FlagSessionStart)
		}
		if first {
			add(firstVisitName, protocol.FlagFirstVisit)
		}
	}
	return events, n
}

// toAdd tells which of session_start and first_visit deriveEvents adds to
// a, a session new in the derivation: those its events lack (first_visit
// only to a new user's, newUser).
func toAdd(events []protocol.Event, a *sessions.Assigned, newUser bool) (start, first bool) {
	hasStart, hasFirst := false, false
	for _, ei := range a.Events {
		switch events[ei].Name {
		case sessionStartName:
			hasStart = true
		case firstVisitName:
			hasFirst = true
		}
	}
	return !hasStart, newUser && !hasFirst
}

// newSessions counts the sessions of as new in the derivation.
func newSessions(as *sessions.Assignment) int {
	n := 0
	for i := range as.Sessions {
		if !as.Sessions[i].Existing {
			n++
		}
	}
	return n
}

// addedCount is how many events deriveEvents adds.
func addedCount(events []protocol.Event, as *sessions.Assignment, newUser []bool) int {
	n := 0
	for i := range as.Sessions {
		if a := &as.Sessions[i]; !a.Existing {
			start, first := toAdd(events, a, newUser[i])
			if start {
				n++
			}
			if first {
				n++
			}
		}
	}
	return n
}
