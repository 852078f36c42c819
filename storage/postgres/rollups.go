package postgres

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"math"
	"slices"
	"time"

	"github.com/axiomhq/hyperloglog"
	"github.com/jackc/pgx/v5"

	"github.com/avila-analytics/avila/protocol"
)

// RollupKinds are the dims kinds with rows in rollup_days besides kind 0
// (all events): the dimensions a dashboard groups by.
var RollupKinds = []DimKind{DimEventName, DimPagePath, DimHost, DimTitle, DimReferrer, DimCountry, DimBrowser, DimOS, DimDevice,
	DimSource, DimChannelGroup}

// RollupHour is the rollup_days kind of hourly rows: every event of the
// local day by its local hour, dim_id the hour (0 to 23). Not a dims kind.
// A local hour that repeats when clocks go back is one row, as it is one
// value of GA4's hour dimension.
const RollupHour DimKind = 100

// RollupSessionTraffic is the rollup_days kind counting each event under
// its session's traffic source: dim_id is the session's traffic_profiles
// id (0: a session without one), so its rows answer event reports by
// sessionSource, sessionMedium, sessionSourceMedium, sessionCampaignName
// and sessionDefaultChannelGroup (one profile row holds all four dims).
// A session's traffic_id is set when its row is first written and never
// changes, so an event stays in its row; rebuilds read it from sessions.
// Not a dims kind. Rows are additive like every rollup_days row: a
// generic erasure that subtracts an event's counters from its cells finds
// this cell by the event's session's traffic_id.
const RollupSessionTraffic DimKind = 102

// RollupLandingPage is the rollup_days kind counting each event under its
// session's landing page: dim_id is the session's sessions.page_id (0: a
// session without a page view yet), so event reports by landingPage read a
// few rows a day. A session's landing page is set once, by the first
// derivation holding one of its page views; the events derived before it
// are moved then from the row of 0 to the page's (moveLanding). Its rows
// count events only: no sketches, no amounts (user and revenue metrics by
// landing page read events).
const RollupLandingPage DimKind = 103

// RollupPageSessions and RollupTitleSessions are the rollup_days kinds of
// the sessions in which a page path (title) occurred, for GA4's session
// metrics by pagePath (pageTitle): dim_id is the events' page path
// (title) id, the counters are those of the page's events, and the users
// sketch holds the hashes of the sessions (SessionHash) with an event of
// the page instead of visitors. A session's hash goes into the sketch of
// each of its derivations and days, and merging sketches counts it once.
const (
	RollupPageSessions  DimKind = 104
	RollupTitleSessions DimKind = 105
)

// SessionSketchKinds are the kinds whose users sketch holds sessions, with
// the dims kind of their dim_id.
var SessionSketchKinds = map[DimKind]DimKind{RollupPageSessions: DimPagePath, RollupTitleSessions: DimTitle}

// sessionSketchKind reports whether kind's sketch holds sessions.
func sessionSketchKind(kind int32) bool {
	_, ok := SessionSketchKinds[DimKind(kind)]
	return ok
}

// SessionHash is the hash the sessions sketches hold for the session id of
// a visitor, as reports group a session's events (visitor, session id).
func SessionHash(visitor, session int64) uint64 {
	return VisitorHash(uint64(visitor) ^ VisitorHash(uint64(session)))
}

// RollupColumns are the columns of RollupKinds' ids (DimColumns): in
// events, or in the kind's profile table (ProfileOf).
var RollupColumns = func() map[DimKind]string {
	m := make(map[DimKind]string, len(RollupKinds))
	for _, k := range RollupKinds {
		m[k] = DimColumns[k]
	}
	return m
}()

// RollupPrecision is the HyperLogLog precision of rollup sketches: 2^14
// registers, a standard error of about 0.8%.
const RollupPrecision = 14

// firstVisitName is the event GA4 logs on a client's first visit.
const firstVisitName = "first_visit"

// pageViewName is the event GA4 counts as a page view.
const pageViewName = "page_view"

// rollupKey identifies a rollup_days row.
// (16 bytes without pointers or padding: a key the runtime can hash and
// compare as plain memory is looked up about a quarter faster than one
// with padding, which it hashes field by field; hence kind is an int32,
// though the column is a smallint. A derivation's events find their cells
// by a key of one word, rollupSlots).
type rollupKey struct {
	site int32
	kind int32
	day  int32 // local date, days since 1970-01-01
	dim  int32
}

// compareRollupKeys orders keys by site, kind, day and dims id. (It
// compares field by field and stops at the first that differs: a
// derivation sorts its thousands of cells, and cmp.Or of the four
// comparisons, all made, took twice as long.)
func compareRollupKeys(a, b rollupKey) int {
	switch {
	case a.site != b.site:
		return cmp.Compare(a.site, b.site)
	case a.kind != b.kind:
		return cmp.Compare(a.kind, b.kind)
	case a.day != b.day:
		return cmp.Compare(a.day, b.day)
	}
	return cmp.Compare(a.dim, b.dim)
}

