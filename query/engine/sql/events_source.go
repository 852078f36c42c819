package sql

import (
	"regexp"
	"slices"
	"strconv"
	"strings"

	"github.com/avila-analytics/avila/protocol"
	"github.com/avila-analytics/avila/storage/postgres"
)

// Settled days' events are packed (storage/postgres, event_packs), and a
// statement over events reads both tables through postgres.EventsIn, which
// unnests only the packed columns the statement reads.

// EventsSource stands for the events of $1 in [$3, $4) in a statement
// being written, until sqlWriter.text replaces it.
const EventsSource = "/*events*/"

var eventColumnRefs = func() map[string]*regexp.Regexp {
	m := make(map[string]*regexp.Regexp, len(postgres.EventColumns))
	for _, c := range postgres.EventColumns {
		m[c] = regexp.MustCompile(`\be\.` + c + `\b`)
	}
	return m
}()

// sessionColumns are the columns an events row "e" takes from its session
// (the sessions row of the same site, visitor and session id): the
// session's traffic source (traffic_id, which events hold on a session's
// first event only), landing page (page_id), the user's first source,
// the session's flags and, for event-session reports, what decides
// whether the session is engaged and how long it lasted. 0 (and NULL
// times) for an event whose session is not stored. col is the sessions
// column read.
var sessionColumns = []struct{ name, col, expr string }{
	{"traffic_id", "traffic_id", "COALESCE(s.traffic_id, 0)"},
	{"page_id", "page_id", "COALESCE(s.page_id, 0)"},
	{"first_source_id", "first_source_id", "COALESCE(s.first_source_id, 0)"},
	{"session_flags", "flags", "COALESCE(s.flags, 0)"},
	{"s_ts", "ts", "s.ts"},
	{"s_last_ts", "last_ts", "s.last_ts"},
	{"s_engagement_ms", "engagement_ms", "COALESCE(s.engagement_ms, 0)"},
	{"s_page_views", "page_views", "COALESCE(s.page_views, 0)"},
	{"s_key_events", "key_events", "COALESCE(s.key_events, 0)"},
}

var sessionColumnRefs = func() []*regexp.Regexp {
	out := make([]*regexp.Regexp, len(sessionColumns))
	for i, c := range sessionColumns {
		out[i] = regexp.MustCompile(`\be\.` + c.name + `\b`)
	}
	return out
}()

// An event's session is the sessions row postgres.SessionOf joins it to.
// The range's sessions (postgres.SessionsNear, bounded by the range, so
// partitions are pruned) are read once into the statement's CTE
// sessionsCTE and hashed: probing the partitioned sessions table's index
// once per event costs seconds over a month of events.
const sessionsCTE = "sess"

// An events row's day_active is whether its visitor was active on its
// local day (GA4's is_active_user, metrics.go activeUsersExpr): whether
// one of the visitor's events of that day is active, over the range's
// events before any filter (the ranges are whole local days, so each
// event's day is whole in them). A window over (visitor, day) rather than
// a join to the range's active user-days, which timed out on a set of
// 30 000 events (docs/architecture.md).
var dayActiveSQL = "bool_or(dv.flags & " + strconv.Itoa(int(protocol.FlagEngaged|protocol.FlagFirstVisit)) +
	" <> 0 OR dv.engagement_ms > 0) OVER (PARTITION BY dv.visitor_id, (dv.ts AT TIME ZONE $2::text)::date)"

var dayActiveRef = regexp.MustCompile(`\be\.day_active\b`)

// sessionsSource stands for the sessions rows of a session report being
// written, until Writer.Text replaces it: the sessions table, or, when
// the statement reads e.day_active, the sessions that began in [$3, $4)
// with sessionsDayActive.
const sessionsSource = "/*sessions*/"

// sessionsDayActive is a sessions row's day_active in session reports:
// whether its visitor is active on a local day on which the session has an
// event (GA4's is_active_user over the session's events; the session
// rollups' rule), by dayActiveSQL over the events from $3 to
// sessionDaysAfter local days after $4 (whole days), as far as a session
// that began in the range goes on (storage/postgres sessionDaysAfter).
var sessionsDayActive = "(SELECT s.*, COALESCE(a.act, false) AS day_active FROM sessions s LEFT JOIN (" +
	"SELECT x.visitor_id, x.session_id, bool_or(x.da) AS act FROM (SELECT dv.visitor_id, dv.session_id, " + dayActiveSQL + " AS da FROM " +
	postgres.EventsIn("$1", "$3", "((($4::timestamptz AT TIME ZONE $2::text) + interval '"+strconv.Itoa(sessionDaysAfter)+" days') AT TIME ZONE $2::text)",
		[]string{"site_id", "ts", "visitor_id", "session_id", "flags", "engagement_ms"}) +
	" dv) x GROUP BY 1, 2) a ON a.visitor_id = s.visitor_id AND a.session_id = s.session_id" +
	" WHERE s.site_id = $1 AND s.ts >= $3 AND s.ts < $4)"

