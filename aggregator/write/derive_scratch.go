package write

import (
	"github.com/avila-analytics/avila/aggregator/sessions"
	"github.com/avila-analytics/avila/protocol"
	"github.com/avila-analytics/avila/storage/postgres"
)

// deriveScratch holds a chunk's largest arrays, its events (about 400
// bytes each) and their rows (about 200), for the chunks and derivations
// after it to reuse instead of allocating as many afresh: a chunk of
// Config.MaxEvents events made 40 MB of garbage, which the GC marked
// and the next chunk's allocation zeroed and faulted in again.
//
// The arrays are kept only while traffic lasts, when chunks and
// derivations follow each other within a wait of Run and a chunk's
// arrays would be live much of the time anyway: Run drops them after two
// passes in a row that derived nothing (a whole wait without staged
// events) or after a failure, and Flush once caught up, so an idle node
// holds none. An array much larger than the chunks need (one of a
// backlog, kept while derivations of steady traffic follow) is replaced
// by one of a chunk's size after some chunks (eventsFor).
//
// Only the derivation holding Writer.deriving uses it. A chunk's events
// and rows are the scratch's until the next chunk begins (eventsFor): the
// last chunk's events are lent to Config.Derived, which must not keep
// them. clean zeroes every entry a chunk wrote, so nothing of one chunk
// is seen by the next, and the scratch holds no strings or params of
// derived chunks alive.
type deriveScratch struct {
	// events is the array of the last chunk's events, emptied; dirty is
	// how many of its entries may hold a chunk's events.
	events []protocol.Event
	dirty  int
	res    postgres.Resolved
	// payloads holds the payloads of the staged rows the last chunk took
	// (postgres.DeriveTx.TakeInto), which no event keeps: decoding copies
	// what it takes from them.
	payloads []byte
	// offsets are the places of a chunk's staged rows' events in events
	// (Writer.rowEvents).
	offsets []int
	// as is the last chunk's assignment of sessions
	// (sessions.AssignInto).
	as sessions.Assignment
	// oversized counts the chunks in a row for which events was over
	// shrinkPast times too large.
	oversized int
	// assign holds the maps and arrays assignSessions and the
	// sessions' memory use for a chunk.
	assign assignScratch
	// rows holds the sessions' rows and what they are made from.
	rows rowsScratch
	// commerce is the last chunk's plan (prepareCommerce).
	commerce commercePlan
	// sources holds the traffic sources of referrers the chunks
	// attributed (sourceMemo).
	sources sourceMemo
	// cells holds the rollup cells of the last derivation, emptied once
	// written, for the next to reuse (postgres.DeriveTx.UseCells).
	cells postgres.CellScratch
	// max bounds the events an array kept may hold: a larger one (a
	// chunk's staged rows may pass Config.MaxEvents) is dropped once used.
	max int
}

// An array kept that holds over shrinkPast times the events of each of
// shrinkAfter chunks in a row is dropped, with the rows and assignment
// kept with it: chunks of a backlog and of the traffic after it may
// alternate, and a backlog's chunk array made afresh each time would
// cost more than the one kept.
const (
	shrinkPast  = 4
	shrinkAfter = 16
)

// eventsFor returns an empty array with room for n events, the last
// chunk's when it has room (and was not too large for the last
// shrinkAfter chunks), after clean.
func (s *deriveScratch) eventsFor(n int) []protocol.Event {
	s.clean()
	if cap(s.events) > shrinkPast*max(n, 64) {
		s.oversized++
	} else {
		s.oversized = 0
	}
	if s.oversized >= shrinkAfter {
		s.events, s.res, s.as, s.oversized = nil, postgres.Resolved{}, sessions.Assignment{}, 0
	}
	if cap(s.events) < n {
		// Chunks grow one after the other while a backlog builds up:
		// the array doubles, up to what a full chunk needs (max/2 and a
		// quarter more derived), rather than growing to each one's size.
		// Full chunks pass that by their last staged row's events, by
		// more or less from one to the next: past it, an eighth more
		// room, for the next such chunks to fit too.
		full := s.max/2 + s.max/8
		c := max(n, min(2*cap(s.events), full))
		if n > full {
			c = n + n/8
		}
		s.events = make([]protocol.Event, 0, c)
	}
	if cap(s.res.Rows) < n {
		// The chunk's rows (postgres.Store.ResolveEventsTo) with the
		// events' room, which they would otherwise grow to each chunk's
		// size.
		s.res.Rows = make([]postgres.EventRow, 0, cap(s.events))
	}
	return s.events[:0]
}

