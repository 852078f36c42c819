package postgres

import "strings"

// An event's session: a session row's ts is its first event's time as
// first derived, and an event lies at most 24 hours after it (the
// aggregator's session lookback), or before it when it arrived late (at
// most 72 hours, as far back as the Measurement Protocol dates events).
// Session ids are unique per visitor within that span (a GA4 sid is its
// start second; an inferred one is made unique), so an event joins one
// row. The window is an hour wider on each side. Reports join events to
// their sessions through SessionsNear and SessionOf; rebuilds and erasures
// look sessions up in Go over the same window (sessionTraffic).

// sessionsNear is the condition on a sessions row's start ts that it may
// be the session of an event with lo <= ts < hi (SQL expressions).
func sessionsNear(ts, lo, hi string) string {
	return ts + " >= " + lo + "::timestamptz - interval '25 hours' AND " + ts + " <= " + hi + "::timestamptz + interval '73 hours'"
}

// SessionsNear is a query of the columns cols of site's sessions (as "s")
// that events with lo <= ts < hi (SQL expressions: placeholders or
// literals) may belong to; its bounds on the start prune the sessions
// partitions.
func SessionsNear(site, lo, hi string, cols []string) string {
	return "SELECT s." + strings.Join(cols, ", s.") + " FROM sessions s WHERE s.site_id = " + site + " AND " + sessionsNear("s.ts", lo, hi)
}

// SessionOf is the condition that the sessions row s (an alias) is the
// session of the events row ev, among the rows of the event's site.
func SessionOf(s, ev string) string {
	return s + ".visitor_id = " + ev + ".visitor_id AND " + s + ".session_id = " + ev + ".session_id" +
		" AND " + s + ".ts >= " + ev + ".ts - interval '25 hours' AND " + s + ".ts <= " + ev + ".ts + interval '73 hours'"
}
