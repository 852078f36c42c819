package redis

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	goredis "github.com/redis/go-redis/v9"
	"github.com/vmihailenco/msgpack/v5"

	"github.com/avila-analytics/avila/internal/logthrottle"
	"github.com/avila-analytics/avila/protocol"
)

// RealtimeWindow is how many minutes realtime state covers, GA4's 30: the
// current minute and the 29 before it.
const RealtimeWindow = 30

const (
	// realtimeTTL is how long a realtime key lives after its last write:
	// longer than the window, so a minute's keys outlive every read of it.
	realtimeTTL = 35 * time.Minute
	// redisTimeout bounds one realtime pipeline; a slower Redis is
	// treated as down and memory serves instead.
	redisTimeout = time.Second
	// redisBackoff is how long Redis is left alone after an error, so an
	// outage costs a batch one timeout every few seconds, not every time.
	redisBackoff = 5 * time.Second
	// defaultMaxCells bounds one site's cells per minute in memory.
	defaultMaxCells = 100_000
)

// Cell is one realtime counter: the events of one visitor with one
// combination of the values realtime reports break down by, in one minute.
// Values are as the agent sent them (Country is an ISO 3166-1 code, Screen
// the page title or, without one, the path); "" is an absent value.
// Active marks the events that make their visitor an active user by GA4's
// rule (Active).
type Cell struct {
	_         struct{} `msgpack:",as_array"`
	EventName string
	Country   string
	City      string
	Device    string
	Screen    string
	Visitor   uint64
	Active    bool // last: cells written without it read as not active
}

// Active reports whether e makes its visitor an active user, as GA4
// defines one and as reports count activeUsers: the event belongs to an
// engaged session (seg=1), is a first visit, or carries engagement time.
func Active(e *protocol.Event) bool {
	return e.Flags&(protocol.FlagEngaged|protocol.FlagFirstVisit) != 0 || e.EngageMs > 0
}

// Minute is one minute's cells and their event counts.
type Minute struct {
	Minute int64 // Unix time in minutes
	Cells  map[Cell]int64
}

// Window is a site's realtime state: the minutes of the last RealtimeWindow
// that hold events, and the distinct active users over all of them. Its cells
// maps are shared with later reads: read them, never change them.
type Window struct {
	Now     int64 // the current Unix minute; a Minute is Now-Minute minutes ago
	Minutes []Minute
	Users   int64 // distinct active visitors over the window (Cell.Active), counted exactly from the cells
	Memory  bool  // answered from this node's memory (no Redis, or Redis failed)
}

// RealtimeOptions configure NewRealtime.
type RealtimeOptions struct {
	// Client holds the counters for the whole cluster; nil keeps them in
	// this node's memory only.
	Client goredis.UniversalClient
	// Prefix starts every key and the pub/sub channel.
	Prefix string
	Logger *slog.Logger     // nil: discard
	Now    func() time.Time // nil: time.Now
	// MaxCells bounds one site's cells per minute in memory; cells beyond
	// it are not counted there (Redis still counts them). 0: 100000.
	MaxCells int
}

// Realtime keeps the last 30 minutes of every site's events as counters,
// written when a batch commits: in Redis when there is a client (so every
// node reads the cluster's counters), and always in this node's memory, which
// answers when there is no Redis or Redis fails. A commit also announces the
// site on a pub/sub channel (and to this node's watchers directly), so live
// views on any node refresh.
type Realtime struct {
	opts     RealtimeOptions
	log      *slog.Logger
	channel  string
	throttle logthrottle.Throttle
	// downUntil is when to try Redis again after an error, Unix nanoseconds.
	downUntil atomic.Int64
	// redisErrors counts failed Redis pipelines; droppedCells the cells
	// memory did not keep because a minute held MaxCells.
	redisErrors, droppedCells atomic.Uint64

	mu    sync.Mutex
	sites map[uint32]*ring
	// redisCache and memCache hold minutes as last read from each backend.
	redisCache, memCache minuteCache

	watchMu  sync.RWMutex
	watchers []func(site uint32)
}

// ring holds a site's minutes, slot minute % RealtimeWindow.
type ring struct {
	slots [RealtimeWindow]slot
}

// slot is one minute in memory; version grows with every write to it.
type slot struct {
	Minute
	version int64
}

