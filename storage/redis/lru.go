package redis

import (
	"container/list"
	"sync"
	"time"
)

// entryOverhead approximates the memory an entry costs beyond its key and
// value (list element, map slot, headers), so many tiny entries still
// count against the bound.
const entryOverhead = 128

// lru is the in-memory cache: least recently used entries go first once
// the total size passes max bytes, and an entry past its expiry is gone.
// Safe for concurrent use.
type lru struct {
	mu    sync.Mutex
	max   int64
	size  int64
	order *list.List // of *lruEntry, most recently used first
	items map[string]*list.Element
}

type lruEntry struct {
	key     string
	value   []byte
	expires time.Time
}

func newLRU(max int64) *lru {
	return &lru{max: max, order: list.New(), items: map[string]*list.Element{}}
}

func (e *lruEntry) cost() int64 { return int64(len(e.key) + len(e.value) + entryOverhead) }

func (l *lru) get(key string, now time.Time) ([]byte, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	el, ok := l.items[key]
	if !ok {
		return nil, false
	}
	e := el.Value.(*lruEntry)
	if !now.Before(e.expires) {
		l.remove(el)
		return nil, false
	}
	l.order.MoveToFront(el)
	return e.value, true
}

// put stores value (which the cache then owns) until expires. A value
// larger than the whole bound is not stored.
func (l *lru) put(key string, value []byte, expires time.Time) {
	e := &lruEntry{key: key, value: value, expires: expires}
	if e.cost() > l.max {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if el, ok := l.items[key]; ok {
		l.remove(el)
	}
	l.items[key] = l.order.PushFront(e)
	l.size += e.cost()
	for l.size > l.max {
		l.remove(l.order.Back())
	}
}

func (l *lru) remove(el *list.Element) {
	e := l.order.Remove(el).(*lruEntry)
	delete(l.items, e.key)
	l.size -= e.cost()
}
