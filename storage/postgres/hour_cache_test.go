package postgres

import (
	"math"
	"testing"
	"time"
)

// TestHourCache: the cached local day and hour are those of every
// instant, across zones with quarter-hour offsets and clock changes,
// for instants in order and out of it.
func TestHourCache(t *testing.T) {
	for _, name := range []string{"UTC", "Asia/Kathmandu", "America/New_York", "Australia/Lord_Howe", "America/St_Johns"} {
		loc, err := time.LoadLocation(name)
		if err != nil {
			t.Fatal(err)
		}
		c := &hourCache{loc: loc}
		start := time.Date(2026, 3, 7, 0, 0, 0, 0, time.UTC)
		for i := range 4 * 24 * 60 {
			// Minute by minute over four days holding New York's change,
			// with every seventh instant thrown back a few hours.
			at := start.Add(time.Duration(i)*time.Minute + 17*time.Second)
			if i%7 == 0 {
				at = at.Add(-5 * time.Hour)
			}
			day, hour := c.of(at)
			local := at.In(loc)
			if want := localDay(at, loc); day != want || hour != int32(local.Hour()) {
				t.Fatalf("%s %s: got day %d hour %d, want %d %d", name, at, day, hour, want, local.Hour())
			}
		}
	}
	// Second by second across quarters before the epoch, and instants
	// whose distance from the quarter held overflows.
	c := &hourCache{loc: time.UTC}
	start := time.Date(1969, 12, 31, 23, 14, 0, 0, time.UTC)
	ats := []time.Time{time.Unix(math.MaxInt64/2, 0), time.Unix(-math.MaxInt64/2, 0), time.Unix(math.MaxInt64/2+1000, 0), start}
	for i := range 3600 {
		ats = append(ats, start.Add(time.Duration(i)*time.Second))
	}
	for _, at := range ats {
		if day, hour := c.of(at); day != localDay(at, time.UTC) || hour != int32(at.Hour()) {
			t.Fatalf("%s: got day %d hour %d", at, day, hour)
		}
	}
	if got := dayDate(localDay(time.Date(1969, 12, 31, 23, 0, 0, 0, time.UTC), time.UTC)); !got.Equal(time.Date(1969, 12, 31, 0, 0, 0, 0, time.UTC)) {
		t.Fatalf("day before the epoch: %s", got)
	}
}
