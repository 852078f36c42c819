package redis

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"

	goredis "github.com/redis/go-redis/v9"

	"github.com/avila-analytics/avila/protocol"
)

// Realtime counts each event under its session's user, as the reports
// do (aggregator/sessions: a session belongs to a device, and each of its
// events is stored under the visitor key its first event carried), so a
// login in the middle of a session, a logout, or a Measurement Protocol
// event with the browser's client_id joining a session started logged in
// make one user, not two. At staging time the session is not assigned
// yet; realtime keeps, per device, the session it saw last (its GA4
// session id, the visitor it began under, its latest event) and restates
// the assignment's rule for the event at hand:
//   - an event with the device's current session id, or without a session
//     id within sessionGap of the session's latest event, joins it and
//     counts under its visitor;
//   - an event of an earlier session id (a late event) counts under that
//     session's visitor when the device remembers it (the sessions before
//     the current one, up to maxPastSessions), else under its own visitor,
//     and the device remembers it among its earlier sessions; neither
//     changes the current session;
//   - any other event begins the device's session under its own visitor.
//
// Several sessions of one device fall in the window when the sessions
// carry their own ids (Measurement Protocol) or the property's session
// timeout is shorter than 30 minutes (GA4 lets it be shortened to 5).
// Only persistent visitors (protocol.FlagPersistent) have devices whose
// events carry different keys; a daily cookieless id is its own device
// and user. What realtime cannot know: a session that began before the
// store saw it (a node's memory after a restart; more than realtimeTTL
// without events), or a late event of a session older than the
// sessions the device remembers, counts under the first key realtime
// sees.

// sessionGap is the inactivity after which an event without a session id
// begins a new session (aggregator/sessions.Timeout), in seconds.
const sessionGap = 30 * 60

// maxPastSessions bounds the sessions a device remembers before its
// current one: with GA4's shortest session timeout (5 minutes) a device's
// sessions in the 30-minute window are at most 6 before the current one.
const maxPastSessions = 6

// pastSession is a session of a device before its current one.
type pastSession struct {
	sid     int64  // GA4 session id; 0: an empty slot
	visitor uint64 // its user
}

// deviceSession is the session of a device realtime saw last, and the
// ones before it (for late events).
type deviceSession struct {
	sid     int64  // GA4 session id; 0: inferred (events without one)
	visitor uint64 // the key its first event carried: its user
	last    int64  // Unix seconds of its latest event
	seen    int64  // Unix minute of the last write (memory expiry)
	// The device's sessions before this one that had GA4 session ids,
	// the highest id first.
	past [maxPastSessions]pastSession
}

// pastUser is the user of the earlier session sid, if the device
// remembers it.
func (d *deviceSession) pastUser(sid int64) (uint64, bool) {
	for _, p := range d.past {
		if p.sid == sid {
			return p.visitor, true
		}
	}
	return 0, false
}

// remember adds an earlier session, in the order of ids, the lowest
// dropped beyond maxPastSessions; false: it is older than all that fit.
func (d *deviceSession) remember(sid int64, visitor uint64) bool {
	i := 0
	for i < maxPastSessions && d.past[i].sid != 0 && d.past[i].sid > sid {
		i++
	}
	if i == maxPastSessions {
		return false
	}
	copy(d.past[i+1:], d.past[i:maxPastSessions-1])
	d.past[i] = pastSession{sid: sid, visitor: visitor}
	return true
}

// probe is an event whose user depends on its device's session.
type probe struct {
	i      int // index in the events
	device uint64
	sid    int64
	at     int64 // Unix seconds
}

// deviceOf is the key of the device an event comes from: the client key
// beside a user_id's, else the visitor (aggregator/sessions.Device).
func deviceOf(e *protocol.Event) uint64 {
	if e.Client != 0 {
		return e.Client
	}
	return e.Visitor
}