// sortedRollupKeys are the keys of cells in compareRollupKeys' order.
// Keys of one site whose kinds and days fit in 16 bits each (every key
// of a derivation: kinds are below 200, days within 89 years of 1970)
// are sorted as single integers holding kind, day and dims id, which
// compare in that order (each biased to compare as its signed value); the
// sort then calls no comparison function, which took most of its time.
// Other keys sort by compareRollupKeys.
func sortedRollupKeys[C any](cells map[rollupKey]C) []rollupKey {
	keys := make([]rollupKey, 0, len(cells))
	packed := make([]uint64, 0, len(cells))
	var site int32
	fits := true
	for k := range cells {
		keys = append(keys, k)
		if !fits {
			continue
		}
		if len(keys) == 1 {
			site = k.site
		}
		if k.site != site || k.kind != int32(int16(k.kind)) || k.day != int32(int16(k.day)) {
			fits = false
			continue
		}
		packed = append(packed, uint64(uint16(k.kind)^0x8000)<<48|uint64(uint16(k.day)^0x8000)<<32|uint64(uint32(k.dim)^0x80000000))
	}
	if !fits {
		slices.SortFunc(keys, compareRollupKeys)
		return keys
	}
	slices.Sort(packed)
	for i, p := range packed {
		keys[i] = rollupKey{site: site, kind: int32(int16(uint16(p>>48) ^ 0x8000)), day: int32(int16(uint16(p>>32) ^ 0x8000)),
			dim: int32(uint32(p) ^ 0x80000000)}
	}
	return keys
}

// localDay is the local date of t in loc, in days since 1970-01-01.
func localDay(t time.Time, loc *time.Location) int32 {
	y, m, d := t.In(loc).Date()
	return int32(time.Date(y, m, d, 0, 0, 0, 0, time.UTC).Unix() / 86400)
}

// dayDate is day (days since 1970-01-01) as UTC midnight, as pgx writes a
// date.
func dayDate(day int32) time.Time { return time.Unix(int64(day)*86400, 0).UTC() }

// hourCache remembers the local day and hour of the last quarter of an
// hour (UTC) it was asked about: every zone's offset, and every change of
// it, falls on a quarter hour, so a quarter's events share both, and a
// derivation's events come nearly in time order.
type hourCache struct {
	loc  *time.Location
	from int64 // the quarter's first Unix second; valid when ok
	ok   bool
	day  int32
	hour int32
}

func (c *hourCache) of(t time.Time) (day, hour int32) {
	// Two comparisons tell an instant of the quarter (the difference,
	// not negative, is exact as unsigned): the derivation asks for every
	// event several times.
	if s := t.Unix(); !c.ok || s < c.from || uint64(s-c.from) >= 900 {
		local := t.In(c.loc)
		c.from, c.ok = floorDiv(s, 900)*900, true
		c.day, c.hour = int32(dateDays(local)), int32(local.Hour())
	}
	return c.day, c.hour
}

// rollupCell accumulates one rollup row's delta.
type rollupCell struct {
	events, views, keyEvents int32
	engageMs                 int64
	amounts                  *Amounts // nil: every slot 0
	sketches                 cellSketches
	// seen holds visitor hashes not yet in the sketches, with their
	// visitorUser/visitorActive/visitorNew bits (see settle); the visitor
	// of the cell's last event waits in lastVisitor, its bits in lastBits
	// (0: none), so a visitor's run of events costs one append, not one
	// per event. A visitor whose runs in the cell are interleaved with
	// others' is listed once per run: settle's sets are made distinct
	// anyway, and an append costs less than a map update that would find
	// the visitor (most runs are a visitor's only run in the cell). settle
	// empties it and keeps its array for the derivation's next chunk,
	// whose cells are much the same.
	seen        []seenVisitor
	lastVisitor uint64
	lastBits    uint8
}

// minSeen is the capacity of a cell's first array of runs (seen).
const minSeen = 16

// seenVisitor is a visitor hash a cell collected, as the sketches'
// encoding of it (encodeHash, all settle reads of it), with its bits:
// 8 bytes, where the hash itself made 16 of a cell's longest array.
type seenVisitor struct {
	k    uint32
	bits uint8
}

// seenOf is visitor hash h with bits, as a cell's seen holds them.
func seenOf(h uint64, bits uint8) seenVisitor { return seenVisitor{encodeHash(h), bits} }

// Bits of rollupCell.seen.
const (
	visitorUser uint8 = 1 << iota
	visitorActive
	visitorNew
)

func newRollupCell() *rollupCell { return new(rollupCell) }

// visitorBits are the bits of a visitor's event: visitorUser, and
// visitorActive and visitorNew as active and first say.
func visitorBits(active, first bool) uint8 {
	bits := visitorUser
	if active {
		bits |= visitorActive
	}
	if first {
		bits |= visitorNew
	}
	return bits
}

// NewSketch returns an empty sketch of rollup precision (sparse until it
// grows).
func NewSketch() *hyperloglog.Sketch {
	sk, err := hyperloglog.NewSketch(RollupPrecision, true)
	if err != nil {
		panic("BUG: rollup sketch precision out of range: " + err.Error())
	}
	return sk
}

// NewDenseSketch returns an empty dense sketch of rollup precision, for
// merging many large sketches.
func NewDenseSketch() *hyperloglog.Sketch {
	sk, err := hyperloglog.NewSketch(RollupPrecision, false)
	if err != nil {
		panic("BUG: rollup sketch precision out of range: " + err.Error())
	}
	return sk
}

// VisitorHash is the 64-bit hash sketches hold for a visitor id: a
// bijective mix (SplitMix64's finalizer), so ids that are not uniformly
// spread still fill registers evenly.
func VisitorHash(v uint64) uint64 {
	v ^= v >> 30
	v *= 0xbf58476d1ce4e5b9
	v ^= v >> 27
	v *= 0x94d049bb133111eb
	v ^= v >> 31
	return v
}

// rollupAgg is a batch's rollup deltas.
type rollupAgg map[rollupKey]*rollupCell

// add counts one event; loc is its site's time zone. With dedupe, visitors
// are collected per cell and go into the sketches once each, at settle:
// a derivation's many events of few visitors then cost one sketch insert
// per visitor and cell, not per event (a sparse sketch merges its list
// again and again otherwise). Without, they go in at once, and memory
// does not grow with visitors (rebuilds of whole days).
func (a rollupAgg) add(row *EventRow, hours *hourCache, dedupe bool) {
	a.addTo(row, hours, dedupe, nil)
}