// wrote records events, an array eventsFor returned appended to, as
// written up to its length; an append that outgrew the array moved them
// to the one kept (the old one is garbage, left as it is).
func (s *deriveScratch) wrote(events []protocol.Event) {
	if cap(events) == 0 {
		return
	}
	if cap(s.events) == 0 || &events[:1][0] != &s.events[:1][0] {
		s.events, s.dirty = events[:0], 0
	}
	s.dirty = max(s.dirty, len(events))
}

// resolved returns the rows to resolve a chunk's events into
// (postgres.Store.ResolveEventsTo).
func (s *deriveScratch) resolved() *postgres.Resolved { return &s.res }

// clean zeroes what the last chunk wrote, and drops arrays past the
// bound.
func (s *deriveScratch) clean() {
	clear(s.events[:s.dirty])
	s.dirty = 0
	clear(s.res.Rows)
	s.res.Rows, s.res.Traffic = s.res.Rows[:0], nil
	if cap(s.events) > s.max {
		s.events = nil
	}
	if cap(s.res.Rows) > s.max {
		s.res = postgres.Resolved{}
	}
	if cap(s.payloads) > s.max*maxPayloadPerEvent {
		s.payloads = nil
	}
	if cap(s.as.Of) > s.max {
		s.as = sessions.Assignment{}
	}
	if cap(s.assign.visitors) > 2*s.max {
		s.assign = assignScratch{}
	}
	// The sessions' rows point to the events' rows.
	clear(s.rows.sessions)
	if cap(s.rows.sessions) > s.max {
		s.rows = rowsScratch{}
	}
	if cap(s.commerce.tx) > s.max {
		s.commerce = commercePlan{}
	}
}

// maxPayloadPerEvent bounds the payload buffer kept, by the events an
// array kept may hold: staged payloads are compressed to some tens of
// bytes an event.
const maxPayloadPerEvent = 256

// drop zeroes and drops the arrays.
func (s *deriveScratch) drop() {
	s.clean()
	s.events, s.res, s.payloads, s.as, s.sources = nil, postgres.Resolved{}, nil, sessions.Assignment{}, nil
	s.assign, s.rows, s.commerce = assignScratch{}, rowsScratch{}, commercePlan{}
	s.cells.Drop()
}

// assignScratch holds what assignSessions builds for a chunk, for the
// next chunk to reuse: the maps emptied, the arrays overwritten. Its
// maps hold no pointer but known's lists, which point into one.
type assignScratch struct {
	index    map[uint64]int32 // visitor or client key: its index in visitors
	visitors []uint64
	place    []int32 // by event: its visitor's index in visitors
	// cached and covered are by index in visitors: the memory's latest
	// session, and whether it is all Assign needs of the visitor.
	cached  []sessions.Session
	covered []bool
	known   map[sessions.Key][]sessions.Session
	one     []sessions.Session // the array of known's lists of one
	missing []int64
	latest  map[sessions.Key]sessions.Session // siteSessions.commit's
}

// emptied returns the map *m emptied, or a new one it makes *m when nil:
// a chunk's map over the last chunk's.
func emptied[M ~map[K]V, K comparable, V any](m *M) M {
	if *m == nil {
		*m = make(M)
	}
	clear(*m)
	return *m
}

// grownTo returns a as long as n, reallocated when it has not the room;
// its entries are left as they were.
func grownTo[T any](a []T, n int) []T {
	if cap(a) < n {
		return make([]T, n)
	}
	return a[:n]
}

// rowsScratch holds a chunk's session rows (sessionRows) and the maps
// of the users' first sources, for the next chunk to reuse.
type rowsScratch struct {
	sessions     []postgres.SessionRow
	newUser      []bool           // by session (newUsers)
	users        map[uint64]int64 // persistentUsers'
	firstSources map[uint64]int32 // sessionRows': returned
	firstStart   map[uint64]int64 // sessionRows': its own
}
