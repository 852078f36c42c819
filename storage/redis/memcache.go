package redis

import (
	"context"
	"strconv"
	"sync"
	"time"

	"github.com/avila-analytics/avila/protocol"
)

// MemoryCache is the query cache of a node without Redis: the same
// contract as Cache (a report is never served after newer data of its
// site committed), with entries in a byte-bounded LRU and data versions as
// counters, in this process. It cannot see what other nodes commit, so a
// cluster without Redis caches nothing. Safe for concurrent use.
type MemoryCache struct {
	maxEntry int
	now      func() time.Time

	mu       sync.Mutex
	versions map[uint32]uint64 // data version by site
	mem      *lru
}

// NewMemoryCache makes a cache in this process, bounded by
// o.MemoryBytes and o.MaxEntryBytes (the Redis fields are unused).
func NewMemoryCache(o CacheOptions) *MemoryCache {
	c := &MemoryCache{maxEntry: o.MaxEntryBytes, now: o.Now, versions: map[uint32]uint64{}}
	if c.maxEntry <= 0 {
		c.maxEntry = defaultMaxEntryBytes
	}
	if c.now == nil {
		c.now = time.Now
	}
	size := o.MemoryBytes
	if size <= 0 {
		size = defaultMemoryBytes
	}
	c.mem = newLRU(size)
	return c
}

// Version returns site's current data version; always known in memory.
func (c *MemoryCache) Version(_ context.Context, site uint32) (string, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return strconv.FormatUint(c.versions[site], 10), true
}

// Bump gives each site a new data version.
func (c *MemoryCache) Bump(_ context.Context, sites []uint32) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, s := range sites {
		c.versions[s]++
	}
}

// Committed bumps the versions of the sites in events.
func (c *MemoryCache) Committed(ctx context.Context, events []protocol.Event) {
	c.Bump(ctx, sitesOf(events))
}

// Run has nothing to retry in memory: it returns at once.
func (c *MemoryCache) Run(context.Context) {}

// Get returns the value stored under key; ok is false on a miss.
func (c *MemoryCache) Get(_ context.Context, key string) ([]byte, bool) {
	return c.mem.get(key, c.now())
}

// Set stores value under key for ttl; values over MaxEntryBytes are not kept.
func (c *MemoryCache) Set(_ context.Context, key string, value []byte, ttl time.Duration) {
	if len(value) > c.maxEntry || ttl <= 0 {
		return
	}
	c.mem.put(key, value, c.now().Add(ttl))
}
