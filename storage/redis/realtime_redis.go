package redis

import (
	"context"
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

// RedisRealtime keeps the realtime counters in Redis, shared by the
// cluster: every node reads the cluster's counters, and a commit announces
// its site on a pub/sub channel (and to this node's watchers directly), so
// live views on any node refresh. It also counts every batch in this
// node's memory (a Realtime), which answers while Redis fails. The node
// chooses it at start when --redis-url is set.
type RedisRealtime struct {
	mem      *Realtime // this node's counts: the fallback, and the watchers
	client   goredis.UniversalClient
	prefix   string
	channel  string
	log      *slog.Logger
	throttle logthrottle.Throttle
	// downUntil is when to try Redis again after an error, Unix nanoseconds.
	downUntil atomic.Int64
	// redisErrors counts failed Redis pipelines.
	redisErrors atomic.Uint64
	// redisCache holds minutes as last read from Redis.
	redisCache minuteCache
	// activeCache holds the latest active events read from Redis.
	activeCache activeCache
}

// activeCache keeps, per site, the latest active events (ActiveKey) read
// in one minute, 0 for a visitor without one, so a window read in the
// same minute asks Redis only of visitors it has not asked of. Exact
// within the minute: an active event counted while the window ends at
// that minute lands in the window, so a visitor whose latest active
// event changed has an active cell and is not looked up; an erasure
// drops the site's entries.
type activeCache struct {
	mu    sync.Mutex
	sites map[uint32]*activeMinute
}

type activeMinute struct {
	minute int64
	at     map[uint64]int64
}

// split returns what is cached of visitors in minute, into at, and the
// visitors it does not hold.
func (c *activeCache) split(site uint32, minute int64, visitors []uint64, at map[uint64]int64) (missing []uint64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	m := c.sites[site]
	if m == nil || m.minute != minute {
		return visitors
	}
	for _, v := range visitors {
		if t, ok := m.at[v]; !ok {
			missing = append(missing, v)
		} else if t > 0 {
			at[v] = t
		}
	}
	return missing
}

// put caches what Redis answered in minute of visitors (0: none).
func (c *activeCache) put(site uint32, minute int64, visitors []uint64, at []int64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.sites == nil {
		c.sites = map[uint32]*activeMinute{}
	}
	m := c.sites[site]
	if m == nil || m.minute != minute {
		m = &activeMinute{minute: minute, at: make(map[uint64]int64, len(visitors))}
		c.sites[site] = m
	}
	for i, v := range visitors {
		m.at[v] = at[i]
	}
}

// drop forgets a site's entries.
func (c *activeCache) drop(site uint32) {
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.sites, site)
}

// NewRedisRealtime makes the realtime store over client, which must not be
// nil; see RedisRealtime.
func NewRedisRealtime(client goredis.UniversalClient, o RealtimeOptions) *RedisRealtime {
	mem := NewRealtime(o)
	return &RedisRealtime{mem: mem, client: client, log: mem.log, prefix: o.Prefix, channel: o.Prefix + "realtime:changed",
		throttle: logthrottle.Throttle{Every: 10 * time.Second}}
}

// Record counts committed events (see Realtime.Record) in memory and in
// Redis, then tells the watchers here and on every node. Memory counts
// each event under its session's user as this node's memory knows the
// session; Redis as the cluster's device sessions in Redis know it, so a
// session's batches staged on different nodes count one user. Both add
// the batch's distinct cells (batchCounts), counted at one reading of the
// clock. It never fails: a Redis error is logged (throttled) and memory
// keeps the counts.
func (r *RedisRealtime) Record(ctx context.Context, events []protocol.Event) {
	t := r.mem.opts.Now()
	memUsers := r.mem.sessionUsers(events)
	b := batchPool.Get().(*batchCounts)
	defer batchPool.Put(b)
	b.count(events, memUsers, t)
	if len(b.sites) == 0 {
		return
	}
	r.mem.addCounts(b, events, memUsers, t)
	if r.redisUp() {
		users, err := r.sessionUsersRedis(ctx, events)
		if err == nil {
			if !slices.Equal(users, memUsers) {
				// Memory's sessions put an event under another user than
				// the cluster's in Redis (a node restarted, or a device's
				// batches were staged on several nodes): count again.
				b.count(events, users, t)
			}
			err = r.recordRedis(ctx, b, t)
		}
		if err != nil {
			r.redisFailed("realtime: record", err)
		}
	}
	r.mem.notifySites(b.sites)
}