// sessionDaysAfter is storage/postgres's: the local days after a session
// began that its events may reach.
const sessionDaysAfter = 4

// Text is the statement written, with eventsSource replaced by the events
// over the columns the statement reads (e.column; ts and site_id always),
// joined to their sessions when it reads sessionColumns, and
// sessionsSource by the sessions.
func (w *Writer) Text() string {
	s := w.String()
	if strings.Contains(s, sessionsSource) {
		src := "sessions"
		if dayActiveRef.MatchString(s) {
			src = sessionsDayActive
		}
		s = strings.ReplaceAll(s, sessionsSource, src)
	}
	if strings.Contains(s, itemsSource) {
		s = strings.ReplaceAll(s, itemsSource, itemsSourceOf(s))
	}
	if !strings.Contains(s, EventsSource) {
		return s
	}
	var fromSession []int
	for i, re := range sessionColumnRefs {
		if re.MatchString(s) {
			fromSession = append(fromSession, i)
		}
	}
	cols := []string{"ts", "site_id"}
	for _, c := range postgres.EventColumns {
		if c == "ts" || c == "site_id" || (c == "traffic_id" && fromSession != nil) {
			continue
		}
		if eventColumnRefs[c].MatchString(s) || (fromSession != nil && (c == "visitor_id" || c == "session_id")) {
			cols = append(cols, c)
		}
	}
	dayActive := dayActiveRef.MatchString(s)
	if dayActive {
		for _, c := range []string{"visitor_id", "flags", "engagement_ms"} {
			if !slices.Contains(cols, c) {
				cols = append(cols, c)
			}
		}
	}
	source := postgres.EventsIn("$1", "$3", "$4", cols)
	if fromSession != nil {
		sel := make([]string, 0, len(cols)+len(fromSession))
		for _, c := range cols {
			sel = append(sel, "ev."+c)
		}
		read := []string{"visitor_id", "session_id", "ts"}
		for _, i := range fromSession {
			sel = append(sel, sessionColumns[i].expr+" AS "+sessionColumns[i].name)
			if c := sessionColumns[i].col; !slices.Contains(read, c) {
				read = append(read, c)
			}
		}
		rest, ok := strings.CutPrefix(s, "WITH ")
		if !ok {
			panic("query: BUG: an events statement that reads sessions does not begin with WITH")
		}
		s = "WITH " + sessionsCTE + " AS MATERIALIZED (" + postgres.SessionsNear("$1", "$3", "$4", read) + "),\n" + rest
		source = "(SELECT " + strings.Join(sel, ", ") + " FROM " + source + " ev LEFT JOIN " + sessionsCTE + " s ON " + postgres.SessionOf("s", "ev") + ")"
	}
	if dayActive {
		source = "(SELECT dv.*, " + dayActiveSQL + " AS day_active FROM " + source + " dv)"
	}
	return strings.ReplaceAll(s, EventsSource, source)
}

// itemsSource stands for the item rows of $1 in [$3, $4) in a statement
// being written (an item report), until sqlWriter.text replaces it with
// postgres.ItemsIn over the columns the statement reads: item rows of
// settled days are packed (item_packs) like events.
const itemsSource = "/*items*/"

var itemColumnRefs = func() map[string]*regexp.Regexp {
	m := map[string]*regexp.Regexp{}
	for _, c := range postgres.ItemColumns() {
		m[c] = regexp.MustCompile(`\be\.` + c + `\b`)
	}
	return m
}()

// itemsSourceOf is the item rows statement s reads (e.column; ts and
// site_id always).
func itemsSourceOf(s string) string {
	cols := []string{"ts", "site_id"}
	for _, c := range postgres.ItemColumns() {
		if c != "ts" && c != "site_id" && itemColumnRefs[c].MatchString(s) {
			cols = append(cols, c)
		}
	}
	return postgres.ItemsIn("$1", "$3", "$4", cols)
}
