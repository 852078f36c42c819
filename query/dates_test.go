package query

import (
	"github.com/avila-analytics/avila/query/plan"
	"testing"
	"time"
)

func TestParseDate(t *testing.T) {
	today := plan.NewDay(2026, 3, 1)
	f := func(in, want string) {
		t.Helper()
		got, ok := plan.ParseDate(in, today)
		if want == "" {
			if ok {
				t.Fatalf("parseDate(%q) = %s, want an error", in, got)
			}
			return
		}
		if !ok || got.String() != want {
			t.Fatalf("parseDate(%q) = %s, %v; want %s", in, got, ok, want)
		}
	}
	f("today", "2026-03-01")
	f("yesterday", "2026-02-28")
	f("0daysAgo", "2026-03-01")
	f("1daysAgo", "2026-02-28")
	f("365daysAgo", "2025-03-01")
	f("007daysAgo", "2026-02-22")
	f("2024-02-29", "2024-02-29")
	f("0001-01-01", "0001-01-01")
	f("9998-12-31", "9998-12-31")
	f("9999-01-01", "")
	f("2023-02-29", "")
	f("2026-3-1", "")
	f("2026-03-01T00:00:00Z", "")
	f("daysAgo", "")
	f("-1daysAgo", "")
	f("+1daysAgo", "")
	f("1000000daysAgo", "")
	f("100001daysAgo", "")
	f("Today", "")
	f("", "")
}

// TestDayStart checks range bounds in zones with daylight saving: a day is
// 23 or 25 hours long across a change, and bounds are local midnights.
func TestDayStart(t *testing.T) {
	ny, _ := time.LoadLocation("America/New_York")
	f := func(d plan.Day, loc *time.Location, want string) {
		t.Helper()
		if got := d.Start(loc).UTC().Format(time.RFC3339); got != want {
			t.Fatalf("start of %s in %s = %s, want %s", d, loc, got, want)
		}
	}
	f(plan.NewDay(2026, 3, 8), ny, "2026-03-08T05:00:00Z")
	f(plan.NewDay(2026, 3, 9), ny, "2026-03-09T04:00:00Z") // after spring forward
	f(plan.NewDay(2026, 11, 2), ny, "2026-11-02T05:00:00Z")
	f(plan.NewDay(2026, 3, 8), time.UTC, "2026-03-08T00:00:00Z")
	// 2026-03-10 12:00 UTC is already March 11 in Auckland (UTC+13).
	akl, _ := time.LoadLocation("Pacific/Auckland")
	if got := plan.DayOf(fixtureNow, akl).String(); got != "2026-03-11" {
		t.Fatalf("dayOf in Auckland = %s", got)
	}
}

func FuzzParseDate(f *testing.F) {
	for _, s := range []string{"today", "yesterday", "30daysAgo", "2026-03-01", "0000-00-00", "99999daysAgo", "2026-02-30"} {
		f.Add(s)
	}
	today := plan.NewDay(2026, 3, 1)
	f.Fuzz(func(t *testing.T, s string) {
		d, ok := plan.ParseDate(s, today)
		if !ok {
			return
		}
		// Every accepted day must have a representable exclusive end bound.
		if y := d.AddDays(1).Time.Year(); y < 1 || y > plan.MaxYear+1 {
			t.Fatalf("parseDate(%q) = %s: end bound year %d", s, d, y)
		}
	})
}
