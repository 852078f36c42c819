package redis

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/avila-analytics/avila/internal/logthrottle"
	"github.com/avila-analytics/avila/protocol"
)

// Cache defaults; see CacheOptions.
const (
	defaultMemoryBytes   = 64 << 20
	defaultMaxEntryBytes = 1 << 20
	defaultVersionTTL    = 24 * time.Hour
	// bumpTimeout bounds the version bump of one batch, which runs before
	// the batch is acknowledged: a slow Redis must not hold up ingest.
	bumpTimeout = 500 * time.Millisecond
	// opTimeout bounds one cache read or write, which a report waits for:
	// with Redis down, go-redis retries a refused dial for hundreds of
	// milliseconds, longer than computing many reports.
	opTimeout = 250 * time.Millisecond
	// downFor is how long Redis is skipped after a failed command, so that
	// an outage costs one failed command per second, not one per request.
	downFor = time.Second
	// retryEvery is how often Run retries bumps that did not reach Redis.
	retryEvery = time.Second
	logEvery   = 10 * time.Second
)

// CacheOptions configure NewCache. The zero value works.
type CacheOptions struct {
	// Prefix starts every Redis key (the node's --redis-prefix).
	Prefix string
	Logger *slog.Logger // nil: discard
	// Metrics counts failed Redis commands (NewCacheMetrics); nil: not counted.
	Metrics *CacheMetrics
	// MemoryBytes bounds MemoryCache's entries (values and keys);
	// default 64 MiB. Unused by the Redis cache.
	MemoryBytes int64
	// MaxEntryBytes is the largest value kept, in Redis or in memory;
	// bigger results are not cached. Default 1 MiB.
	MaxEntryBytes int
	// VersionTTL is the lifetime of a site's data version in Redis, renewed
	// at every read and bump; default 24h. Keep it longer than any entry TTL.
	VersionTTL time.Duration
	Now        func() time.Time // MemoryCache's clock of the TTLs; nil: time.Now
}

// Cache keeps query results under keys the caller derives from the
// request and the site's data version, a token that changes whenever the
// site's stored data does (Bump, from the ingest Committed hook). A result
// is therefore never served after newer data has committed, whatever its
// TTL; the TTL only frees the space of results nobody asks for.
//
// Entries and versions live in Redis and are shared by the cluster: keys
// {prefix}cache:q:{key} and {prefix}dv:{site}. A version is a random token
// rather than a counter, so a version key lost to eviction or a Redis
// restart can never come back equal to one that cached entries were stored
// under. A node without Redis uses MemoryCache instead, chosen at start.
//
// Redis errors never reach the caller: a failed read is a miss, a failed
// write is skipped, both logged (rate-limited) and counted. A bump that
// fails is remembered and retried (Run, and before the site's next
// Version); until it reaches Redis this node does not use the cache for
// that site.
type Cache struct {
	rdb        goredis.UniversalClient
	prefix     string
	log        *slog.Logger
	metrics    *CacheMetrics
	maxEntry   int
	versionTTL time.Duration
	failLog    logthrottle.Throttle
	downUntil  atomic.Int64 // unix nanoseconds; Redis is skipped until then

	mu sync.Mutex
	// pending holds the sites whose data changed without a new version
	// reaching Redis, each with the mark (from marks) of its latest change.
	pending map[uint32]uint64
	marks   uint64
}

// NewCache makes a cache in Redis over rdb, which must not be nil.
func NewCache(rdb goredis.UniversalClient, o CacheOptions) *Cache {
	c := &Cache{rdb: rdb, prefix: o.Prefix, log: o.Logger, metrics: o.Metrics, maxEntry: o.MaxEntryBytes,
		versionTTL: o.VersionTTL, failLog: logthrottle.Throttle{Every: logEvery},
		pending: map[uint32]uint64{}}
	if c.log == nil {
		c.log = slog.New(slog.DiscardHandler)
	}
	if c.maxEntry <= 0 {
		c.maxEntry = defaultMaxEntryBytes
	}
	if c.versionTTL <= 0 {
		c.versionTTL = defaultVersionTTL
	}
	return c
}

func (c *Cache) entryKey(key string) string { return c.prefix + "cache:q:" + key }

func (c *Cache) versionKey(site uint32) string {
	return c.prefix + "dv:" + strconv.FormatUint(uint64(site), 10)
}

// Version returns site's current data version. ok is false when it cannot
// be known (Redis down, or a bump of this site still pending): the caller
// must then neither read nor write the cache for site.
func (c *Cache) Version(ctx context.Context, site uint32) (version string, ok bool) {
	if c.down() {
		return "", false
	}
	ctx, cancel := context.WithTimeout(ctx, opTimeout)
	defer cancel()
	c.mu.Lock()
	_, pending := c.pending[site]
	c.mu.Unlock()
	// Our bump never arrived: entries under the version in Redis may
	// predate data this node committed. Publish a new one first.
	if pending && !c.bumpRedis(ctx, []uint32{site}) {
		return "", false
	}
	key := c.versionKey(site)
	v, err := c.rdb.GetEx(ctx, key, c.versionTTL).Result()
	if err == nil {
		return v, true
	}
	if !errors.Is(err, goredis.Nil) {
		c.fail(ctx, opVersion, fmt.Errorf("redis: cache: read version of site %d: %w", site, err))
		return "", false
	}
	// No version yet (first use, expiry, eviction): start one, unless
	// another node just did, in which case SET ... NX GET returns theirs.
	token := newToken()
	old, err := c.rdb.SetArgs(ctx, key, token, goredis.SetArgs{Mode: "NX", Get: true, TTL: c.versionTTL}).Result()
	switch {
	case errors.Is(err, goredis.Nil):
		return token, true
	case err != nil:
		c.fail(ctx, opVersion, fmt.Errorf("redis: cache: start version of site %d: %w", site, err))
		return "", false
	}
	return old, true
}