// probes lists the events of events in the window whose user realtime
// looks up, in the events' order; users starts as each event's own
// visitor. A device's probes are taken in time order (a session's first
// event comes first): sortByTime or sortByDevice puts them so.
func probes(events []protocol.Event, now int64) (users []uint64, ps []probe) {
	users = make([]uint64, len(events))
	from := windowFrom(now)
	for i := range events {
		e := &events[i]
		users[i] = e.Visitor
		if !probed(e, from) {
			continue
		}
		ps = append(ps, probe{i: i, device: deviceOf(e), sid: e.SessionID, at: e.TimeMicros / 1_000_000})
	}
	return users, ps
}

// sortByTime orders probes by time, ties in the events' order, which puts
// each device's in the order sortByDevice does; a batch's events usually
// come in time order already, and then nothing moves.
func sortByTime(ps []probe) {
	byTime := func(a, b probe) int { return cmp.Compare(a.at, b.at) }
	if !slices.IsSortedFunc(ps, byTime) {
		slices.SortStableFunc(ps, byTime)
	}
}

// sortByDevice orders probes by site, device and time, ties in the
// events' order: a site's and a device's probes follow each other.
func sortByDevice(events []protocol.Event, ps []probe) {
	slices.SortStableFunc(ps, func(a, b probe) int {
		return cmp.Or(cmp.Compare(events[a.i].Site, events[b.i].Site), cmp.Compare(a.device, b.device), cmp.Compare(a.at, b.at))
	})
}

// probed tells whether realtime looks up the user of e: an event of a
// persistent visitor in the window that begins at from (windowFrom;
// Record leaves the others out).
func probed(e *protocol.Event, from int64) bool {
	return e.Flags&protocol.FlagPersistent != 0 && e.TimeMicros >= from
}

// continuedBy tells whether an event of session id sid at time at (Unix
// seconds) continues d: join's first case.
func (d *deviceSession) continuedBy(sid, at int64) bool {
	return (sid == 0 && at <= d.last+sessionGap) || (sid != 0 && sid == d.sid)
}

// join applies the rule above: the user of an event (sid, visitor, at)
// of a device whose current session is *d (ok: there is one), and
// whether the device's session after it, left in *d, is to be written.
func join(d *deviceSession, ok bool, sid int64, visitor uint64, at int64) (user uint64, write bool) {
	switch {
	case ok && d.continuedBy(sid, at):
		d.last = max(d.last, at)
		return d.visitor, true
	case ok && sid != 0 && d.sid != 0 && sid < d.sid:
		if u, found := d.pastUser(sid); found {
			return u, false
		}
		return visitor, d.remember(sid, visitor)
	default:
		next := deviceSession{sid: sid, visitor: visitor, last: at}
		if ok && sid != 0 && d.sid != 0 {
			next.past = d.past
			next.remember(d.sid, d.visitor)
		}
		*d = next
		return visitor, true
	}
}

// sessionUsers is the user each event counts under, from this node's
// memory of devices' sessions, which it updates. A batch's events mostly
// come in time order, each request's events of one device together: then
// they are taken in the events' order with no list of probes to sort, and
// a device's session is read from its site's map once per run of its
// events and written once at the run's end.
func (r *Realtime) sessionUsers(events []protocol.Event) []uint64 {
	now := unixMinute(r.opts.Now())
	from := windowFrom(now)
	users := make([]uint64, len(events))
	some, sorted := false, true
	var last int64
	for i := range events {
		e := &events[i]
		users[i] = e.Visitor
		if !probed(e, from) {
			continue
		}
		if at := e.TimeMicros / 1_000_000; !some || at >= last {
			some, last = true, at
		} else {
			sorted = false
		}
	}
	if !some {
		return users
	}
	r.devMu.Lock()
	defer r.devMu.Unlock()
	j := deviceJoiner{r: r, now: now, limit: r.opts.MaxCells * RealtimeWindow}
	if sorted {
		for i := range events {
			e := &events[i]
			if !probed(e, from) {
				continue
			}
			device, at := deviceOf(e), e.TimeMicros/1_000_000
			if j.continues(e.Site, device, e.SessionID, at) {
				// join's first case, for the device held.
				j.cur.last = max(j.cur.last, at)
				j.cur.seen, j.dirty = j.now, true
				users[i] = j.cur.visitor
				continue
			}
			users[i] = j.join(e, device, e.SessionID, at)
		}
	} else {
		_, ps := probes(events, now)
		sortByTime(ps)
		for _, p := range ps {
			users[p.i] = j.join(&events[p.i], p.device, p.sid, p.at)
		}
	}
	j.flush()
	return users
}

