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

// memEntry is a Session and when it expires, flat: a map entry of a
// Key and a memEntry takes 48 bytes, where a Session beside a time.Time
// took 72.
type memEntry struct {
	id, start, last int64
	firstSource     int32
	expires         uint32 // Unix seconds
}

func newMemEntry(s Session, expires time.Time) memEntry {
	return memEntry{id: s.ID, start: s.Start, last: s.Last, firstSource: s.FirstSource, expires: uint32(expires.Unix())}
}

func (e memEntry) session() Session {
	return Session{ID: e.id, Start: e.start, Last: e.last, FirstSource: e.firstSource}
}

// live tells whether e has not expired at now.
func (e memEntry) live(now time.Time) bool { return now.Unix() < int64(e.expires) }

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

// Len is how many visitors c holds, expired ones included until a Put
// that finds it full drops them.
func (c *Memory) Len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.m)
}

// Get returns the latest session of each visitor it holds.
func (c *Memory) Get(_ context.Context, keys []Key) (map[Key]Session, error) {
	now := c.now()
	out := make(map[Key]Session, len(keys))
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, k := range keys {
		if e, ok := c.m[k]; ok && e.live(now) {
			out[k] = e.session()
		}
	}
	return out, nil
}

// Latest is Get without a map: for each of site's visitors, found[i]
// tells whether c holds its latest session, and latest[i] is it (the
// zero Session when not found). latest and found must be as long as
// visitors.
func (c *Memory) Latest(site uint32, visitors []uint64, latest []Session, found []bool) {
	now := c.now()
	c.mu.Lock()
	defer c.mu.Unlock()
	for i, v := range visitors {
		e, ok := c.m[Key{Site: site, Visitor: v}]
		ok = ok && e.live(now)
		found[i] = ok
		latest[i] = Session{}
		if ok {
			latest[i] = e.session()
		}
	}
}

// Put records the latest session of each visitor.
func (c *Memory) Put(_ context.Context, latest map[Key]Session) error {
	now := c.now()
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.m)+len(latest) > c.max {
		for k, e := range c.m {
			if !e.live(now) {
				delete(c.m, k)
			}
		}
		// Still full: forget everything; the database answers misses.
		// A new map, as a cleared one would keep its room for max
		// entries however few come back.
		if len(c.m)+len(latest) > c.max {
			c.m = make(map[Key]memEntry)
		}
	}
	expires := now.Add(Timeout)
	for k, s := range latest {
		if e, ok := c.m[k]; ok && e.start > s.Start {
			continue // a later session is known already
		}
		c.m[k] = newMemEntry(s, expires)
	}
	return nil
}
