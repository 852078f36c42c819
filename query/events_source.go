package query

import (
	"regexp"
	"strings"

	"github.com/avila-analytics/avila/storage/postgres"
)

// Settled days' events are packed (storage/postgres, event_packs), and a
// statement over events reads both tables through postgres.EventsIn, which
// unnests only the packed columns the statement reads.

// eventsSource stands for the events of $1 in [$3, $4) in a statement
// being written, until sqlWriter.text replaces it.
const eventsSource = "/*events*/"

var eventColumnRefs = func() map[string]*regexp.Regexp {
	m := make(map[string]*regexp.Regexp, len(postgres.EventColumns))
	for _, c := range postgres.EventColumns {
		m[c] = regexp.MustCompile(`\be\.` + c + `\b`)
	}
	return m
}()

// text is the statement written, with eventsSource replaced by the events
// over the columns the statement reads (e.column; ts and site_id always).
func (w *sqlWriter) text() string {
	s := w.String()
	if !strings.Contains(s, eventsSource) {
		return s
	}
	cols := []string{"ts", "site_id"}
	for _, c := range postgres.EventColumns {
		if c != "ts" && c != "site_id" && eventColumnRefs[c].MatchString(s) {
			cols = append(cols, c)
		}
	}
	return strings.ReplaceAll(s, eventsSource, postgres.EventsIn("$1", "$3", "$4", cols))
}
