package logthrottle

import (
	"testing"
	"time"
)

func TestThrottle(t *testing.T) {
	now0 := time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)
	th := Throttle{Every: 10 * time.Second}
	if _, ok := th.Allow(now0); !ok {
		t.Fatal("first line held back")
	}
	for i := range 3 {
		if _, ok := th.Allow(now0.Add(time.Duration(i) * time.Second)); ok {
			t.Fatal("line within the period let through")
		}
	}
	if n, ok := th.Allow(now0.Add(10 * time.Second)); !ok || n != 3 {
		t.Fatalf("after the period: %d, %v; want 3 suppressed, allowed", n, ok)
	}
	if _, ok := th.Allow(now0); !ok {
		t.Fatal("a clock that went backwards held the line back")
	}
}