// Window reads a site's last RealtimeWindow minutes from Redis, or from
// this node's memory while Redis fails.
func (r *RedisRealtime) Window(ctx context.Context, site uint32) (Window, error) {
	now := unixMinute(r.mem.opts.Now())
	if r.redisUp() {
		w, err := r.windowRedis(ctx, site, now)
		if err == nil {
			return w, nil
		}
		r.redisFailed("realtime: read", err)
	}
	return r.mem.windowMemory(site, now), nil
}

// Watch calls fn with a site's id whenever events of that site commit on
// any node (while Run runs). fn must not block.
func (r *RedisRealtime) Watch(fn func(site uint32)) { r.mem.Watch(fn) }

// DroppedCells is how many cells this node's memory did not keep (see
// Realtime.DroppedCells).
func (r *RedisRealtime) DroppedCells() uint64 { return r.mem.DroppedCells() }

// UsersKey and EventsKey are the Redis keys of a site's minute (DESIGN.md):
// EventsKey a hash of cells (msgpack) to event counts, UsersKey a
// HyperLogLog of the minute's visitors, a cheap cluster-wide count for
// operators (PFCOUNT). Reads count visitors exactly from the cells instead,
// so the WebSocket summary and every report agree with each other and with
// the memory fallback.
func (r *RedisRealtime) UsersKey(site uint32, minute int64) string {
	return r.prefix + "realtime:users:" + strconv.FormatUint(uint64(site), 10) + ":" + strconv.FormatInt(minute, 10)
}

// EventsKey: see UsersKey.
func (r *RedisRealtime) EventsKey(site uint32, minute int64) string {
	return r.prefix + "realtime:events:" + strconv.FormatUint(uint64(site), 10) + ":" + strconv.FormatInt(minute, 10)
}

// Channel is the pub/sub channel commits are announced on; a message is the
// site id in decimal.
func (r *RedisRealtime) Channel() string { return r.channel }

// ActiveKey is the Redis key of a site's users' latest active events: a
// sorted set of users (hex) scored by the Unix second of their latest
// active event counted (ZADD GT), trimmed on each write to activeKept and
// to the newest MaxCells × RealtimeWindow users, expiring activeKept
// after the last write. One key per site, written in the batch's
// pipeline and read when a window holds visitors without an active cell.
func (r *RedisRealtime) ActiveKey(site uint32) string {
	return r.prefix + "realtime:active:{" + strconv.FormatUint(uint64(site), 10) + "}"
}

func (r *RedisRealtime) recordRedis(ctx context.Context, b *batchCounts, t time.Time) error {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), redisTimeout)
	defer cancel()
	pipe := r.client.Pipeline()
	a := &b.redis
	a.build(b)
	for i, m := range b.minutes {
		ek, uk := r.EventsKey(m.site, m.minute), r.UsersKey(m.site, m.minute)
		am := a.minutes[i]
		for j := am.cells.from; j < am.cells.to; j++ {
			pipe.HIncrBy(ctx, ek, a.strs[j], a.counts[j])
		}
		pipe.HIncrBy(ctx, ek, versionField, 1)
		pipe.PFAdd(ctx, uk, a.args[am.visitors.from:am.visitors.to]...)
		pipe.Expire(ctx, ek, realtimeTTL)
		pipe.Expire(ctx, uk, realtimeTTL)
	}
	cutoff := t.Add(-activeKept).Unix()
	for _, sa := range b.active {
		key := r.ActiveKey(sa.site)
		members := make([]goredis.Z, 0, len(sa.users))
		for u, at := range sa.users {
			members = append(members, goredis.Z{Score: float64(at), Member: strconv.FormatUint(u, 16)})
		}
		pipe.ZAddGT(ctx, key, members...)
		pipe.ZRemRangeByScore(ctx, key, "-inf", "("+strconv.FormatInt(cutoff, 10))
		pipe.ZRemRangeByRank(ctx, key, 0, -int64(r.mem.opts.MaxCells*RealtimeWindow)-1)
		pipe.Expire(ctx, key, activeKept)
	}
	for _, s := range b.sites {
		pipe.Publish(ctx, r.channel, strconv.FormatUint(uint64(s), 10))
	}
	if _, err := pipe.Exec(ctx); err != nil {
		return fmt.Errorf("realtime: write %d minutes: %w", len(b.minutes), err)
	}
	return nil
}