// rollupSlots are addTo's cells of one site by slot (rollupSlotKinds),
// each slot's by day and dims id as one uint64 (dayDim) in a table of
// its own (cellTable), where a look-up in the rollupAgg by its key of
// 16 bytes costs several times as much. Each slot remembers the cell it used last: a
// visitor's events follow each other and mostly share their day, hour,
// host, country, browser …, so most slots find their cell without a
// look-up. They hold the cells of a rollupAgg, which neither replaces nor
// drops a cell while they are in use.
type rollupSlots struct {
	site  int32
	valid bool // site is set
	// cells are each slot's last cell (nil: none yet), dayDims their
	// dayDims (valid where the cell is set), tables the slots' cells: the
	// first two apart from the tables, the words each event compares.
	cells   [rollupSlotCount]*rollupCell
	dayDims [rollupSlotCount]uint64
	tables  [rollupSlotCount]cellTable
	// free are cells made for the slots' new cells, rollupCellSlab at a
	// time: a derivation makes thousands of cells, and one allocation
	// of many costs a fraction of one each. A slab is kept while any of
	// its cells is: an aggregate's cells go together.
	free []rollupCell
	// slabs are the slabs made; the first used of them handed out cells
	// (free is the rest of the last of these). A derivation's cells
	// recycled (deriveCells.recycle) hand out the same slabs again.
	slabs [][]rollupCell
	used  int
}

// nextSlab returns a slab of zero cells, one recycled if there is one.
func (s *rollupSlots) nextSlab() []rollupCell {
	if s.used == len(s.slabs) {
		s.slabs = append(s.slabs, make([]rollupCell, rollupCellSlab))
	}
	s.used++
	return s.slabs[s.used-1]
}

// reset empties the slots for rows of site. Their tables are cleared, not
// dropped, and the slabs stay: the cells handed out are the aggregate's,
// and the rest of free is zero cells.
func (s *rollupSlots) reset(site int32) {
	s.clear()
	s.site, s.valid = site, true
}

// clear empties every slot.
func (s *rollupSlots) clear() {
	for j := range s.tables {
		s.tables[j].clear()
	}
	s.cells, s.dayDims = [rollupSlotCount]*rollupCell{}, [rollupSlotCount]uint64{}
}

// rollupCellSlab is how many cells rollupSlots allocates at a time.
const rollupCellSlab = 24

// dayDim is a cell's local day and dims id as one key.
func dayDim(day, dim int32) uint64 { return uint64(uint32(day))<<32 | uint64(uint32(dim)) }

// get is a's cell of key k, made if there is none.
func (a rollupAgg) get(k rollupKey) *rollupCell {
	c := a[k]
	if c == nil {
		c = newRollupCell()
		a[k] = c
	}
	return c
}

// slotCell is a's cell of slot j of last for local day and dims id dim,
// found by its dayDim dd in the slot's table or else in a (made from
// last's free cells if there is none), and remembered as the slot's last.
func (a rollupAgg) slotCell(last *rollupSlots, j int, day, dim int32, dd uint64) *rollupCell {
	c := last.tables[j].get(dd)
	if c == nil {
		c = a.newSlotCell(last, j, day, dim, dd)
	}
	last.dayDims[j], last.cells[j] = dd, c
	return c
}

// newSlotCell is slotCell's cell of one its slot's table does not hold:
// a's, or made from last's free cells; put into the table.
func (a rollupAgg) newSlotCell(last *rollupSlots, j int, day, dim int32, dd uint64) *rollupCell {
	k := rollupKey{site: last.site, kind: rollupSlotKinds[j], day: day, dim: dim}
	c := a[k]
	if c == nil {
		if len(last.free) == 0 {
			last.free = last.nextSlab()
		}
		c, last.free = &last.free[0], last.free[1:]
		a[k] = c
	}
	last.tables[j].put(dd, c)
	return c
}

// rollupExtraSlots are the cells addTo fills besides RollupKinds': the
// landing page's, the page's and title's sessions, the session's traffic,
// the hour and all events (the first slots of rollupSlotKinds).
const rollupExtraSlots = 6

// rollupSlotKinds are the kinds of addTo's slots: the landing page's,
// the page's and title's sessions, the session's traffic, the hour, all
// events, then RollupKinds'.
var rollupSlotKinds = func() []int32 {
	out := []int32{int32(RollupLandingPage), int32(RollupPageSessions), int32(RollupTitleSessions),
		int32(RollupSessionTraffic), int32(RollupHour), 0}
	for _, k := range RollupKinds {
		out = append(out, int32(k))
	}
	return out
}()

// addTo is add, remembering cells in last (nil: none).
func (a rollupAgg) addTo(row *EventRow, hours *hourCache, dedupe bool, last *rollupSlots) {
	day, hour := hours.of(row.TS)
	h := VisitorHash(uint64(row.Visitor))
	flags := uint8(row.Flags)
	// GA4's is_active_user: the user was active at some point of the
	// event's day (userDays), not necessarily at this event.
	bits := visitorBits(row.DayActive, flags&protocol.FlagFirstVisit != 0)
	sh := SessionHash(row.Visitor, row.Session)
	var views, keyEvents int32
	if row.PageView {
		views = 1
	}
	if flags&protocol.FlagKeyEvent != 0 {
		keyEvents = 1
	}
	engage := int64(row.Engage)
	dims := slotDims(row, hour)
	if last != nil && (!last.valid || last.site != row.Site) {
		last.reset(row.Site)
	}
	for j, kind := range rollupSlotKinds {
		var c *rollupCell
		switch {
		case last == nil:
			c = a.get(rollupKey{site: row.Site, kind: kind, day: day, dim: dims[j]})
		case last.cells[j] != nil && last.dayDims[j] == dayDim(day, dims[j]):
			c = last.cells[j]
		default:
			c = a.slotCell(last, j, day, dims[j], dayDim(day, dims[j]))
		}
		c.events++
		c.views += views
		c.keyEvents += keyEvents
		c.engageMs += engage
		// The landing page's and the sessions kinds hold no amounts; the
		// landing page's no sketches, the sessions kinds' sessions.
		if j < visitorSlots {
			if j == 0 {
				continue
			}
			c.addVisitor(sh, visitorUser, dedupe)
			continue
		}
		if row.Amounts != nil {
			c.addAmounts(row.Amounts)
		}
		c.addVisitor(h, bits, dedupe)
	}
}

