package query

import (
	"regexp"
	"strings"
)

// Settled days' events are packed (storage/postgres, event_packs: per site
// and UTC day, one row of compressed arrays, a column each). A statement
// over events reads both tables; from the packs it unnests only the
// columns it uses, since each array read is a whole column decompressed
// (a 30-day scan reading two columns takes a quarter of the time of one
// reading all twelve). storage/postgres's events_in() is the same union
// with every column.

// eventsSource stands for the events of $1 in [$3, $4) in a statement
// being written, until sqlWriter.text replaces it.
const eventsSource = "/*events*/"

// eventColumns are the events table's columns; packs hold each but
// site_id as an array of the same name.
var eventColumns = []string{"ts", "visitor_id", "session_id", "site_id", "name_id", "referrer_id",
	"content_id", "client_id", "traffic_id", "engagement_ms", "flags", "params"}

var eventColumnRefs = func() map[string]*regexp.Regexp {
	m := make(map[string]*regexp.Regexp, len(eventColumns))
	for _, c := range eventColumns {
		m[c] = regexp.MustCompile(`\be\.` + c + `\b`)
	}
	return m
}()

// text is the statement written, with eventsSource replaced by the union
// of the events table and the packs over the columns the statement reads
// (e.column; ts and site_id always).
func (w *sqlWriter) text() string {
	s := w.String()
	if !strings.Contains(s, eventsSource) {
		return s
	}
	cols := []string{"ts", "site_id"}
	for _, c := range eventColumns {
		if c != "ts" && c != "site_id" && eventColumnRefs[c].MatchString(s) {
			cols = append(cols, c)
		}
	}
	return strings.ReplaceAll(s, eventsSource, eventsUnion(cols))
}

// eventsUnion is the events of $1 in [$3, $4), columns cols (ts and
// site_id first), from the events table and the packs.
func eventsUnion(cols []string) string {
	var b strings.Builder
	b.WriteString("(SELECT " + strings.Join(cols, ", ") +
		" FROM events WHERE site_id = $1 AND ts >= $3 AND ts < $4 UNION ALL SELECT u.ts, p.site_id")
	arrays, names := []string{"p.ts"}, []string{"ts"}
	for _, c := range cols[2:] {
		b.WriteString(", u." + c)
		arrays, names = append(arrays, "p."+c), append(names, c)
	}
	b.WriteString(" FROM event_packs p CROSS JOIN LATERAL unnest(" + strings.Join(arrays, ", ") + ") AS u(" +
		strings.Join(names, ", ") + ") WHERE p.site_id = $1" +
		" AND p.day >= ($3::timestamptz AT TIME ZONE 'UTC')::date AND p.day <= ($4::timestamptz AT TIME ZONE 'UTC')::date" +
		" AND u.ts >= $3 AND u.ts < $4)")
	return b.String()
}