func (r *RedisRealtime) windowRedis(ctx context.Context, site uint32, now int64) (Window, error) {
	ctx, cancel := context.WithTimeout(ctx, redisTimeout)
	defer cancel()
	// First the minutes' versions; then only the minutes whose cells are
	// not cached at that version.
	pipe := r.client.Pipeline()
	versions := make([]*goredis.StringCmd, RealtimeWindow)
	for i := range RealtimeWindow {
		versions[i] = pipe.HGet(ctx, r.EventsKey(site, now-int64(i)), versionField)
	}
	if _, err := pipe.Exec(ctx); err != nil && !errors.Is(err, goredis.Nil) {
		return Window{}, fmt.Errorf("realtime: read site %d versions: %w", site, err)
	}
	w := Window{Now: now}
	var stale []int64
	for i, v := range versions {
		m := now - int64(i)
		version, err := v.Int64()
		if errors.Is(err, goredis.Nil) {
			continue // no events in that minute
		}
		if err != nil {
			return Window{}, fmt.Errorf("realtime: version of %s: %w", r.EventsKey(site, m), err)
		}
		if cells, ok := r.redisCache.get(site, m, version); ok {
			w.Minutes = append(w.Minutes, Minute{Minute: m, Cells: cells})
		} else {
			stale = append(stale, m)
		}
	}
	if len(stale) > 0 {
		pipe = r.client.Pipeline()
		hashes := make([]*goredis.MapStringStringCmd, len(stale))
		for i, m := range stale {
			hashes[i] = pipe.HGetAll(ctx, r.EventsKey(site, m))
		}
		if _, err := pipe.Exec(ctx); err != nil {
			return Window{}, fmt.Errorf("realtime: read site %d: %w", site, err)
		}
		for i, h := range hashes {
			m, fields := stale[i], h.Val()
			cells, version, err := decodeCells(fields)
			if err != nil {
				return Window{}, fmt.Errorf("realtime: %s: %w", r.EventsKey(site, m), err)
			}
			if len(cells) == 0 {
				continue
			}
			// The version read with the cells, in the same command: a write
			// after it makes the next read fetch the minute again.
			r.redisCache.put(site, m, version, cells, now-RealtimeWindow+1)
			w.Minutes = append(w.Minutes, Minute{Minute: m, Cells: cells})
		}
	}
	if quiet := quietVisitors(w.Minutes); len(quiet) > 0 {
		w.ActiveAt = map[uint64]int64{}
		if missing := r.activeCache.split(site, now, quiet, w.ActiveAt); len(missing) > 0 {
			members := make([]string, len(missing))
			for i, v := range missing {
				members[i] = strconv.FormatUint(v, 16)
			}
			scores, err := r.client.ZMScore(ctx, r.ActiveKey(site), members...).Result()
			if err != nil {
				return Window{}, fmt.Errorf("realtime: read site %d's active users: %w", site, err)
			}
			if len(scores) != len(missing) {
				return Window{}, fmt.Errorf("realtime: read site %d's active users: %d answers for %d users", site, len(scores), len(missing))
			}
			at := make([]int64, len(scores))
			for i, f := range scores {
				at[i] = int64(f)
				if at[i] > 0 {
					w.ActiveAt[missing[i]] = at[i]
				}
			}
			r.activeCache.put(site, now, missing, at)
		}
	}
	return w, nil
}

// Run relays other nodes' commits from the Redis channel to the watchers
// until ctx ends; the client resubscribes by itself after a Redis outage.
func (r *RedisRealtime) Run(ctx context.Context) {
	ps := r.client.Subscribe(ctx, r.channel)
	defer ps.Close()
	msgs := ps.Channel()
	for {
		select {
		case <-ctx.Done():
			return
		case m, ok := <-msgs:
			if !ok {
				return
			}
			site, err := strconv.ParseUint(m.Payload, 10, 32)
			if err != nil {
				if held, ok := r.throttle.Allow(time.Now()); ok {
					r.log.Warn("realtime: ignoring a malformed message", "channel", r.channel, "suppressed", held)
				}
				continue
			}
			r.mem.notify(uint32(site))
		}
	}
}

func (r *RedisRealtime) redisUp() bool {
	return time.Now().UnixNano() >= r.downUntil.Load()
}

func (r *RedisRealtime) redisFailed(what string, err error) {
	r.redisErrors.Add(1)
	r.downUntil.Store(time.Now().Add(redisBackoff).UnixNano())
	if held, ok := r.throttle.Allow(time.Now()); ok {
		r.log.Warn(what+": redis failed; this node's memory serves realtime for now", "err", err, "retry_in", redisBackoff, "suppressed", held)
	}
}

// RedisErrors is how many realtime Redis writes and reads failed (memory
// answered instead).
func (r *RedisRealtime) RedisErrors() uint64 { return r.redisErrors.Load() }
