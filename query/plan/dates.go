package plan

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
const MaxYear = 9998

// Day is a calendar day, held as midnight UTC of that day so that adding days
// never meets a daylight-saving change.
type Day struct{ Time time.Time }

func NewDay(y int, m time.Month, d int) Day { return Day{time.Date(y, m, d, 0, 0, 0, 0, time.UTC)} }

// DayOf is the calendar day of instant t in loc.
func DayOf(t time.Time, loc *time.Location) Day {
	y, m, d := t.In(loc).Date()
	return NewDay(y, m, d)
}

func (d Day) AddDays(n int) Day { return Day{d.Time.AddDate(0, 0, n)} }

func (d Day) before(o Day) bool { return d.Time.Before(o.Time) }

func (d Day) String() string { return d.Time.Format(time.DateOnly) }

// Start is the first instant of d in loc. A day that begins inside a
// daylight-saving gap starts at the first instant that exists.
func (d Day) Start(loc *time.Location) time.Time {
	y, m, dd := d.Time.Date()
	return time.Date(y, m, dd, 0, 0, 0, 0, loc)
}

// ParseDate resolves a GA4 date: YYYY-MM-DD, "today", "yesterday" or
// "NdaysAgo" (N a non-negative integer), relative to today.
func ParseDate(s string, today Day) (Day, bool) {
	switch s {
	case "today":
		return today, true
	case "yesterday":
		return today.AddDays(-1), true
	}
	if n, ok := strings.CutSuffix(s, "daysAgo"); ok {
		if n == "" || len(n) > 6 || strings.TrimLeft(n, "0123456789") != "" {
			return Day{}, false
		}
		v, err := strconv.Atoi(n)
		if err != nil || v > maxDaysAgo {
			return Day{}, false
		}
		return today.AddDays(-v), true
	}
	if len(s) != len(time.DateOnly) {
		return Day{}, false
	}
	t, err := time.Parse(time.DateOnly, s)
	if err != nil || t.Year() < 1 || t.Year() > MaxYear {
		return Day{}, false
	}
	return Day{t}, true
}
