package sessions

import (
	"slices"
	"time"

	"github.com/avila-analytics/avila/protocol"
)

// Timeout is the inactivity after which a derived session ends (GA4's
// default session timeout). A gap of exactly Timeout continues the session.
const Timeout = 30 * time.Minute

// Lookback bounds a session's life and a visitor's memory: a session is
// continued at most this long after it started, and only sessions begun
// this long before a new one make it a returning visitor's. The database
// look-up reaches this far before a batch's earliest event. A persistent
// visitor (protocol.FlagPersistent) seen before that is known to the write
// stage otherwise (its known users), so this bound does not make it new.
const Lookback = 24 * time.Hour

// Device is the key an event's device is grouped by: the client id's key
// when the event also carries a user_id's (protocol.Event.Client), else its
// visitor. Events of one device are sessionized together, so a login in
// the middle of a session keeps the session.
func Device(e *protocol.Event) uint64 {
	if e.Client != 0 {
		return e.Client
	}
	return e.Visitor
}

// Key is a visitor of a site.
type Key struct {
	Site    uint32
	Visitor uint64
}

// Session is what sessionization needs to know about a committed session.
type Session struct {
	ID    int64 // sid, or the Unix second of the first event for derived sessions
	Start int64 // Unix microseconds of the first event known when it was created; never changes
	Last  int64 // Unix microseconds of its latest event
	// FirstSource is the storage's dictionary id of the source of the
	// visitor's first session (GA4 firstUserSource); carried from session
	// to session of a visitor.
	FirstSource int32
}

// Assigned is one session a batch's events belong to.
type Assigned struct {
	Key
	Session
	// Existing: the session was committed before; the batch adds to it.
	Existing bool
	// Prior: the visitor has an earlier session (so FirstSource is set
	// and, without other evidence, the session is a returning one).
	Prior bool
	// FirstSourceOf, when not -1, is the index in Sessions of a session new
	// in this batch whose FirstSource this one takes (not known until the
	// storage resolves the sources; it is always the lower index).
	FirstSourceOf int
	// Events are the indexes of the batch's events in it, in time order.
	Events []int
}

// Assignment maps a batch's events to sessions.
type Assignment struct {
	Sessions []Assigned
	Of       []int // by event index: index into Sessions

	// all is the array the sessions' Events share, and order the
	// memory of the events' order, for AssignInto to reuse; counts and
	// remap are assign's by session.
	all    []int
	order  orderScratch
	counts []int
	remap  []int
}

// Assign gives each event its session. known holds the committed sessions
// of the events' visitors and client keys (any order; the latest is enough
// for visitors whose events are not older than it, see CacheCovers). The
// events of a device (Device) share sessions: an event joins a session of
// its device whatever key the session is stored under (a session begun
// before a login stays the client key's, and its events after the login
// join it), and a new session is stored under the event's Visitor. The
// caller stores each event under its session's visitor. It is
// deterministic: the same events and known sessions give the same result.
func Assign(events []protocol.Event, known map[Key][]Session) Assignment {
	var as Assignment
	sc := orderScratches.Get().(*orderScratch)
	defer orderScratches.Put(sc)
	as.assign(events, known, sc.of(events))
	return as
}

// AssignInto is Assign into as, whose arrays it reuses when they have
// room: what as held before, its sessions and their Events lists among
// it, is overwritten and must no longer be in use.
func AssignInto(as *Assignment, events []protocol.Event, known map[Key][]Session) {
	as.assign(events, known, as.order.of(events))
}

