package sessions

import (
	"context"
	"sync"
	"time"
)

// CacheCovers reports whether the latest committed session of a visitor
// (from Memory) is all Assign needs for the visitor's events: none is
// older than it could reach and none names an earlier sid. Otherwise the
// visitor's sessions must be looked up in the database.
func CacheCovers(latest Session, sessionID, timeMicros int64) bool {
	if sessionID > 0 {
		return sessionID >= latest.ID
	}
	return timeMicros >= latest.Start-Timeout.Microseconds()
}

// Memory holds the latest derived session of recently active visitors in
// process memory, for the write stage while it derives a site. Entries
// expire Timeout after they were put; at most max are kept.
type Memory struct {
	mu  sync.Mutex
	max int
	now func() time.Time
	m   map[Key]memEntry
}

type memEntry struct {
	s       Session
	expires time.Time
}

// NewMemory returns a Memory holding at most max visitors (default 1<<20
// when max <= 0); now is its clock (time.Now when nil).
func NewMemory(max int, now func() time.Time) *Memory {
	if max <= 0 {
		max = 1 << 20
	}
	if now == nil {
		now = time.Now
	}
	return &Memory{max: max, now: now, m: make(map[Key]memEntry)}
}

// Get returns the latest session of each visitor it holds.
func (c *Memory) Get(_ context.Context, keys []Key) (map[Key]Session, error) {
	now := c.now()
	out := make(map[Key]Session, len(keys))
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, k := range keys {
		if e, ok := c.m[k]; ok && now.Before(e.expires) {
			out[k] = e.s
		}
	}
	return out, nil
}

// Put records the latest session of each visitor.
func (c *Memory) Put(_ context.Context, latest map[Key]Session) error {
	now := c.now()
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.m)+len(latest) > c.max {
		for k, e := range c.m {
			if !now.Before(e.expires) {
				delete(c.m, k)
			}
		}
		// Still full: forget everything; the database answers misses.
		if len(c.m)+len(latest) > c.max {
			clear(c.m)
		}
	}
	for k, s := range latest {
		if e, ok := c.m[k]; ok && e.s.Start > s.Start {
			continue // a later session is known already
		}
		c.m[k] = memEntry{s, now.Add(Timeout)}
	}
	return nil
}
