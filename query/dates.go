package query

import (
	"strconv"
	"strings"
	"time"
)

// maxDaysAgo bounds "NdaysAgo" so date arithmetic stays far from overflow;
// it is older than any stored event.
const maxDaysAgo = 100000

// Stored dates are years 1..9998: the exclusive end bound of a range is the
// day after its end date, which must still be a four-digit year.
const maxYear = 9998

// day is a calendar day, held as midnight UTC of that day so that adding days
// never meets a daylight-saving change.
type day struct{ t time.Time }

func newDay(y int, m time.Month, d int) day { return day{time.Date(y, m, d, 0, 0, 0, 0, time.UTC)} }

// dayOf is the calendar day of instant t in loc.
func dayOf(t time.Time, loc *time.Location) day {
	y, m, d := t.In(loc).Date()
	return newDay(y, m, d)
}

func (d day) addDays(n int) day { return day{d.t.AddDate(0, 0, n)} }

func (d day) before(o day) bool { return d.t.Before(o.t) }

func (d day) String() string { return d.t.Format(time.DateOnly) }

// start is the first instant of d in loc. A day that begins inside a
// daylight-saving gap starts at the first instant that exists.
func (d day) start(loc *time.Location) time.Time {
	y, m, dd := d.t.Date()
	return time.Date(y, m, dd, 0, 0, 0, 0, loc)
}

// parseDate resolves a GA4 date: YYYY-MM-DD, "today", "yesterday" or
// "NdaysAgo" (N a non-negative integer), relative to today.
func parseDate(s string, today day) (day, bool) {
	switch s {
	case "today":
		return today, true
	case "yesterday":
		return today.addDays(-1), true
	}
	if n, ok := strings.CutSuffix(s, "daysAgo"); ok {
		if n == "" || len(n) > 6 || strings.TrimLeft(n, "0123456789") != "" {
			return day{}, false
		}
		v, err := strconv.Atoi(n)
		if err != nil || v > maxDaysAgo {
			return day{}, false
		}
		return today.addDays(-v), true
	}
	if len(s) != len(time.DateOnly) {
		return day{}, false
	}
	t, err := time.Parse(time.DateOnly, s)
	if err != nil || t.Year() < 1 || t.Year() > maxYear {
		return day{}, false
	}
	return day{t}, true
}