// assign is AssignInto with the events' order (orderScratch.of).
func (as *Assignment) assign(events []protocol.Event, known map[Key][]Session, order []int32) {
	// Of has room for the events a caller derives for new sessions (the
	// write stage's session_start and first_visit).
	if n := len(events) + len(events)/4; cap(as.Of) < n {
		as.Of = make([]int, n)
	}
	as.Of = as.Of[:len(events)]
	// Room for a committed session of each visitor or client key, most
	// of which a busy site's events continue, instead of growing the
	// list from empty by copies.
	clear(as.Sessions[:cap(as.Sessions)])
	if cap(as.Sessions) < len(known) {
		as.Sessions = make([]Assigned, 0, len(known))
	}
	as.Sessions = as.Sessions[:0]
	counts := as.counts[:0] // by session: its events
	// cands are the indexes (into as.Sessions) of the current visitor's
	// sessions, committed and new.
	var cands []int
	var cur Key     // the current device
	var added []Key // the keys whose known sessions are candidates
	last := 0       // the previous event's index
	for n, o := range order {
		i := int(o)
		e := &events[i]
		newDevice := false
		if d := (Key{e.Site, Device(e)}); n == 0 || d != cur {
			cur, cands, added, newDevice = d, cands[:0], added[:0], true
		}
		// The device's sessions may be stored under its client key or,
		// once a user_id was sent, the user's key: both are candidates
		// (the previous event's are added already).
		if prev := &events[last]; newDevice || e.Visitor != prev.Visitor || e.Client != prev.Client {
			for j, k := range [...]Key{{e.Site, e.Visitor}, {e.Site, e.Client}} {
				if (j == 1 && e.Client == 0) || slices.Contains(added, k) {
					continue // no client key (0 is a visitor id like any other)
				}
				added = append(added, k)
				for _, s := range known[k] {
					as.Sessions = append(as.Sessions, Assigned{Key: k, Session: s, Existing: true, FirstSourceOf: -1})
					counts = append(counts, 0)
					cands = append(cands, len(as.Sessions)-1)
				}
			}
		}
		last = i
		k := Key{e.Site, e.Visitor}
		t := e.TimeMicros
		// Sessions that began more than Lookback ago are over: whether the
		// database look-up or a cache found them, they are not continued
		// and do not make the visitor a returning one.
		recent := func(c int) bool { return as.Sessions[c].Start >= t-Lookback.Microseconds() }
		found := -1
		if e.SessionID > 0 {
			for _, c := range cands {
				if as.Sessions[c].ID == e.SessionID && recent(c) {
					found = c
					break
				}
			}
		} else {
			// The session with the latest event that could hold this one.
			for _, c := range cands {
				s := &as.Sessions[c].Session
				if recent(c) && t >= s.Start-Timeout.Microseconds() && t <= s.Last+Timeout.Microseconds() &&
					(found < 0 || s.Last > as.Sessions[found].Last) {
					found = c
				}
			}
		}
		if found < 0 {
			id := e.SessionID
			if id <= 0 {
				id = time.UnixMicro(t).Unix()
				for slices.ContainsFunc(cands, func(c int) bool { return as.Sessions[c].ID == id }) {
					id++ // another session of the visitor began in the same second
				}
			}
			a := Assigned{Key: k, Session: Session{ID: id, Start: t, Last: t}, FirstSourceOf: -1}
			// The earliest earlier session of the visitor carries the
			// visitor's first source.
			priorStart := int64(0)
			for _, c := range cands {
				if p := &as.Sessions[c]; p.Start < t && recent(c) && (!a.Prior || p.Start < priorStart) {
					a.Prior, a.FirstSource, priorStart = true, p.FirstSource, p.Start
					a.FirstSourceOf = -1
					if !p.Existing {
						a.FirstSourceOf = c
					}
				}
			}
			as.Sessions = append(as.Sessions, a)
			counts = append(counts, 0)
			found = len(as.Sessions) - 1
			cands = append(cands, found)
		}
		s := &as.Sessions[found]
		s.Last = max(s.Last, t)
		counts[found]++
		as.Of[i] = found
	}
	// Committed sessions no event joined are not part of the assignment.
	keep := as.Sessions[:0]
	remap := as.remap[:0]
	if cap(remap) < len(as.Sessions) {
		remap = make([]int, 0, len(as.Sessions)+len(as.Sessions)/4)
	}
	remap = remap[:len(as.Sessions)]
	as.counts, as.remap = counts, remap
	total := 0
	for i, s := range as.Sessions {
		remap[i] = -1
		if counts[i] > 0 {
			remap[i] = len(keep)
			keep = append(keep, s)
			total += counts[i] + reserve(&s)
		}
	}
	as.Sessions = keep
	for i, s := range as.Of {
		as.Of[i] = remap[s]
	}
	for i := range as.Sessions {
		if f := as.Sessions[i].FirstSourceOf; f >= 0 {
			as.Sessions[i].FirstSourceOf = remap[f]
		}
	}
	// The sessions' Events lists share one array, each capped at its
	// events and reserve, so an append past that moves it off the array.
	if cap(as.all) < total {
		room := 0
		if cap(as.all) > 0 { // reused: room for larger batches
			room = total / 4
		}
		as.all = make([]int, 0, total+room)
	}
	all := as.all[:0]
	for i, c := range counts {
		if c > 0 {
			s := &as.Sessions[remap[i]]
			end := len(all) + c + reserve(s)
			s.Events, all = all[len(all):len(all):end], all[:end]
		}
	}
	for _, o := range order { // time order within a session
		i := int(o)
		s := &as.Sessions[as.Of[i]]
		s.Events = append(s.Events, i)
	}
}

// reserve is the room a session's Events list keeps beyond its events:
// a caller derives up to two events for a new session (session_start,
// first_visit).
func reserve(s *Assigned) int {
	if s.Existing {
		return 0
	}
	return 2
}