// deviceJoiner joins a batch's probes to their devices' sessions (join)
// in the order they are taken, holding the session of the device taken
// last: its map write waits until another device's probe comes. The
// caller holds devMu.
type deviceJoiner struct {
	r     *Realtime
	now   int64 // Unix minute
	limit int   // devices a site keeps
	devs  map[uint64]deviceSession
	site  uint32
	// The device taken last (held), its session (ok: it has one, stored
	// or to be), and whether that is to be written.
	held   bool
	device uint64
	cur    deviceSession
	ok     bool
	dirty  bool
}

// join is the user of e, whose device is device, session id sid and time
// at (Unix seconds).
func (j *deviceJoiner) join(e *protocol.Event, device uint64, sid, at int64) uint64 {
	if !j.held || device != j.device || e.Site != j.site {
		j.flush()
		if j.devs == nil || e.Site != j.site {
			if j.r.devices == nil {
				j.r.devices = map[uint32]map[uint64]deviceSession{}
			}
			j.site, j.devs = e.Site, j.r.siteDevices(e.Site, j.now)
		}
		j.held, j.device = true, device
		j.cur, j.ok = j.devs[device]
	}
	user, write := join(&j.cur, j.ok, sid, e.Visitor, at)
	// Beyond the bound, new devices count under their own keys (a
	// session j holds without ok is not read: join begins another).
	if write && (j.ok || len(j.devs) < j.limit) {
		j.cur.seen = j.now
		j.ok, j.dirty = true, true
	}
	return user
}

// continues reports whether an event of site, device, session id sid
// and time at joins the session of the device held, which it has
// (join's first case).
func (j *deviceJoiner) continues(site uint32, device uint64, sid, at int64) bool {
	return j.held && j.ok && device == j.device && site == j.site && j.cur.continuedBy(sid, at)
}

// flush writes the session of the device taken last, if it changed.
func (j *deviceJoiner) flush() {
	if j.dirty {
		j.devs[j.device] = j.cur
	}
	j.held, j.dirty = false, false
}

// siteDevices is site's device sessions, without those not written for
// realtimeTTL (checked once a minute). The caller holds devMu.
func (r *Realtime) siteDevices(site uint32, now int64) map[uint64]deviceSession {
	devs := r.devices[site]
	if devs == nil {
		devs = map[uint64]deviceSession{}
		r.devices[site] = devs
	}
	if r.devPruned == nil {
		r.devPruned = map[uint32]int64{}
	}
	if r.devPruned[site] != now {
		r.devPruned[site] = now
		ttl := int64(realtimeTTL.Minutes())
		for d, s := range devs {
			if s.seen <= now-ttl {
				delete(devs, d)
			}
		}
	}
	return devs
}

// forgetDevices drops the device sessions of gone keys: a device that is
// one, or a session that began under one (its stored session is erased).
func (r *Realtime) forgetDevices(site uint32, gone map[uint64]bool) {
	r.devMu.Lock()
	defer r.devMu.Unlock()
	for d, s := range r.devices[site] {
		if gone[d] || gone[s.visitor] || slices.ContainsFunc(s.past[:], func(p pastSession) bool { return p.sid != 0 && gone[p.visitor] }) {
			delete(r.devices[site], d)
		}
	}
}

// DeviceKey is the Redis key of a device's session: its GA4 session id,
// the visitor it began under, its latest event in Unix seconds, then the
// id and visitor of each earlier session it remembers, the highest id
// first ("sid visitor last [psid pvisitor]...", visitors in hex; a pair
// "0 0" is no session, as keys written before hold). A site's device keys
// share a hash tag, so one script reads and writes a batch's devices on
// any topology.
func (r *RedisRealtime) DeviceKey(site uint32, device uint64) string {
	return r.prefix + "realtime:device:{" + strconv.FormatUint(uint64(site), 10) + "}:" + strconv.FormatUint(device, 16)
}

