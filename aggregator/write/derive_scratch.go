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
	// as is the last chunk's assignment of sessions
	// (sessions.AssignInto).
	as sessions.Assignment
	// oversized counts the chunks in a row for which events was over
	// shrinkPast times too large.
	oversized int
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
		s.events = make([]protocol.Event, 0, max(n, min(2*cap(s.events), s.max/2+s.max/8)))
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
}

// maxPayloadPerEvent bounds the payload buffer kept, by the events an
// array kept may hold: staged payloads are compressed to some tens of
// bytes an event.
const maxPayloadPerEvent = 256

// drop zeroes and drops the arrays.
func (s *deriveScratch) drop() {
	s.clean()
	s.events, s.res, s.payloads, s.as, s.sources = nil, postgres.Resolved{}, nil, sessions.Assignment{}, nil
	s.cells.Drop()
}