// addRows is addTo of each of rows, with dedupe, remembering cells in
// last, but it touches a cell once per stint of a slot on it, not once
// per event: a run of rows of one visitor, session and bits (and site)
// keeps most slots on the cell they used last (day, hour, host, country
// …), and those slots only compare their day and dims id. A slot's cell
// takes the counters of its stint when the slot leaves it, at the end
// of the run or at the end of rows (the difference of the running totals
// of rows since the slot came to it, base, and now, run), and the run's
// visitor when the stint begins: addTo's addVisitor of the stint's later
// rows would change nothing (the cell's last visitor is that visitor
// with those bits; no other slot has the cell). Amounts, rare, go into
// the cells row by row, in row order as addTo's. When it returns, every
// cell holds all of its rows.
func (a rollupAgg) addRows(rows []EventRow, hours *hourCache, last *rollupSlots) {
	var (
		run  slotCounts
		base [rollupSlotCount]slotCounts
		// The current run's.
		visitor, session int64
		site             int32
		bits             uint8
		h, sh            uint64
	)
	for i := range rows {
		row := &rows[i]
		day, hour := hours.of(row.TS)
		// GA4's is_active_user: the user was active at some point of the
		// event's day (userDays), not necessarily at this event.
		b := visitorBits(row.DayActive, uint8(row.Flags)&protocol.FlagFirstVisit != 0)
		fresh := i == 0 || row.Visitor != visitor || row.Session != session || row.Site != site || b != bits
		if fresh {
			last.leave(&run, &base)
			if !last.valid || last.site != row.Site {
				last.reset(row.Site)
			}
			if i == 0 || row.Visitor != visitor {
				h = VisitorHash(uint64(row.Visitor))
			}
			sh = SessionHash(row.Visitor, row.Session)
			visitor, session, site, bits = row.Visitor, row.Session, row.Site, b
		}
		dims := slotDims(row, hour)
		for j := range rollupSlotCount {
			dd := dayDim(day, dims[j])
			c := last.cells[j]
			if c != nil && last.dayDims[j] == dd {
				if !fresh {
					continue
				}
			} else {
				if c != nil {
					c.addCounts(run.minus(base[j]))
				}
				base[j] = run
				if c = last.tables[j].get(dd); c == nil {
					c = a.newSlotCell(last, j, day, dims[j], dd)
				}
				last.dayDims[j], last.cells[j] = dd, c
			}
			// The landing page's holds no sketches, the sessions
			// kinds' sessions.
			switch {
			case j == 0:
			case j < visitorSlots:
				c.addVisitor(sh, visitorUser, true)
			default:
				c.addVisitor(h, bits, true)
			}
		}
		if row.Amounts != nil {
			// The landing page's and the sessions kinds hold none.
			for j := visitorSlots; j < rollupSlotCount; j++ {
				last.cells[j].addAmounts(row.Amounts)
			}
		}
		run.events++
		if row.PageView {
			run.views++
		}
		if uint8(row.Flags)&protocol.FlagKeyEvent != 0 {
			run.keyEvents++
		}
		run.engageMs += int64(row.Engage)
	}
	last.leave(&run, &base)
}

// slotCounts are a cell's counters: addRows' running totals of rows, and
// their differences. They wrap as the cells' do, so a difference of
// totals is the sum of the rows between them all the same.
type slotCounts struct {
	events, views, keyEvents int32
	engageMs                 int64
}

// minus is the counts of the rows between totals b and c.
func (c slotCounts) minus(b slotCounts) slotCounts {
	return slotCounts{c.events - b.events, c.views - b.views, c.keyEvents - b.keyEvents, c.engageMs - b.engageMs}
}

// addCounts adds n to the cell's counters.
func (c *rollupCell) addCounts(n slotCounts) {
	c.events += n.events
	c.views += n.views
	c.keyEvents += n.keyEvents
	c.engageMs += n.engageMs
}

// leave gives each slot's cell its counters since base (run, the running
// totals, minus the slot's base), and starts every slot's stint anew at
// run.
func (s *rollupSlots) leave(run *slotCounts, base *[rollupSlotCount]slotCounts) {
	for j := range rollupSlotCount {
		if c := s.cells[j]; c != nil && base[j] != *run {
			c.addCounts(run.minus(base[j]))
		}
		base[j] = *run
	}
}

// addVisitor puts visitor hash h with bits into the cell's sketches: with
// dedupe, into its runs of visitors (seen), else at once.
func (c *rollupCell) addVisitor(h uint64, bits uint8, dedupe bool) {
	if dedupe && c.lastBits != 0 && c.lastVisitor == h {
		c.lastBits |= bits
		return
	}
	c.addRun(h, bits, dedupe)
}

