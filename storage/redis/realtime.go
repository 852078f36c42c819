package redis

import (
	"context"
	"fmt"
	"iter"
	"log/slog"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

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
	// DefaultMaxCells bounds one site's cells per minute in memory
	// (RealtimeOptions.MaxCells).
	DefaultMaxCells = 100_000
	// activeKept is how long the store keeps a user's latest active
	// event: longer than a local day (25 hours at most, when a daylight
	// saving change repeats one), so it still tells whether the user was
	// active on the window's day.
	activeKept = 26 * time.Hour
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
// that hold events, and what the store knows of its visitors' activity
// earlier in the day. Its cells maps are shared with later reads: read
// them, never change them.
type Window struct {
	Now     int64 // the current Unix minute; a Minute is Now-Minute minutes ago
	Minutes []Minute
	// ActiveAt holds, for the window's visitors none of whose cells is
	// active (and maybe others), the Unix second of the latest active
	// event (Active) the store counted of them, up to activeKept ago;
	// visitors it counted none of are absent.
	ActiveAt map[uint64]int64
	Memory   bool // answered from this node's memory (no Redis, or Redis failed)
}

// ActiveVisitors are the window's active users by GA4's rule, which is
// per user and calendar day: the visitors with an active cell in the
// window, and those whose latest active event (ActiveAt) is on the
// window's day in loc, the property's time zone. Counted exactly, so
// every report of one window agrees with the others.
func (w Window) ActiveVisitors(loc *time.Location) map[uint64]bool {
	active := map[uint64]bool{}
	for _, m := range w.Minutes {
		for c := range m.Cells {
			if c.Active {
				active[c.Visitor] = true
			}
		}
	}
	if len(w.ActiveAt) > 0 {
		today := localMidnight(time.Unix(w.Now*60, 0), loc).Unix()
		for v, at := range w.ActiveAt {
			if at >= today {
				active[v] = true
			}
		}
	}
	return active
}

// ActiveUsers is how many ActiveVisitors the window has.
func (w Window) ActiveUsers(loc *time.Location) int64 { return int64(len(w.ActiveVisitors(loc))) }

// localMidnight is the start of t's day in loc.
func localMidnight(t time.Time, loc *time.Location) time.Time {
	y, m, d := t.In(loc).Date()
	return time.Date(y, m, d, 0, 0, 0, 0, loc)
}

// quietVisitors are the visitors of minutes none of whose cells is active.
func quietVisitors(minutes []Minute) []uint64 {
	quiet := map[uint64]bool{}
	for _, m := range minutes {
		for c := range m.Cells {
			if c.Active {
				quiet[c.Visitor] = false
			} else if _, seen := quiet[c.Visitor]; !seen {
				quiet[c.Visitor] = true
			}
		}
	}
	out := make([]uint64, 0, len(quiet))
	for v, q := range quiet {
		if q {
			out = append(out, v)
		}
	}
	return out
}

// RealtimeOptions configure NewRealtime and NewRedisRealtime.
type RealtimeOptions struct {
	// Prefix starts every Redis key and the pub/sub channel.
	Prefix string
	Logger *slog.Logger     // nil: discard
	Now    func() time.Time // nil: time.Now
	// MaxCells bounds one site's cells per minute in memory; cells beyond
	// it are not counted there (Redis still counts them). A cell is an
	// event name, country, city, device and screen of one user, about
	// 165 bytes held, so a site whose minutes all fill holds MaxCells ×
	// RealtimeWindow cells: about 500 MB at the default. 0:
	// DefaultMaxCells.
	MaxCells int
}

// Realtime keeps the last 30 minutes of every site's events as counters
// in this node's memory, written when a batch commits, and tells this
// node's watchers. It is the realtime store of a node without Redis, and
// the fallback inside RedisRealtime, which shares the counters with the
// cluster. The node chooses one of the two at start. Its state lives in
// this process: a restart loses the window, the devices' sessions and the
// users' latest active events (those active earlier in the day and quiet
// since then count as not active until their next active event).
type Realtime struct {
	opts     RealtimeOptions
	log      *slog.Logger
	throttle logthrottle.Throttle
	// droppedCells counts the cells memory did not keep because a minute
	// held MaxCells.
	droppedCells atomic.Uint64

	mu    sync.Mutex
	sites map[uint32]*ring
	// hasher hashes the cells of the sites' minutes.
	hasher *cellHasher
	// memCache holds minutes as last read.
	memCache minuteCache

	watchMu  sync.RWMutex
	watchers []func(site uint32)

	// devMu guards the devices' sessions (realtime_users.go): by site and
	// device key, and the minute each site's were last pruned.
	devMu     sync.Mutex
	devices   map[uint32]map[uint64]deviceSession
	devPruned map[uint32]int64
}

// ring holds a site's minutes, slot minute % RealtimeWindow, and its
// users' latest active events.
type ring struct {
	slots [RealtimeWindow]slot
	// active maps a user (a cell's Visitor) to the Unix second of its
	// latest active event counted, for activeKept; pruned once a minute
	// (at the minute activePruned), bounded like the devices' sessions.
	active       map[uint64]int64
	activePruned int64
}

// slot is one minute in memory; version grows with every write to it.
type slot struct {
	minute int64 // Unix time in minutes
	cells  cellTable
	// version grows with every write to the slot.
	version int64
	// full, once the minute holds MaxCells cells, filters the cells of
	// events it does not hold (count); nil before, and after a change
	// that may add cells (a new minute, Forget).
	full *cellFilter
}

// count adds n events to c, if sl holds it or has room for it (fewer than
// max cells); false: it has not, and n are dropped. The caller holds mu.
func (sl *slot) count(c *Cell, n int64, max int) bool {
	if sl.cells.len() < max {
		sl.cells.add(c, n)
		return true
	}
	if sl.full == nil {
		sl.full = newCellFilter(sl.cells.entries)
	}
	if !sl.full.mayHold(c) {
		return false
	}
	tag := sl.cells.hash(c)
	i := sl.cells.find(c, tag)
	if i < 0 {
		return false
	}
	sl.cells.count(i, n)
	return true
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

// NewRealtime makes the realtime store in memory; see Realtime.
func NewRealtime(o RealtimeOptions) *Realtime {
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.MaxCells <= 0 {
		o.MaxCells = DefaultMaxCells
	}
	return &Realtime{opts: o, log: o.Logger,
		throttle: logthrottle.Throttle{Every: 10 * time.Second}, sites: map[uint32]*ring{}, hasher: newCellHasher()}
}

func unixMinute(t time.Time) int64 { return t.Unix() / 60 }

// versionField of an events hash counts the writes to it; cells are msgpack
// maps (first byte 0x87, appendCell), so it cannot collide with one.
const versionField = "v"

// siteMinute groups a batch's events.
type siteMinute struct {
	site   uint32
	minute int64
}

// Record counts committed events in memory and tells the watchers, each
// event under its session's user (sessionUsers). Events older than the
// window are left out; events stamped in the future count in the current
// minute.
func (r *Realtime) Record(_ context.Context, events []protocol.Event) {
	r.notifySites(r.recordMemory(events, r.sessionUsers(events)))
}

// windowFrom is the first microsecond of the window ending at minute
// now: an event counts in it (minuteOf) when its TimeMicros is at least
// that.
func windowFrom(now int64) int64 {
	return max(0, (now-RealtimeWindow+1)*60_000_000)
}

// minuteOf is the minute an event counts in when the window ends at minute
// now; false: it is left out (older than the window).
func minuteOf(e *protocol.Event, now int64) (int64, bool) {
	m := min(e.TimeMicros/60_000_000, now)
	return m, e.TimeMicros >= 0 && m > now-RealtimeWindow
}

// windowed yields the index of each event in the window ending at minute
// now, with its site and the minute it counts in.
func windowed(events []protocol.Event, now int64) iter.Seq2[int, siteMinute] {
	return func(yield func(int, siteMinute) bool) {
		for i := range events {
			if m, ok := minuteOf(&events[i], now); ok && !yield(i, siteMinute{events[i].Site, m}) {
				return
			}
		}
	}
}

// notifySites tells the watchers of each site.
func (r *Realtime) notifySites(sites []uint32) {
	for _, s := range sites {
		r.notify(s)
	}
}

// cellOf is the cell an event of user counts in.
func cellOf(e *protocol.Event, user uint64) Cell {
	screen := e.Title
	if screen == "" {
		screen, _, _ = strings.Cut(e.Path, "?")
	}
	return Cell{EventName: e.Name, Country: e.Country, City: e.City, Device: e.Device, Screen: screen, Visitor: user, Active: Active(e)}
}

// recordMemory counts events in their minutes' cells, event i under
// users[i], straight into the slots (one map write per event), and
// returns the sites it counted events of, once each.
func (r *Realtime) recordMemory(events []protocol.Event, users []uint64) (sites []uint32) {
	t := r.opts.Now()
	now, nowSec := unixMinute(t), t.Unix()
	dropped := 0
	r.mu.Lock()
	var last siteMinute
	var sl *slot  // last's: a batch's events mostly share their site and minute
	var rg *ring  // last's site's
	var act actor // the active user of the events before, not marked yet
	var c Cell
	for i := range events {
		e := &events[i]
		m, ok := minuteOf(e, now)
		if !ok {
			continue
		}
		if k := (siteMinute{e.Site, m}); sl == nil || k != last {
			last, sl = k, r.slot(k, len(events)-i)
			rg = r.sites[k.site]
			if !slices.Contains(sites, k.site) {
				sites = append(sites, k.site)
			}
		}
		// c = cellOf(e, users[i]) written out, field by field, into one
		// cell: its call and a literal (built aside, then copied) cost as
		// much as the copy, for every event counted.
		c.EventName, c.Country, c.City, c.Device = e.Name, e.Country, e.City, e.Device
		c.Screen, c.Visitor, c.Active = e.Title, users[i], Active(e)
		if c.Screen == "" {
			c.Screen, _, _ = strings.Cut(e.Path, "?")
		}
		if c.Active {
			// A user's events follow each other: they are marked once.
			at := min(e.TimeMicros/1_000_000, nowSec)
			if act.rg == rg && act.user == c.Visitor {
				act.at = max(act.at, at)
			} else {
				r.markActor(act, now)
				act = actor{rg: rg, user: c.Visitor, at: at}
			}
		}
		if sl.cells.len() < r.opts.MaxCells {
			sl.cells.add(&c, 1) // sl.count's first case, without its call
		} else if !sl.count(&c, 1, r.opts.MaxCells) {
			dropped++
		}
	}
	r.markActor(act, now)
	r.mu.Unlock()
	r.countDropped(int64(dropped))
	return sites
}

// actor is a user of a site's ring with an active event, at the Unix
// second of the latest.
type actor struct {
	rg   *ring // nil: none
	user uint64
	at   int64
}

// markActor marks a as active in its ring (markActive) in minute now.
// Marking a user's active events one after another or once, at the
// latest, leaves the same ring: the first marks the user or finds no
// room, the rest keep the latest. The caller holds mu.
func (r *Realtime) markActor(a actor, now int64) {
	if a.rg != nil {
		r.pruneActive(a.rg, now)
		r.markActive(a.rg, a.user, a.at)
	}
}

// countDropped counts the events of cells memory did not keep because
// their minute held MaxCells, and says so (throttled).
func (r *Realtime) countDropped(dropped int64) {
	if dropped == 0 {
		return
	}
	r.droppedCells.Add(uint64(dropped))
	if held, ok := r.throttle.Allow(time.Now()); ok {
		r.log.Warn("realtime: a site's minute holds the most cells kept in memory; further ones are not counted here",
			"max_cells", r.opts.MaxCells, "dropped", dropped, "suppressed", held)
	}
}

// slot is the slot of k, emptied first when it held an older minute (room
// made for size cells, or as many as the minute before holds), its
// version moved on: it is about to be written. The caller holds mu.
func (r *Realtime) slot(k siteMinute, size int) *slot {
	rg := r.sites[k.site]
	if rg == nil {
		rg = &ring{}
		r.sites[k.site] = rg
	}
	sl := &rg.slots[k.minute%RealtimeWindow]
	if sl.minute != k.minute || sl.cells.index == nil {
		// Room for as many cells as the minute before held, too: a
		// site's minutes fill alike, and a table that grows places every
		// cell it holds again.
		if prev := &rg.slots[(k.minute-1)%RealtimeWindow]; prev.minute == k.minute-1 {
			size = max(size, prev.cells.len())
		}
		// The version keeps growing across reuse of the slot, so a
		// cached copy of the minute it held never matches again.
		sl.minute = k.minute
		sl.cells.reset(r.hasher, min(size, r.opts.MaxCells))
		sl.full = nil
	}
	sl.version++
	return sl
}

// pruneActive drops the users of rg whose latest active event is older
// than activeKept, once a minute (at minute now). The caller holds mu.
func (r *Realtime) pruneActive(rg *ring, now int64) {
	if rg.activePruned == now {
		return
	}
	rg.activePruned = now
	cutoff := now*60 - int64(activeKept.Seconds())
	for u, t := range rg.active {
		if t < cutoff {
			delete(rg.active, u)
		}
	}
}

// markActive records in rg, a site's ring, that user was active at second
// at, keeping the latest; a site keeps at most MaxCells × RealtimeWindow
// users (beyond it, new ones are not marked: they count as active by their
// active cells in the window only). The caller holds mu and ran
// pruneActive in this minute.
func (r *Realtime) markActive(rg *ring, user uint64, at int64) {
	if rg.active == nil {
		rg.active = map[uint64]int64{}
	}
	if prev, ok := rg.active[user]; ok {
		rg.active[user] = max(prev, at)
	} else if len(rg.active) < r.opts.MaxCells*RealtimeWindow {
		rg.active[user] = at
	}
}

// Window reads a site's last RealtimeWindow minutes from memory.
func (r *Realtime) Window(_ context.Context, site uint32) (Window, error) {
	return r.windowMemory(site, unixMinute(r.opts.Now())), nil
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
		if sl.minute != m || sl.cells.len() == 0 {
			continue
		}
		// Readers get a map of the cells, made again only after the
		// minute changed.
		cells, ok := r.memCache.get(site, m, sl.version)
		if !ok {
			cells = sl.cells.cells()
			r.memCache.put(site, m, sl.version, cells, now-RealtimeWindow+1)
		}
		w.Minutes = append(w.Minutes, Minute{Minute: m, Cells: cells})
	}
	if len(rg.active) > 0 {
		// A map lookup per cell not active: no set of the quiet visitors
		// to build first.
		for _, m := range w.Minutes {
			for c := range m.Cells {
				if c.Active {
					continue
				}
				if at, ok := rg.active[c.Visitor]; ok {
					if w.ActiveAt == nil {
						w.ActiveAt = map[uint64]int64{}
					}
					w.ActiveAt[c.Visitor] = at
				}
			}
		}
	}
	return w
}

// Watch calls fn with a site's id whenever events of that site commit on
// this node. fn must not block.
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

// Run has nothing to relay in memory: it waits for ctx.
func (r *Realtime) Run(ctx context.Context) { <-ctx.Done() }

// RedisErrors is 0: memory has no Redis to fail.
func (r *Realtime) RedisErrors() uint64 { return 0 }

// DroppedCells is how many cells memory did not keep because a site's minute
// held MaxCells already.
func (r *Realtime) DroppedCells() uint64 { return r.droppedCells.Load() }
