// Package logthrottle lets a repeated log line through at most once per
// period and counts the ones it held back, so an outage under load logs a
// line every few seconds instead of one per request or batch.
package logthrottle

import (
	"sync"
	"time"
)

// Throttle is safe for concurrent use. The zero value lets every line
// through; set Every.
type Throttle struct {
	Every time.Duration

	mu         sync.Mutex
	last       time.Time
	suppressed int
}

// Allow reports whether to log at now, and how many lines were held back
// since the last one let through. A clock that went backwards lets the line
// through.
func (t *Throttle) Allow(now time.Time) (suppressed int, ok bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if !t.last.IsZero() && now.Sub(t.last) < t.Every && now.Sub(t.last) >= 0 {
		t.suppressed++
		return 0, false
	}
	n := t.suppressed
	t.last, t.suppressed = now, 0
	return n, true
}