// Bump gives each site a new data version, so nothing cached for it before
// is served again. A bump that cannot reach Redis is kept and retried.
func (c *Cache) Bump(ctx context.Context, sites []uint32) {
	if len(sites) == 0 {
		return
	}
	if c.down() {
		c.markPending(sites) // Run retries once Redis had time to come back
		return
	}
	c.bumpRedis(ctx, sites)
}

// Committed bumps the versions of the sites in events: the cache's part of
// the ingest Committed hook. Quick: at most bumpTimeout.
func (c *Cache) Committed(ctx context.Context, events []protocol.Event) {
	ctx, cancel := context.WithTimeout(ctx, bumpTimeout)
	defer cancel()
	c.Bump(ctx, sitesOf(events))
}

// sitesOf lists the sites of events, each once.
func sitesOf(events []protocol.Event) []uint32 {
	var sites []uint32
	for i := range events {
		if !slices.Contains(sites, events[i].Site) {
			sites = append(sites, events[i].Site)
		}
	}
	return sites
}

// markPending records that sites' data changed without Redis hearing of it.
func (c *Cache) markPending(sites []uint32) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, s := range sites {
		c.marks++
		c.pending[s] = c.marks
	}
}

// bumpRedis writes new version tokens for sites in one round trip; when
// that works, the sites are no longer pending.
func (c *Cache) bumpRedis(ctx context.Context, sites []uint32) bool {
	// A site marked again while this bump is in flight may have committed
	// after Redis ran our SET: it stays pending.
	c.mu.Lock()
	seen := make([]uint64, len(sites))
	for i, s := range sites {
		seen[i] = c.pending[s]
	}
	c.mu.Unlock()
	_, err := c.rdb.Pipelined(ctx, func(p goredis.Pipeliner) error {
		for _, s := range sites {
			p.Set(ctx, c.versionKey(s), newToken(), c.versionTTL)
		}
		return nil
	})
	if err != nil {
		c.markPending(sites)
		c.fail(ctx, opBump, fmt.Errorf("redis: cache: bump data version of sites %v: %w", sites, err))
		return false
	}
	c.mu.Lock()
	for i, s := range sites {
		if c.pending[s] == seen[i] {
			delete(c.pending, s)
		}
	}
	c.mu.Unlock()
	return true
}

// Run retries pending bumps every second until ctx ends.
func (c *Cache) Run(ctx context.Context) {
	t := time.NewTicker(retryEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		c.mu.Lock()
		sites := make([]uint32, 0, len(c.pending))
		for s := range c.pending {
			sites = append(sites, s)
		}
		c.mu.Unlock()
		if len(sites) == 0 {
			continue
		}
		rctx, cancel := context.WithTimeout(ctx, bumpTimeout)
		if c.bumpRedis(rctx, sites) {
			c.log.InfoContext(ctx, "query cache: data versions that missed redis were bumped", "sites", len(sites))
		}
		cancel()
	}
}

// Get returns the value stored under key; ok is false on a miss and when
// Redis fails.
func (c *Cache) Get(ctx context.Context, key string) (value []byte, ok bool) {
	if c.down() {
		return nil, false
	}
	ctx, cancel := context.WithTimeout(ctx, opTimeout)
	defer cancel()
	v, err := c.rdb.Get(ctx, c.entryKey(key)).Bytes()
	if errors.Is(err, goredis.Nil) {
		return nil, false
	}
	if err != nil {
		c.fail(ctx, opGet, fmt.Errorf("redis: cache: get %s: %w", key, err))
		return nil, false
	}
	return v, true
}

// Set stores value under key for ttl; values over MaxEntryBytes are not kept.
func (c *Cache) Set(ctx context.Context, key string, value []byte, ttl time.Duration) {
	if len(value) > c.maxEntry || ttl <= 0 {
		return
	}
	if c.down() {
		return
	}
	ctx, cancel := context.WithTimeout(ctx, opTimeout)
	defer cancel()
	if err := c.rdb.Set(ctx, c.entryKey(key), value, ttl).Err(); err != nil {
		c.fail(ctx, opSet, fmt.Errorf("redis: cache: set %s: %w", key, err))
	}
}

func (c *Cache) down() bool { return time.Now().UnixNano() < c.downUntil.Load() }

// fail counts and logs (rate-limited) a failed Redis command, and skips
// Redis for a moment unless the caller merely gave up (its context was
// cancelled).
func (c *Cache) fail(ctx context.Context, op string, err error) {
	if c.metrics != nil {
		c.metrics.errors.WithLabelValues(op).Inc()
	}
	if !errors.Is(ctx.Err(), context.Canceled) {
		c.downUntil.Store(time.Now().Add(downFor).UnixNano())
	}
	if n, ok := c.failLog.Allow(time.Now()); ok {
		c.log.WarnContext(ctx, "query cache: redis failed; answering without the cache", "op", op, "err", err, "suppressed", n)
	}
}

// newToken is a fresh data version: 64 random bits.
func newToken() string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}