// addRun is addVisitor of a visitor other than the cell's last.
func (c *rollupCell) addRun(h uint64, bits uint8, dedupe bool) {
	if !dedupe {
		c.sketches.insert(h, bits)
		return
	}
	if c.lastBits != 0 {
		if c.seen == nil {
			// Most cells of a chunk list 4 to 64 runs: the array starts
			// at minSeen, not at 1, 2, 4 … each a copy.
			c.seen = make([]seenVisitor, 0, minSeen)
		}
		c.seen = append(c.seen, seenOf(c.lastVisitor, c.lastBits))
	}
	c.lastVisitor, c.lastBits = h, bits
}

// slotDims are row's dims ids in rollupSlotKinds' order, hour its local
// hour. RollupKinds' are read at constant indices, not looked up kind by
// kind (TestSlotDims holds them to RollupKinds' order).
func slotDims(row *EventRow, hour int32) (dims [rollupSlotCount]int32) {
	d := &row.Dims
	dims[0], dims[1], dims[2], dims[3], dims[4] = row.SessionLanding, d[DimPagePath-1], d[DimTitle-1], row.SessionTraffic, hour
	dims[6], dims[7], dims[8], dims[9] = d[DimEventName-1], d[DimPagePath-1], d[DimHost-1], d[DimTitle-1]
	dims[10], dims[11], dims[12], dims[13] = d[DimReferrer-1], d[DimCountry-1], d[DimBrowser-1], d[DimOS-1]
	dims[14], dims[15], dims[16] = d[DimDevice-1], d[DimSource-1], d[DimChannelGroup-1]
	return dims
}

// rollupSlotCount is len(rollupSlotKinds), as a constant: loops over the
// slots by it index their arrays unchecked.
const rollupSlotCount = rollupExtraSlots + 11

// visitorSlots is the first of rollupSlotKinds' slots whose sketches hold
// visitors (the session's traffic, the hour, all events, RollupKinds'):
// the landing page's before it holds no sketches, the page's and title's
// sessions hold sessions.
const visitorSlots = 3

// addActive puts the visitor hash h into the active sketch of cell k,
// counting nothing else (a user made active on k's day after its events
// went into k).
func (a rollupAgg) addActive(k rollupKey, h uint64) {
	c := a.get(k)
	// The visitor is in the cell's users sketch already: adding it again
	// changes nothing.
	c.seen = append(c.seen, seenOf(h, visitorUser|visitorActive))
}

// addAmounts adds a to the cell's amounts.
func (c *rollupCell) addAmounts(a *Amounts) {
	if c.amounts == nil {
		c.amounts = new(Amounts)
	}
	c.amounts.add(a)
}

// addItem counts one item row's amounts in the item kinds' cells
// (ItemRollupKinds and RollupItems) of its local day; loc is its site's
// time zone. Item cells count no events and no visitors.
func (a rollupAgg) addItem(row *ItemRow, hours *hourCache) {
	if row.Amounts.zero() {
		return
	}
	day, _ := hours.of(row.TS)
	for i := -1; i < len(ItemRollupKinds); i++ {
		k := rollupKey{site: row.Site, day: day, kind: int32(RollupItems)}
		if i >= 0 {
			k.kind, k.dim = int32(ItemRollupKinds[i]), row.rollupDim(ItemRollupKinds[i])
		}
		c := a.get(k)
		c.addAmounts(&row.Amounts)
	}
}

// settle puts the visitors collected by add with dedupe into the sketches:
// each delta sketch is serialized from its sorted encoded hashes at once
// (settleSketches), not built hash by hash.
func (a rollupAgg) settle() { a.settleIn(new(sketchArena)) }

// settleIn is settle with the deltas' encodings, a few tens of bytes
// each, in arena's arrays (sketchArena), which the cells' lifetime bounds.
func (a rollupAgg) settleIn(arena *sketchArena) {
	var scratch [3][]uint32
	var list []byte
	for _, c := range a {
		if c.lastBits == 0 && len(c.seen) == 0 {
			continue
		}
		for j := range scratch {
			scratch[j] = scratch[j][:0]
		}
		put := func(v seenVisitor) {
			k := v.k
			scratch[0] = append(scratch[0], k)
			if v.bits&visitorActive != 0 {
				scratch[1] = append(scratch[1], k)
			}
			if v.bits&visitorNew != 0 {
				scratch[2] = append(scratch[2], k)
			}
		}
		if c.lastBits != 0 {
			// A visitor twice is one encoded hash (the sets are made
			// distinct): it may be in seen too, once or more.
			put(seenOf(c.lastVisitor, c.lastBits))
			c.lastBits = 0
		}
		for _, v := range c.seen {
			put(v)
		}
		c.seen = c.seen[:0]
		c.sketches.settleWith(&scratch, &list, arena)
	}
}

// WriteEvents copies rows (events of the transaction's site) to events
// (CopyEvents) and adds them and items (their item rows) to rollup_days,
// and changes, the UpsertSessions of the same rows, to session_rollups;
// the changes tell each row its session's traffic source
// (RollupSessionTraffic). Both tables' active sketches follow the
// user-days (rollup_user_days) it updates. The COPY runs on the
// connection while this goroutine aggregates the rows, items and sessions
// into cells, which needs no connection; the statements after it wait
// for it. The rollup deltas of earlier chunks (AddEvents) are written
// with these.
func (d *DeriveTx) WriteEvents(ctx context.Context, rows []EventRow, items []ItemRow, changes SessionChanges) error {
	return d.addRollups(ctx, rows, items, changes, true)
}