// minuteCache keeps the cells of a site's minutes as last read, with the
// version they were read at, so a window reads again only the minutes that
// changed since (usually the current one): old minutes cost a version check.
type minuteCache struct {
	mu    sync.Mutex
	sites map[uint32]map[int64]cachedMinute
}

type cachedMinute struct {
	version int64
	cells   map[Cell]int64 // read-only once cached
}

// get returns the cached cells of (site, minute) if they are at version.
func (c *minuteCache) get(site uint32, minute, version int64) (map[Cell]int64, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	m, ok := c.sites[site][minute]
	return m.cells, ok && m.version == version
}

// put caches cells and forgets the site's minutes before oldest.
func (c *minuteCache) put(site uint32, minute, version int64, cells map[Cell]int64, oldest int64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.sites == nil {
		c.sites = map[uint32]map[int64]cachedMinute{}
	}
	ms := c.sites[site]
	if ms == nil {
		ms = map[int64]cachedMinute{}
		c.sites[site] = ms
	}
	for m := range ms {
		if m < oldest {
			delete(ms, m)
		}
	}
	ms[minute] = cachedMinute{version: version, cells: cells}
}

// NewRealtime makes the realtime store; see Realtime.
func NewRealtime(o RealtimeOptions) *Realtime {
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.MaxCells <= 0 {
		o.MaxCells = defaultMaxCells
	}
	o.Client = orNil(o.Client)
	return &Realtime{opts: o, log: o.Logger, channel: o.Prefix + "realtime:changed",
		throttle: logthrottle.Throttle{Every: 10 * time.Second}, sites: map[uint32]*ring{}}
}

// UsersKey and EventsKey are the Redis keys of a site's minute (DESIGN.md):
// EventsKey a hash of cells (msgpack) to event counts, UsersKey a
// HyperLogLog of the minute's visitors, a cheap cluster-wide count for
// operators (PFCOUNT). Reads count visitors exactly from the cells instead,
// so the WebSocket summary and every report agree with each other and with
// the memory fallback.
func (r *Realtime) UsersKey(site uint32, minute int64) string {
	return r.opts.Prefix + "realtime:users:" + strconv.FormatUint(uint64(site), 10) + ":" + strconv.FormatInt(minute, 10)
}

// EventsKey: see UsersKey.
func (r *Realtime) EventsKey(site uint32, minute int64) string {
	return r.opts.Prefix + "realtime:events:" + strconv.FormatUint(uint64(site), 10) + ":" + strconv.FormatInt(minute, 10)
}

// Channel is the pub/sub channel commits are announced on; a message is the
// site id in decimal.
func (r *Realtime) Channel() string { return r.channel }

func unixMinute(t time.Time) int64 { return t.Unix() / 60 }

// versionField of an events hash counts the writes to it; cells are msgpack
// arrays (first byte 0x96), so it cannot collide with one.
const versionField = "v"

// siteMinute groups a batch's events.
type siteMinute struct {
	site   uint32
	minute int64
}

type minuteDelta struct {
	cells    map[Cell]int64
	visitors map[uint64]struct{}
}

// Record counts committed events. Events older than the window are left
// out; events stamped in the future count in the current minute. It never
// fails: a Redis error is logged (throttled) and memory keeps the counts.
func (r *Realtime) Record(ctx context.Context, events []protocol.Event) {
	now := unixMinute(r.opts.Now())
	deltas := map[siteMinute]*minuteDelta{}
	for i := range events {
		e := &events[i]
		m := min(e.TimeMicros/60_000_000, now)
		if e.TimeMicros < 0 || m <= now-RealtimeWindow {
			continue
		}
		k := siteMinute{e.Site, m}
		d := deltas[k]
		if d == nil {
			d = &minuteDelta{cells: map[Cell]int64{}, visitors: map[uint64]struct{}{}}
			deltas[k] = d
		}
		d.cells[cellOf(e)]++
		d.visitors[e.Visitor] = struct{}{}
	}
	if len(deltas) == 0 {
		return
	}
	r.recordMemory(deltas)
	if r.redisUp() {
		if err := r.recordRedis(ctx, deltas); err != nil {
			r.redisFailed("realtime: record", err)
		}
	}
	sites := map[uint32]bool{}
	for k := range deltas {
		if !sites[k.site] {
			sites[k.site] = true
			r.notify(k.site)
		}
	}
}