// joinScript is join over Redis, atomic across the nodes that stage a
// site's batches. KEYS: the devices; ARGV: the TTL in seconds, the
// session gap in seconds, maxPastSessions, then per probe its device's
// index in KEYS (from 1), session id, visitor (hex) and Unix second, in
// the order of probes. It returns each probe's user (hex). A device's
// session is read once per call, and written once if it changed (its TTL
// runs from its latest event's write).
var joinScript = goredis.NewScript(`
local ttl, gap, maxPast = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3])
local state, dirty, out = {}, {}, {}
-- remember puts an earlier session among cur's, highest id first, at
-- most maxPast; false when it is older than all that fit.
local function remember(cur, sid, v)
  local past, pos = cur.past, #cur.past + 1
  for j = 1, #past do
    if tonumber(sid) > tonumber(past[j][1]) then
      pos = j
      break
    end
  end
  if pos > maxPast then return false end
  table.insert(past, pos, {sid, v})
  if #past > maxPast then table.remove(past) end
  return true
end
for i = 4, #ARGV, 4 do
  local k = KEYS[tonumber(ARGV[i])]
  local sid, v, at = ARGV[i+1], ARGV[i+2], ARGV[i+3]
  local cur = state[k]
  if cur == nil then
    cur = false
    local s = redis.call('GET', k)
    if s then
      local f = {}
      for w in string.gmatch(s, '%S+') do f[#f+1] = w end
      if #f >= 3 and #f % 2 == 1 then
        cur = {sid = f[1], v = f[2], last = f[3], past = {}}
        for j = 4, #f, 2 do
          if f[j] ~= '0' and #cur.past < maxPast then cur.past[#cur.past+1] = {f[j], f[j+1]} end
        end
      end
    end
    state[k] = cur
  end
  if cur and ((sid == '0' and tonumber(at) <= tonumber(cur.last) + gap) or (sid ~= '0' and sid == cur.sid)) then
    if tonumber(at) > tonumber(cur.last) then
      cur.last = at
      dirty[k] = true
    end
    out[#out+1] = cur.v
  elseif cur and sid ~= '0' and cur.sid ~= '0' and tonumber(sid) < tonumber(cur.sid) then
    local user = nil
    for j = 1, #cur.past do
      if cur.past[j][1] == sid then user = cur.past[j][2] end
    end
    if user == nil then
      user = v
      if remember(cur, sid, v) then dirty[k] = true end
    end
    out[#out+1] = user
  else
    local next = {sid = sid, v = v, last = at, past = {}}
    if cur and sid ~= '0' and cur.sid ~= '0' then
      next.past = cur.past
      remember(next, cur.sid, cur.v)
    end
    state[k] = next
    dirty[k] = true
    out[#out+1] = v
  end
end
for k in pairs(dirty) do
  local c = state[k]
  local s = c.sid .. ' ' .. c.v .. ' ' .. c.last
  for j = 1, #c.past do s = s .. ' ' .. c.past[j][1] .. ' ' .. c.past[j][2] end
  redis.call('SET', k, s, 'EX', ttl)
end
return out
`)

