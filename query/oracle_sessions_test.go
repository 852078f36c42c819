package query

import (
	"cmp"
	"slices"
	"strings"
	"time"

	"github.com/avila-analytics/avila/protocol"
	"github.com/avila-analytics/avila/query/plan"
)

// The oracle's sessions: the definitions of aggregator/sessions and the
// sessions table written again the plain way, over a site's events sorted
// by time (as the fixture ships them).

// oracleItem is what a report groups: an event, or a session in a session
// report.
type oracleItem struct {
	local time.Time                // the event's time, or the session's start, in the site's zone
	dim   func(name string) string // dimension values
	add   func(a *oracleAcc)       // adds the item to a group
}

// oracleSessionMetrics are the session metrics: with one, a report counts
// sessions.
var oracleSessionMetrics = map[string]bool{
	"sessions": true, "engagedSessions": true, "engagementRate": true, "bounceRate": true, "averageSessionDuration": true,
	"screenPageViewsPerSession": true, "eventsPerSession": true, "sessionsPerUser": true,
}

// oracleEventDim reports whether a dimension describes one event only
// (GA4's event scope): it has no value per session.
func oracleEventDim(name string) bool {
	switch name {
	case "pagePath", "pagePathPlusQueryString", "pageTitle", "hostName", "fullPageUrl", "pageReferrer", "eventName", "isKeyEvent",
		"transactionId", "currencyCode": // GA4's ecommerce event parameters: event-scoped
		return true
	}
	return strings.HasPrefix(name, "customEvent:") || strings.HasPrefix(name, "customUser:")
}

// oracleMode is how GA4 counts a report: "event" (events, each with its
// session's and user's values), "session" (sessions that began in the
// range, by their own values) or "mixed" (session metrics by event-scoped
// dimensions: a group's sessions are the sessions with an event in it).
func oracleMode(req plan.RunReportRequest) string {
	var dimNames, metricNames []string
	for _, d := range req.Dimensions {
		dimNames = append(dimNames, d.Name)
	}
	for _, m := range req.Metrics {
		metricNames = append(metricNames, m.Name)
	}
	if req.DimensionFilter != nil {
		oracleEval(req.DimensionFilter, func(l *plan.Filter) bool { dimNames = append(dimNames, l.FieldName); return false })
	}
	if req.MetricFilter != nil {
		oracleEval(req.MetricFilter, func(l *plan.Filter) bool { metricNames = append(metricNames, l.FieldName); return false })
	}
	switch {
	case !slices.ContainsFunc(metricNames, func(n string) bool { return oracleSessionMetrics[n] }):
		return "event"
	case slices.ContainsFunc(dimNames, oracleEventDim):
		return "mixed"
	}
	return "session"
}

func oracleItems(req plan.RunReportRequest, events []protocol.Event, siteID uint32, loc *time.Location) []oracleItem {
	var out []oracleItem
	mode := oracleMode(req)
	if mode != "session" {
		days := oracleActiveDays(events, siteID, loc)
		for i := range events {
			e := &events[i]
			if e.Site != siteID {
				continue
			}
			local := time.UnixMicro(e.TimeMicros).In(loc)
			active := days[oracleUserDay{e.Visitor, local.Format(time.DateOnly)}]
			add := func(a *oracleAcc) { a.add(e, active) }
			if mode == "mixed" {
				s := oracleSessionOf[e]
				add = func(a *oracleAcc) {
					a.add(e, active)
					if !a.seen[s] {
						a.seen[s] = true
						a.countSession(s)
					}
				}
			}
			out = append(out, oracleItem{local, func(n string) string { return oracleDim(n, e, local) }, add})
		}
		return out
	}
	days := oracleActiveDays(events, siteID, loc)
	for _, s := range oracleSessions(events, siteID) {
		local := time.UnixMicro(s.start).In(loc)
		out = append(out, oracleItem{local, func(n string) string { return s.dim(n, local) }, func(a *oracleAcc) { s.addTo(a, days, loc) }})
	}
	return out
}

// oracleSessionOf maps the fixtures' events to their sessions
// (markSessions): session- and user-scoped dimensions of an event are its
// session's.
var oracleSessionOf = map[*protocol.Event]*oracleSession{}

// markSessions records the sessions of the events of sites in
// oracleSessionOf.
func markSessions(events []protocol.Event, sites []uint32) {
	for _, site := range sites {
		for _, s := range oracleSessions(events, site) {
			for _, e := range s.events {
				oracleSessionOf[e] = s
			}
		}
	}
}