// cellOf is the cell an event counts in.
func cellOf(e *protocol.Event) Cell {
	screen := e.Title
	if screen == "" {
		screen, _, _ = strings.Cut(e.Path, "?")
	}
	return Cell{EventName: e.Name, Country: e.Country, City: e.City, Device: e.Device, Screen: screen, Visitor: e.Visitor, Active: Active(e)}
}

func (r *Realtime) recordMemory(deltas map[siteMinute]*minuteDelta) {
	r.mu.Lock()
	defer r.mu.Unlock()
	dropped := 0
	for k, d := range deltas {
		rg := r.sites[k.site]
		if rg == nil {
			rg = &ring{}
			r.sites[k.site] = rg
		}
		sl := &rg.slots[k.minute%RealtimeWindow]
		if sl.Minute.Minute != k.minute || sl.Cells == nil {
			// The version keeps growing across reuse of the slot, so a
			// cached copy of the minute it held never matches again.
			sl.Minute = Minute{Minute: k.minute, Cells: make(map[Cell]int64, len(d.cells))}
		}
		sl.version++
		for c, n := range d.cells {
			if _, ok := sl.Cells[c]; !ok && len(sl.Cells) >= r.opts.MaxCells {
				dropped++
				continue
			}
			sl.Cells[c] += n
		}
	}
	if dropped > 0 {
		r.droppedCells.Add(uint64(dropped))
		if held, ok := r.throttle.Allow(time.Now()); ok {
			r.log.Warn("realtime: a site's minute holds the most cells kept in memory; further ones are not counted here",
				"max_cells", r.opts.MaxCells, "dropped", dropped, "suppressed", held)
		}
	}
}

func (r *Realtime) recordRedis(ctx context.Context, deltas map[siteMinute]*minuteDelta) error {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), redisTimeout)
	defer cancel()
	pipe := r.opts.Client.Pipeline()
	sites := map[uint32]bool{}
	for k, d := range deltas {
		ek, uk := r.EventsKey(k.site, k.minute), r.UsersKey(k.site, k.minute)
		for c, n := range d.cells {
			field, err := msgpack.Marshal(&c)
			if err != nil {
				return fmt.Errorf("realtime: encode cell: %w", err)
			}
			pipe.HIncrBy(ctx, ek, string(field), n)
		}
		visitors := make([]any, 0, len(d.visitors))
		for v := range d.visitors {
			visitors = append(visitors, strconv.FormatUint(v, 16))
		}
		pipe.HIncrBy(ctx, ek, versionField, 1)
		pipe.PFAdd(ctx, uk, visitors...)
		pipe.Expire(ctx, ek, realtimeTTL)
		pipe.Expire(ctx, uk, realtimeTTL)
		sites[k.site] = true
	}
	for s := range sites {
		pipe.Publish(ctx, r.channel, strconv.FormatUint(uint64(s), 10))
	}
	if _, err := pipe.Exec(ctx); err != nil {
		return fmt.Errorf("realtime: write %d minutes: %w", len(deltas), err)
	}
	return nil
}

// Window reads a site's last RealtimeWindow minutes: from Redis when there
// is a client and it answers, else from this node's memory.
func (r *Realtime) Window(ctx context.Context, site uint32) (Window, error) {
	now := unixMinute(r.opts.Now())
	if r.redisUp() {
		w, err := r.windowRedis(ctx, site, now)
		if err == nil {
			return w, nil
		}
		r.redisFailed("realtime: read", err)
	}
	return r.windowMemory(site, now), nil
}

func (r *Realtime) windowRedis(ctx context.Context, site uint32, now int64) (Window, error) {
	ctx, cancel := context.WithTimeout(ctx, redisTimeout)
	defer cancel()
	// First the minutes' versions; then only the minutes whose cells are
	// not cached at that version.
	pipe := r.opts.Client.Pipeline()
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
		pipe = r.opts.Client.Pipeline()
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
	w.Users = distinctVisitors(w.Minutes)
	return w, nil
}

