package ingest

import (
	"sync"
	"time"
)

// throttle lets one log line through per period and counts the rest, so a
// database outage under load logs a line every few seconds, not per batch.
type throttle struct {
	every time.Duration

	mu         sync.Mutex
	last       time.Time
	suppressed int
}

// allow reports whether to log now, and how many lines were held back since
// the last one that was.
func (t *throttle) allow(now time.Time) (int, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if !t.last.IsZero() && now.Sub(t.last) < t.every && now.Sub(t.last) >= 0 {
		t.suppressed++
		return 0, false
	}
	n := t.suppressed
	t.last, t.suppressed = now, 0
	return n, true
}