// oracleSession is one session of the oracle.
type oracleSession struct {
	visitor     uint64
	sid         int64
	start, last int64 // Unix microseconds
	events      []*protocol.Event
	prior       bool   // the visitor had a session that began in the 24 hours before
	firstSource string // source of the visitor's first session
}

// oracleSessions cuts each visitor's events of the site into sessions: by
// GA4 session id when sent, else after more than 30 minutes without an
// event; no session lasts past 24 hours from its start.
func oracleSessions(events []protocol.Event, siteID uint32) []*oracleSession {
	const timeout, lookback = int64(30 * time.Minute / time.Microsecond), int64(24 * time.Hour / time.Microsecond)
	var sorted []*protocol.Event
	for i := range events {
		if events[i].Site == siteID {
			sorted = append(sorted, &events[i])
		}
	}
	slices.SortStableFunc(sorted, func(a, b *protocol.Event) int { return cmp.Compare(a.TimeMicros, b.TimeMicros) })
	byVisitor := map[uint64][]*oracleSession{}
	var all []*oracleSession
	for _, e := range sorted {
		t := e.TimeMicros
		var cur *oracleSession
		for _, s := range byVisitor[e.Visitor] {
			if t-s.start > lookback {
				continue
			}
			if e.SessionID > 0 && s.sid == e.SessionID {
				cur = s
			}
			if e.SessionID == 0 && t-s.last <= timeout && (cur == nil || s.last > cur.last) {
				cur = s
			}
		}
		if cur == nil {
			cur = &oracleSession{visitor: e.Visitor, sid: e.SessionID, start: t}
			for _, p := range byVisitor[e.Visitor] { // in start order: the first is the earliest
				if p.start >= t-lookback {
					cur.prior, cur.firstSource = true, p.firstSource
					break
				}
			}
			if !cur.prior {
				cur.firstSource = oracleTraffic("sessionSource", e)
			}
			byVisitor[e.Visitor] = append(byVisitor[e.Visitor], cur)
			all = append(all, cur)
		}
		cur.last = t
		cur.events = append(cur.events, e)
	}
	return all
}

func (s *oracleSession) dim(name string, local time.Time) string {
	first := s.events[0]
	switch name {
	case "landingPage", "landingPagePlusQueryString":
		for _, e := range s.events {
			if e.Name == "page_view" && e.Path != "" {
				if name == "landingPage" {
					path, _, _ := strings.Cut(e.Path, "?")
					return orNotSet(path)
				}
				return orNotSet(e.Path)
			}
		}
		return "(not set)"
	case "newVsReturning":
		newUser, returning := false, false
		for _, e := range s.events {
			newUser = newUser || e.Flags&protocol.FlagFirstVisit != 0 || e.Name == "first_visit" || e.SessionNum == 1
			returning = returning || e.SessionNum > 1
		}
		if newUser || (!returning && !s.prior) {
			return "new"
		}
		return "returning"
	case "firstUserSource":
		return s.firstSource
	case "sessionSource", "sessionMedium", "sessionCampaignName", "sessionDefaultChannelGroup", "sessionSourceMedium":
		return oracleTraffic(name, first)
	}
	// Time dimensions of the start, the rest of the first event.
	return oracleDim(name, first, local)
}

// addTo adds s to a: its user active when active (days) on the local day
// of one of its events.
func (s *oracleSession) addTo(a *oracleAcc, days map[oracleUserDay]bool, loc *time.Location) {
	for _, e := range s.events {
		a.add(e, days[oracleUserDay{e.Visitor, time.UnixMicro(e.TimeMicros).In(loc).Format(time.DateOnly)}])
	}
	a.countSession(s)
}

// countSession adds s to a's sessions: engaged by GA4's rules (the sender's
// seg, 10 seconds or longer, 10 s of engagement, 2 or more page views, a
// key event), with its duration.
func (a *oracleAcc) countSession(s *oracleSession) {
	var views, keys, engage int64
	engaged := false
	for _, e := range s.events {
		if e.Name == "page_view" {
			views++
		}
		if e.Flags&protocol.FlagKeyEvent != 0 {
			keys++
		}
		engage += e.EngageMs
		engaged = engaged || e.Flags&protocol.FlagEngaged != 0
	}
	dur := s.last - s.start
	if engaged || engage >= 10000 || views >= 2 || keys > 0 { // GA4: engagement time, not duration
		a.engaged++
	}
	a.sessions++
	a.durationMicros += dur
}