// decodeCells reads an events hash: its cells and its version.
func decodeCells(fields map[string]string) (map[Cell]int64, int64, error) {
	cells := make(map[Cell]int64, len(fields))
	var version int64
	for f, v := range fields {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			return nil, 0, fmt.Errorf("count of a cell: %w", err)
		}
		if f == versionField {
			version = n
			continue
		}
		c, err := decodeCell([]byte(f))
		if err != nil {
			return nil, 0, err
		}
		cells[c] += n
	}
	return cells, version, nil
}

// cellV1 is a Cell as written before cells carried Active; such cells
// live in Redis up to realtimeTTL after an upgrade.
type cellV1 struct {
	_         struct{} `msgpack:",as_array"`
	EventName string
	Country   string
	City      string
	Device    string
	Screen    string
	Visitor   uint64
}

// decodeCell reads a cell field of an events hash, of either layout.
func decodeCell(b []byte) (Cell, error) {
	var c Cell
	err := msgpack.Unmarshal(b, &c)
	if err == nil {
		return c, nil
	}
	var old cellV1
	if msgpack.Unmarshal(b, &old) != nil {
		return Cell{}, fmt.Errorf("decode cell: %w", err)
	}
	return Cell{EventName: old.EventName, Country: old.Country, City: old.City, Device: old.Device, Screen: old.Screen, Visitor: old.Visitor}, nil
}

// distinctVisitors counts the active visitors of minutes' cells exactly,
// so the window's total agrees with every report computed from the same
// cells.
func distinctVisitors(minutes []Minute) int64 {
	seen := map[uint64]struct{}{}
	for _, m := range minutes {
		for c := range m.Cells {
			if c.Active {
				seen[c.Visitor] = struct{}{}
			}
		}
	}
	return int64(len(seen))
}

func (r *Realtime) windowMemory(site uint32, now int64) Window {
	w := Window{Now: now, Memory: true}
	r.mu.Lock()
	defer r.mu.Unlock()
	rg := r.sites[site]
	if rg == nil {
		return w
	}
	for i := range RealtimeWindow {
		m := now - int64(i)
		sl := &rg.slots[m%RealtimeWindow]
		if sl.Minute.Minute != m || len(sl.Cells) == 0 {
			continue
		}
		// Readers get a copy, made again only after the minute changed.
		cells, ok := r.memCache.get(site, m, sl.version)
		if !ok {
			cells = maps.Clone(sl.Cells)
			r.memCache.put(site, m, sl.version, cells, now-RealtimeWindow+1)
		}
		w.Minutes = append(w.Minutes, Minute{Minute: m, Cells: cells})
	}
	w.Users = distinctVisitors(w.Minutes)
	return w
}

// Watch calls fn with a site's id whenever events of that site commit on this
// node, or, with Redis, on any node (while Run runs). fn must not block.
func (r *Realtime) Watch(fn func(site uint32)) {
	r.watchMu.Lock()
	defer r.watchMu.Unlock()
	r.watchers = append(r.watchers, fn)
}

func (r *Realtime) notify(site uint32) {
	r.watchMu.RLock()
	defer r.watchMu.RUnlock()
	for _, fn := range r.watchers {
		fn(site)
	}
}

// Run relays other nodes' commits from the Redis channel to the watchers
// until ctx ends; the client resubscribes by itself after a Redis outage.
// Without Redis it just waits for ctx.
func (r *Realtime) Run(ctx context.Context) {
	if r.opts.Client == nil {
		<-ctx.Done()
		return
	}
	ps := r.opts.Client.Subscribe(ctx, r.channel)
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
			r.notify(uint32(site))
		}
	}
}

func (r *Realtime) redisUp() bool {
	return r.opts.Client != nil && time.Now().UnixNano() >= r.downUntil.Load()
}

func (r *Realtime) redisFailed(what string, err error) {
	r.redisErrors.Add(1)
	r.downUntil.Store(time.Now().Add(redisBackoff).UnixNano())
	if held, ok := r.throttle.Allow(time.Now()); ok {
		r.log.Warn(what+": redis failed; this node's memory serves realtime for now", "err", err, "retry_in", redisBackoff, "suppressed", held)
	}
}

// RedisErrors is how many realtime Redis writes and reads failed (memory
// answered instead).
func (r *Realtime) RedisErrors() uint64 { return r.redisErrors.Load() }

// DroppedCells is how many cells memory did not keep because a site's minute
// held MaxCells already.
func (r *Realtime) DroppedCells() uint64 { return r.droppedCells.Load() }