// AddEvents is WriteEvents of one chunk of a derivation that takes more:
// it copies rows and writes their user-days, but keeps their rollup and
// session rollup deltas in memory, adding them to the earlier chunks',
// for the WriteEvents of the last chunk, or Commit, to write once. A
// derivation's cells are much the same chunk after chunk (a site's days
// and dimensions), and writing a cell costs PostgreSQL about as much
// whatever its delta: reading and writing them once per derivation
// instead of once per chunk is what chunks save. rows may be released
// once it returns; the cells hold no reference to them.
func (d *DeriveTx) AddEvents(ctx context.Context, rows []EventRow, items []ItemRow, changes SessionChanges) error {
	copied, err := d.accumulate(ctx, rows, items, changes, true)
	if err == nil && copied != nil {
		err = <-copied
	}
	if err != nil {
		return err
	}
	return d.cells.writeDays(ctx, d)
}

// deriveCells are the deltas a derivation's chunks accumulated and has
// not written yet.
type deriveCells struct {
	agg      rollupAgg
	sessions sessionRollupAgg
	hours    *hourCache
	last     rollupSlots
	// days are the user-days of the last chunk aggregated, written by
	// writeDays (the next chunk's readUserDays reads them in the table).
	days userDays
	// arrays are the arrays of the statements that write the cells.
	arrays statementArrays
}

// writeDays writes the user-days of the chunk last aggregated.
func (c *deriveCells) writeDays(ctx context.Context, d *DeriveTx) error {
	days := c.days
	c.days = nil
	if err := days.write(ctx, d.tx, int32(d.site)); err != nil {
		return fmt.Errorf("postgres: derive site %d: %w", d.site, err)
	}
	return nil
}

// addRollups is WriteEvents, with copyRows false the rollups alone, of
// rows not in the events table (tests and benchmarks of the rollups).
func (d *DeriveTx) addRollups(ctx context.Context, rows []EventRow, items []ItemRow, changes SessionChanges, copyRows bool) error {
	copied, err := d.accumulate(ctx, rows, items, changes, copyRows)
	if err != nil {
		return err
	}
	return d.storeCells(ctx, copied)
}

// accumulate starts the COPY of rows (with copyRows) and adds the rows,
// items and changes to the derivation's cells (d.cells, made by the
// first chunk). It returns the COPY's channel (nil: none started, as on
// every error); when it returns one, the caller must receive from it
// before using d again.
func (d *DeriveTx) accumulate(ctx context.Context, rows []EventRow, items []ItemRow, changes SessionChanges, copyRows bool) (<-chan error, error) {
	if d.cells == nil {
		d.cells = d.newCells()
	}
	c := d.cells
	if len(rows) == 0 && len(items) == 0 && len(changes) == 0 {
		return nil, nil
	}
	traffic := make(map[[2]int64]*sessionState, len(changes))
	for i := range changes {
		traffic[[2]int64{changes[i].now.visitor, changes[i].id}] = &changes[i].now
	}
	var (
		prev [2]int64
		s    *sessionState
	)
	for i := range rows {
		// A session's events come in runs: a row of the previous row's
		// session takes its state without a look-up.
		if k := [2]int64{rows[i].Visitor, rows[i].Session}; i == 0 || k != prev {
			s, prev = traffic[k], k
		}
		if s != nil {
			rows[i].SessionTraffic, rows[i].SessionLanding = s.traffic, s.landing
		}
	}
	// Both read the table before the COPY: moveLanding the sessions'
	// earlier events, which the rows are not yet among (an earlier
	// chunk's are, and their counts are among the cells' deltas, where
	// the move takes them from); readUserDays sets the rows' DayActive,
	// which the aggregation reads, from the user-days earlier chunks
	// wrote too.
	if err := d.moveLanding(ctx, c.agg, rows, changes, c.hours); err != nil {
		return nil, fmt.Errorf("postgres: derive site %d: %w", d.site, err)
	}
	days, err := readUserDays(ctx, d.tx, d.site, rows, c.hours)
	if err != nil {
		return nil, fmt.Errorf("postgres: derive site %d: %w", d.site, err)
	}
	c.days = days
	// From here to the receive from copied, rows are only read, and
	// nothing but the COPY uses the connection.
	var copied <-chan error
	if copyRows && len(rows) > 0 {
		copied = d.copyEventsBeside(ctx, rows)
	}
	c.agg.addRows(rows, c.hours, &c.last)
	for i := range items {
		c.agg.addItem(&items[i], c.hours)
	}
	sessionRollupsOf(c.sessions, changes, rows, days, c.hours)
	days.activate(c.agg, c.sessions, int32(d.site))
	// The visitors collected go into the sketches chunk by chunk, so
	// the cells' memory does not grow with the events of every chunk.
	c.agg.settleIn(&c.arrays.arena)
	return copied, nil
}

// storeCells writes the derivation's cells and the last chunk's
// user-days, once copied (the last chunk's COPY; nil: none) is done.
func (d *DeriveTx) storeCells(ctx context.Context, copied <-chan error) error {
	c := d.cells
	if c == nil {
		if copied != nil {
			return <-copied
		}
		return nil
	}
	d.cells = nil
	keys, sessionKeys := sortedRollupKeys(c.agg), sortedRollupKeys(c.sessions)
	var (
		found []bool
		err   error
	)
	// The statements of both tables take their arrays from c's.
	if copied != nil {
		if found, err = d.readBesideCopy(ctx, c.agg, &c.arrays, keys, copied); err != nil {
			return err
		}
	}
	if err := storeRollupRoundsRead(ctx, d.tx, keys, found, c.agg, &c.arrays); err != nil {
		return fmt.Errorf("postgres: derive site %d: %w", d.site, err)
	}
	if err := storeRollupRounds(ctx, d.tx, sessionKeys, c.sessions, &c.arrays); err != nil {
		return fmt.Errorf("postgres: derive site %d: %w", d.site, err)
	}
	if err := c.writeDays(ctx, d); err != nil {
		return err
	}
	// Written: the statements are done with the cells.
	d.keepCells(c)
	return nil
}