// sessionUsersRedis is sessionUsers over the cluster's device sessions
// in Redis: one script call per site of the batch. Consecutive events of
// one device, session id and visitor are one probe (their answer is the
// same), at the latest of their times.
func (r *RedisRealtime) sessionUsersRedis(ctx context.Context, events []protocol.Event) ([]uint64, error) {
	users, ps := probes(events, unixMinute(r.mem.opts.Now()))
	if len(ps) == 0 {
		return users, nil
	}
	sortByDevice(events, ps)
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), redisTimeout)
	defer cancel()
	ttl := strconv.FormatInt(int64(realtimeTTL.Seconds()), 10)
	for start := 0; start < len(ps); {
		site := events[ps[start].i].Site
		end := start
		for end < len(ps) && events[ps[end].i].Site == site {
			end++
		}
		var keys []string
		args := []any{ttl, sessionGap, maxPastSessions}
		group := make([]int, end-start) // each probe's index among those sent
		sent := -1
		for n := start; n < end; n++ {
			p := ps[n]
			if n > start {
				q := ps[n-1]
				if p.sid != 0 && p.device == q.device && p.sid == q.sid && events[p.i].Visitor == events[q.i].Visitor {
					group[n-start] = sent
					args[len(args)-1] = p.at // sorted by time: the latest
					continue
				}
			}
			if n == start || p.device != ps[n-1].device {
				keys = append(keys, r.DeviceKey(site, p.device))
			}
			args = append(args, len(keys), p.sid, strconv.FormatUint(events[p.i].Visitor, 16), p.at)
			sent++
			group[n-start] = sent
		}
		res, err := joinScript.Run(ctx, r.client, keys, args...).StringSlice()
		if err != nil {
			return nil, fmt.Errorf("realtime: sessions of site %d's devices: %w", site, err)
		}
		if len(res) != sent+1 {
			return nil, fmt.Errorf("realtime: sessions of site %d's devices: %d answers for %d probes", site, len(res), sent+1)
		}
		for n := start; n < end; n++ {
			a := res[group[n-start]]
			u, err := strconv.ParseUint(a, 16, 64)
			if err != nil {
				return nil, fmt.Errorf("realtime: sessions of site %d's devices: user %q: %w", site, a, err)
			}
			users[ps[n].i] = u
		}
		start = end
	}
	return users, nil
}

// forgetDevicesRedis drops the device sessions of gone keys in Redis
// (see forgetDevices): a scan of the site's device keys, which an erasure
// runs rarely.
func (r *RedisRealtime) forgetDevicesRedis(ctx context.Context, site uint32, gone map[uint64]bool) error {
	pattern := r.prefix + "realtime:device:{" + strconv.FormatUint(uint64(site), 10) + "}:*"
	if cc, ok := r.client.(*goredis.ClusterClient); ok { // SCAN sees one node's keys
		return cc.ForEachMaster(ctx, func(ctx context.Context, c *goredis.Client) error {
			return forgetDevicesOn(ctx, c, pattern, gone)
		})
	}
	return forgetDevicesOn(ctx, r.client, pattern, gone)
}

func forgetDevicesOn(ctx context.Context, c goredis.Cmdable, pattern string, gone map[uint64]bool) error {
	it := c.Scan(ctx, 0, pattern, 1000).Iterator()
	for it.Next(ctx) {
		k := it.Val()
		device, err := strconv.ParseUint(k[strings.LastIndexByte(k, ':')+1:], 16, 64)
		if err != nil {
			return fmt.Errorf("realtime: forget: device key %s: %w", k, err)
		}
		drop := gone[device]
		if !drop {
			v, err := c.Get(ctx, k).Result()
			if err != nil && !errors.Is(err, goredis.Nil) {
				return fmt.Errorf("realtime: forget: read %s: %w", k, err)
			}
			drop = deviceOfGone(strings.Fields(v), gone)
		}
		if drop {
			if err := c.Del(ctx, k).Err(); err != nil {
				return fmt.Errorf("realtime: forget: delete %s: %w", k, err)
			}
		}
	}
	if err := it.Err(); err != nil {
		return fmt.Errorf("realtime: forget: scan %s: %w", pattern, err)
	}
	return nil
}

// deviceOfGone tells whether a device key's fields (DeviceKey) name a
// gone visitor: its session's or an earlier session's.
func deviceOfGone(f []string, gone map[uint64]bool) bool {
	if len(f) < 3 || len(f)%2 == 0 {
		return false
	}
	named := func(hex string) bool {
		u, err := strconv.ParseUint(hex, 16, 64)
		return err == nil && gone[u]
	}
	if named(f[1]) {
		return true
	}
	for j := 3; j+1 < len(f); j += 2 {
		if f[j] != "0" && named(f[j+1]) {
			return true
		}
	}
	return false
}
