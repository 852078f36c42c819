package query

import (
	"github.com/avila-analytics/avila/query/engine/sql"
	"strings"
	"testing"
)

// TestEventsSourceReadsUsedColumns: the packs' arrays a statement unnests
// are the columns it reads, ts and site_id always, and the events table's
// branch selects the same columns in the same order.
func TestEventsSourceReadsUsedColumns(t *testing.T) {
	var w sql.Writer
	w.WriteString("SELECT count(*) FILTER (WHERE e.flags & 16 <> 0), count(DISTINCT e.visitor_id) FROM " + sql.EventsSource +
		" e JOIN r ON e.ts >= r.lo WHERE e.site_id = $1 AND e.name_id = 3 AND e.session_idx = 0")
	got := w.Text()
	if strings.Contains(got, sql.EventsSource) {
		t.Fatalf("placeholder left in %s", got)
	}
	for _, want := range []string{
		"(SELECT ts, site_id, visitor_id, name_id, flags FROM events WHERE",
		"SELECT u.ts, p.site_id, u.visitor_id, u.name_id, u.flags FROM event_packs p",
		"unnest(p.ts, p.visitor_id, p.name_id, p.flags) AS u(ts, visitor_id, name_id, flags)",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("statement lacks %q:\n%s", want, got)
		}
	}
	// e.session_idx is not e.session_id: whole names only.
	if strings.Contains(got, "p.session_id") || strings.Contains(got, "p.params") {
		t.Errorf("statement unnests columns it does not read:\n%s", got)
	}
}