// readBesideCopy waits for the events' COPY (copied) and returns its
// error. Should the COPY still run, it first reads the stored sketches of
// keys and merges them into agg on another of the pool's connections,
// and returns which keys have a row (nil: not read, left to the
// transaction). That read is the one the transaction would make: the
// derivation's locks keep every other writer of the site's rollup rows
// away until it commits (see storeRollupRounds), and it writes none of
// them before this read. It waits for a free connection only while the
// COPY runs, so it adds no wait in the pool, whose connections
// transactions waiting for the derivation's locks may hold.
func (d *DeriveTx) readBesideCopy(ctx context.Context, agg rollupTable, arr *statementArrays, keys []rollupKey, copied <-chan error) ([]bool, error) {
	select {
	case err := <-copied:
		return nil, err
	default:
	}
	acquireCtx, stopAcquire := context.WithCancel(ctx)
	defer stopAcquire()
	var copyErr error
	copyDone := make(chan struct{})
	go func() {
		copyErr = <-copied
		stopAcquire()
		close(copyDone)
	}()
	var found []bool
	var err error
	if len(keys) > 0 {
		found, err = d.readApart(ctx, acquireCtx, agg, arr, keys)
	}
	<-copyDone
	switch {
	case copyErr != nil:
		return nil, copyErr
	case errors.Is(err, errNoConnFree):
		return nil, nil
	case err != nil:
		return nil, fmt.Errorf("postgres: derive site %d: %w", d.site, err)
	}
	return found, nil
}

// errNoConnFree is readApart's error when it found no connection free in
// time.
var errNoConnFree = errors.New("no connection free")

// readApart is agg's readAndMerge of keys on a connection of its own,
// acquired within acquireCtx (errNoConnFree when it is done first, ctx
// not). Its statement is planned for its arrays (an unnamed statement,
// described first), as the transaction's are (plan_cache_mode,
// BeginDerive).
func (d *DeriveTx) readApart(ctx, acquireCtx context.Context, agg rollupTable, arr *statementArrays, keys []rollupKey) ([]bool, error) {
	conn, err := d.s.pool.Acquire(acquireCtx)
	if err != nil {
		if ctx.Err() == nil && acquireCtx.Err() != nil {
			return nil, errNoConnFree
		}
		return nil, fmt.Errorf("read rollup_days: %w", err)
	}
	defer conn.Release()
	return agg.readAndMerge(ctx, describeExec{conn.Conn(), paramBufOf(conn.Conn())}, keys, arr)
}

// describeExec runs its connection's statements as unnamed statements
// whose parameter types it asks the server first
// (pgx.QueryExecModeDescribeExec): planned for their values at every
// execution, never a cached generic plan. Their arrays make room for
// their Bind message (pb, as a bindRoomTx's).
type describeExec struct {
	c  *pgx.Conn
	pb *paramBuf
}

func (e describeExec) Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error) {
	e.pb.arm(e.c)
	defer e.pb.disarm()
	return e.c.Query(ctx, sql, append([]any{pgx.QueryExecModeDescribeExec}, args...)...)
}

// store writes the deltas in a to rollup_days inside tx (storeRollupRounds).
func (a rollupAgg) store(ctx context.Context, tx pgx.Tx) error {
	a.settle()
	return storeRollupRounds(ctx, tx, sortedRollupKeys(a), a, nil)
}

// keyArrays are keys as the parallel arrays $1..$4 of the rollup statements.
func keyArrays(keys []rollupKey) []any { return (*statementArrays)(nil).keyArrays(keys) }

// keyUnnest is the rows of keyArrays, numbered from 1 (i), as u.
var keyUnnest = zipArrays(1, arrayColumns(rollupKeyColumns), "i") + " AS u"

// rollupKeyColumns are the key columns of the rollup statements' $1..$4.
const rollupKeyColumns = "site_id int, kind int2, day date, dim_id int"

// rollupRows are the rows of the rollup_days statements' $1..$12: the
// keys, then values' arrays.
var rollupRows = arrayColumns(rollupKeyColumns + `, events int, views int, key_events int, engage int8,
	users bytea, active bytea, new_users bytea, amounts text`)

// rollupRowsZip and rollupRowsNumbered are rollupRows as a subquery,
// the second numbered from 1 (i).
var rollupRowsZip, rollupRowsNumbered = zipArrays(1, rollupRows, ""), zipArrays(1, rollupRows, "i")

// sketches are the delta sketches of key k.
func (a rollupAgg) sketches(k rollupKey) *cellSketches { return &a[k].sketches }

func (a rollupAgg) readAndMerge(ctx context.Context, q Querier, keys []rollupKey, arr *statementArrays) ([]bool, error) {
	return readAndMergeSketches(ctx, q, "rollup_days", keys, a.sketches, arr)
}

// values are the arrays $5..$12 of a's cells for keys: counters,
// serialized sketches (NULL for an empty one) and amounts as float8[]
// literals (NULL: none), in arr.
func (a rollupAgg) values(keys []rollupKey, arr *statementArrays) ([]any, error) {
	n := len(keys)
	events, views, keyEvents := arr.int32s(0, n), arr.int32s(1, n), arr.int32s(2, n)
	engage := arr.int64s(0, n)
	amounts := arr.amountsFor(n)
	for i, k := range keys {
		c := a[k]
		events[i], views[i], keyEvents[i], engage[i] = c.events, c.views, c.keyEvents, c.engageMs
		amounts[i] = amountsText(c.amounts)
	}
	sk, err := sketchArrays(keys, a.sketches, arr)
	if err != nil {
		return nil, err
	}
	return []any{events, views, keyEvents, engage, sk[0], sk[1], sk[2], amounts}, nil
}

// write updates the rows of keys: counters add, sketches are
// replaced by the merged ones (NULL: unchanged, kept). Its arrays are
// arr's (nil: new ones).
func (a rollupAgg) write(ctx context.Context, tx pgx.Tx, keys []rollupKey, arr *statementArrays) error {
	if len(keys) == 0 {
		return nil
	}
	vals, err := a.values(keys, arr)
	if err != nil {
		return err
	}
	if _, err := tx.Exec(ctx, `UPDATE rollup_days r SET events = r.events + u.events, page_views = r.page_views + u.views,
			key_events = r.key_events + u.key_events, engagement_ms = r.engagement_ms + u.engage,
			users = coalesce(u.users, r.users), active_users = coalesce(u.active, r.active_users),
			new_users = coalesce(u.new_users, r.new_users),
			amounts = CASE WHEN u.amounts IS NULL THEN r.amounts ELSE rollup_amounts_add(r.amounts, u.amounts::float8[]) END
		FROM `+rollupRowsZip+` AS u
		WHERE r.site_id = u.site_id AND r.kind = u.kind AND r.day = u.day AND r.dim_id = u.dim_id`,
		append(arr.keyArrays(keys), vals...)...); err != nil {
		return fmt.Errorf("update rollups: %w", err)
	}
	return nil
}

// insert adds rows for keys, in key order, and reports which it inserted;
// a key inserted by another transaction meanwhile is left alone. Its
// arrays are arr's (nil: new ones).
func (a rollupAgg) insert(ctx context.Context, tx pgx.Tx, keys []rollupKey, arr *statementArrays) ([]bool, error) {
	if len(keys) == 0 {
		return nil, nil
	}
	vals, err := a.values(keys, arr)
	if err != nil {
		return nil, err
	}
	return insertRollupRows(ctx, tx, keys, arr, `INSERT INTO rollup_days (site_id, kind, day, dim_id, events, page_views, key_events, engagement_ms, users, active_users, new_users, amounts)
		SELECT site_id, kind, day, dim_id, events, views, key_events, engage, users, active, new_users, amounts::float8[]
		FROM `+rollupRowsNumbered+` AS u
		ORDER BY i`, vals)
}

// encodeSketch serializes sk, nil for an empty sketch (or nil sk).
func encodeSketch(sk *hyperloglog.Sketch) ([]byte, error) {
	if sk == nil {
		return nil, nil
	}
	// Estimate folds the sparse sketch's buffer into its compact list,
	// which serializes smaller.
	if sk.Estimate() == 0 {
		return nil, nil
	}
	b, err := sk.MarshalBinary()
	if err != nil {
		return nil, fmt.Errorf("encode sketch: %w", err)
	}
	return b, nil
}

// MergeSketches merges the serialized sketches of col (nil: empty) into
// sk. A sparse one is read as its set of encoded hashes (sparseUnion), not
// decoded into a sketch of its own: the union of a group's sets goes into
// sk through the library's InsertHash (hashOfEncoded), which holds what
// merging each would. A report merges thousands of small daily sketches,
// where building a sketch per input cost most of its time. Dense ones are
// merged by the library.
func MergeSketches(sk *hyperloglog.Sketch, col [][]byte) error {
	set, _, err := sparseUnion(col, func(b []byte) error { return MergeSketch(sk, b) })
	if err != nil {
		return err
	}
	for _, k := range set {
		sk.InsertHash(hashOfEncoded(k))
	}
	return nil
}

// sparseUnion is the union of the encoded hashes of the sparse sketches of
// col (nil: empty), sorted and distinct, and whether all of them were
// sparse. A dense one goes to dense; without dense, it ends the union
// (nil, false).
func sparseUnion(col [][]byte, dense func(b []byte) error) ([]uint32, bool, error) {
	var set []uint32
	all := true
	for _, b := range col {
		if len(b) == 0 {
			continue
		}
		var sparse bool
		var err error
		if set, sparse, err = appendSparse(set, b); err != nil {
			return nil, false, err
		}
		if !sparse {
			all = false
			if dense == nil {
				return nil, false, nil
			}
			if err := dense(b); err != nil {
				return nil, false, err
			}
		}
	}
	slices.Sort(set)
	return slices.Compact(set), all, nil
}

// SparseUnionEstimate is the estimate of a sparse sketch merged from the
// serialized sketches of col (nil: empty), computed from the union of
// their encoded hashes without building it: ok is false when one of them
// is dense or the union would not stay sparse, where the caller merges.
// It equals the library's: a sparse sketch counts its distinct encodings
// by linear counting over 2^25; a sparse list of the union's size never
// turned dense on the way (any subset's list is no longer).
func SparseUnionEstimate(col [][]byte) (est uint64, ok bool, err error) {
	set, all, err := sparseUnion(col, nil)
	if err != nil || !all || sparseListBytes(set) > denseAfter {
		return 0, false, err
	}
	const mp = 1 << sketchPP
	return uint64(mp * math.Log(mp/float64(mp-len(set)))), true, nil
}

// MergeSketch merges the serialized sketch b (nil: empty) into sk.
func MergeSketch(sk *hyperloglog.Sketch, b []byte) error {
	if len(b) == 0 {
		return nil
	}
	other := NewSketch()
	if err := other.UnmarshalBinary(b); err != nil {
		return fmt.Errorf("decode sketch: %w", err)
	}
	if err := sk.Merge(other); err != nil {
		return fmt.Errorf("merge sketch: %w", err)
	}
	return nil
}
