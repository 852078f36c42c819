package postgres

import (
	"bytes"
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/axiomhq/hyperloglog"
	"github.com/jackc/pgx/v5"

	"github.com/avila-analytics/avila/protocol"
)

// SessionRollupKinds are the dims kinds with session_rollups rows besides
// kind 0 (every session): the session dimensions a dashboard groups by.
// All are fixed when a session's row is first written (its first event's
// client dimensions, its traffic source), so a session never moves
// between rows of a kind.
var SessionRollupKinds = []DimKind{DimLanguage, DimCountry, DimBrowser, DimOS, DimDevice,
	DimSource, DimMedium, DimCampaign, DimChannelGroup}

// engagedAfter is GA4's engaged session engagement: sessions whose events
// report engagement time of 10 seconds or more are engaged.
const engagedAfter = 10 * time.Second

// sessionState is a sessions row's values that session rollups count.
type sessionState struct {
	site                         int32
	visitor                      int64
	ts, last                     time.Time
	events, pageViews, keyEvents int32
	engage                       int64
	flags                        int16
	dims                         []int32 // by SessionRollupKinds
	traffic                      int32   // traffic_profiles id; set by upsertSessions only
	landing                      int32   // landing page (page_id); set by upsertSessions only
	// dayActive: the visitor is active on a local day on which the
	// session has an event (GA4's is_active_user over its events), which
	// puts it into the active sketches; set by the session's reader.
	dayActive bool
}

// engaged is GA4's engaged session, as the query API's engagedSessions
// counts it over sessions rows: engagement time of 10 s or more, 2 or more
// page views, a key event (FlagKeyEvent, set by the write stage from the site's key events), or the sender's seg=1. How
// long the session lasted (last_ts - ts, its duration) does not count.
func (s *sessionState) engaged() bool {
	return s.flags&int16(protocol.FlagEngaged) != 0 ||
		s.engage >= engagedAfter.Milliseconds() || s.pageViews >= 2 || s.keyEvents > 0
}

// active is whether one of the session's events makes its visitor active
// (eventActive) on its day; the visitor may be active on a day of the
// session by other events too (dayActive).
func (s *sessionState) active() bool {
	return s.flags&int16(protocol.FlagEngaged|protocol.FlagFirstVisit) != 0 || s.engage > 0
}

// sessionRollupCell accumulates one session_rollups row's delta.
type sessionRollupCell struct {
	sessions, engaged, events, views, keyEvents int32
	durationUs, engageMs                        int64
	sketches                                    cellSketches
}

// sessionRollupAgg is a batch's session rollup deltas.
type sessionRollupAgg map[rollupKey]*sessionRollupCell

// sessionCellsRoom is room for a session's cells (appendCells) in an
// array on the caller's stack: one more than SessionRollupKinds, and some
// to spare.
const sessionCellsRoom = 16

// appendCells appends the session_rollups cells of s to out: every kind's
// at the local day it began. Callers pass an array's room
// (sessionCellsRoom): a slice made per session cost an allocation each.
func (s *sessionState) appendCells(out []rollupKey, loc *time.Location) []rollupKey {
	return s.appendCellsOn(out, localDay(s.ts, loc))
}

// appendCellsOn is appendCells of s, which began on local day day.
func (s *sessionState) appendCellsOn(out []rollupKey, day int32) []rollupKey {
	out = append(out, rollupKey{site: s.site, day: day})
	for i, kind := range SessionRollupKinds {
		out = append(out, rollupKey{site: s.site, kind: int32(kind), day: day, dim: s.dims[i]})
	}
	return out
}

// add counts s at its rows (sign 1) or takes it back out (sign -1: the
// session's values before this batch, which the rows counted already).
// Sketches only grow: a visitor taken out stays in (the session is
// counted again, with its new values, at the same rows). Its visitor goes
// into the active sketches when s.dayActive.
func (a sessionRollupAgg) add(s *sessionState, loc *time.Location, sign int32) {
	var cells [sessionCellsRoom]rollupKey
	a.addCells(s, s.appendCells(cells[:0], loc), sign, nil)
}

// sessionCellMemo holds the cells addCells found last, by their place
// in a session's cells: sessions one after the other mostly share their
// day and client dimensions, whose cells then cost no look-up by their
// key of 16 bytes.
type sessionCellMemo struct {
	keys  [sessionCellsRoom]rollupKey
	cells [sessionCellsRoom]*sessionRollupCell
}

// addCells is add of s at its cells keys (appendCells), remembering
// them in memo (nil: none). The memo's cells must be a's.
func (a sessionRollupAgg) addCells(s *sessionState, keys []rollupKey, sign int32, memo *sessionCellMemo) {
	h := VisitorHash(uint64(s.visitor))
	engaged := int32(0)
	if s.engaged() {
		engaged = 1
	}
	active, first := s.dayActive, s.flags&int16(protocol.FlagFirstVisit) != 0
	for i, k := range keys {
		var c *sessionRollupCell
		if memo != nil && i < len(memo.keys) && memo.cells[i] != nil && memo.keys[i] == k {
			c = memo.cells[i]
		} else {
			if c = a[k]; c == nil {
				c = new(sessionRollupCell)
				a[k] = c
			}
			if memo != nil && i < len(memo.keys) {
				memo.keys[i], memo.cells[i] = k, c
			}
		}
		c.sessions += sign
		c.engaged += sign * engaged
		c.events += sign * s.events
		c.views += sign * s.pageViews
		c.keyEvents += sign * s.keyEvents
		c.durationUs += int64(sign) * s.last.Sub(s.ts).Microseconds()
		c.engageMs += int64(sign) * s.engage
		if sign > 0 {
			c.sketches.collect(h, visitorBits(active, first))
		}
	}
}

// addActive adds visitor hash h to the active sketch of cell k: a user
// made active on a day on which its session there has an event. The
// visitor is in the cell's users sketch already.
func (a sessionRollupAgg) addActive(k rollupKey, h uint64) {
	c := a[k]
	if c == nil {
		c = new(sessionRollupCell)
		a[k] = c
	}
	c.sketches.collect(h, visitorUser|visitorActive)
}

// sessionChange is a session a batch wrote: its values after the batch,
// and before it when the row existed.
type sessionChange struct {
	id     int64 // the session id
	now    sessionState
	before *sessionState
}

// sessionRollupsOf adds to agg the session_rollups deltas of the changes
// of an UpsertSessions of rows (the derivation's events, DayActive set by
// readUserDays): a session's visitor is active in its cells when active on
// a day of the session's events in rows, or on one of its earlier days
// (which added it, or remembers the cells: userDays.activate).
//
// A session changed by two chunks of a derivation is counted by the
// first with its values then, taken out by the second (its before, read
// from the row the first wrote) and counted with its new values: the
// deltas add up to what one derivation of both chunks counts.
func sessionRollupsOf(agg sessionRollupAgg, changes SessionChanges, rows []EventRow, days userDays, hours *hourCache) {
	eventDays := make(map[[2]int64][]int32, len(changes))
	var (
		last    [2]int64
		lastDay int32
	)
	for i := range rows {
		k := [2]int64{rows[i].Visitor, rows[i].Session}
		day, _ := hours.of(rows[i].TS)
		// A session's events come in runs, mostly of one day: a row of
		// the previous row's session and day adds nothing.
		if i > 0 && k == last && day == lastDay {
			continue
		}
		last, lastDay = k, day
		if !slices.Contains(eventDays[k], day) {
			eventDays[k] = append(eventDays[k], day)
		}
	}
	// A session's cells are found once for sessionActive and add, its
	// local day by hours (localDay's, by the quarter hour); the cells of
	// the sessions before it are remembered (memo).
	var (
		cells, beforeCells [sessionCellsRoom]rollupKey
		memo               sessionCellMemo
	)
	for i := range changes {
		c := &changes[i]
		day, _ := hours.of(c.now.ts)
		keys := c.now.appendCellsOn(cells[:0], day)
		c.now.dayActive = days.sessionActive(c.now.visitor, eventDays[[2]int64{c.now.visitor, c.id}], keys)
		agg.addCells(&c.now, keys, 1, &memo)
		if c.before != nil {
			day, _ := hours.of(c.before.ts)
			agg.addCells(c.before, c.before.appendCellsOn(beforeCells[:0], day), -1, &memo)
		}
	}
}

// rollupTable is a rollups table's part of storeRollupRounds. Each
// statement takes its parameters' arrays from arr (nil: new ones).
type rollupTable interface {
	// readAndMerge reads the stored rows of keys, merges their sketches
	// into the deltas and reports which keys have a row.
	readAndMerge(ctx context.Context, q Querier, keys []rollupKey, arr *statementArrays) ([]bool, error)
	// write adds the deltas of keys to their rows.
	write(ctx context.Context, tx pgx.Tx, keys []rollupKey, arr *statementArrays) error
	// insert adds rows for keys and reports which it inserted; a key
	// another transaction inserted meanwhile is left alone.
	insert(ctx context.Context, tx pgx.Tx, keys []rollupKey, arr *statementArrays) ([]bool, error)
}

// storeRollupRounds writes deltas of keys (sorted) to a rollups table
// inside tx. Counters add up in SQL; sketches are merged here with the
// stored ones, read without row locks: tx must keep every other writer of
// the keys' site away until it commits, and every writer does so. A
// derivation holds the site's derive lock (one derivation of a site at a
// time) and the sites row FOR SHARE; rebuilds, erasures, retention and
// packing hold the sites row FOR UPDATE, which waits for a derivation's
// share lock and makes derivations of the site wait. A row lock per cell
// kept nothing else away, and cost a WAL record per cell and derivation.
// Keys without a row are inserted with their values; should a key have
// been inserted meanwhile all the same (ON CONFLICT DO NOTHING), it is
// read and merged on the next round.
func storeRollupRounds(ctx context.Context, tx pgx.Tx, pending []rollupKey, t rollupTable, arr *statementArrays) error {
	return storeRollupRoundsRead(ctx, tx, pending, nil, t, arr)
}

// storeRollupRoundsRead is storeRollupRounds whose first round's
// readAndMerge was done already and found found, unless found is nil.
func storeRollupRoundsRead(ctx context.Context, tx pgx.Tx, pending []rollupKey, found []bool, t rollupTable, arr *statementArrays) error {
	// A key raced in one round is a committed row in the next: rounds
	// end. (Only rebuilds, erasures, retention and packing delete rows,
	// and they exclude the writers of their site.)
	for len(pending) > 0 {
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("store rollups: %w", err)
		}
		if found == nil {
			var err error
			if found, err = t.readAndMerge(ctx, tx, pending, arr); err != nil {
				return err
			}
		}
		existing, missing := arr.split(pending, found)
		if err := t.write(ctx, tx, existing, arr); err != nil {
			return err
		}
		inserted, err := t.insert(ctx, tx, missing, arr)
		if err != nil {
			return err
		}
		pending, found = pending[:0], nil
		for i, k := range missing {
			if !inserted[i] {
				pending = append(pending, k)
			}
		}
	}
	return nil
}

// sketches are the delta sketches of key k.
func (a sessionRollupAgg) sketches(k rollupKey) *cellSketches { return &a[k].sketches }

func (a sessionRollupAgg) readAndMerge(ctx context.Context, q Querier, keys []rollupKey, arr *statementArrays) ([]bool, error) {
	return readAndMergeSketches(ctx, q, "session_rollups", keys, a.sketches, arr)
}

// sessionRollupValues are the columns after the key of session_rollups'
// statements; sessionRollupRows gives them their array types.
const sessionRollupValues = "sessions, engaged, events, page_views, key_events, duration_us, engagement_ms, users, active_users, new_users"

// sessionRollupRows are the rows of the session_rollups statements'
// $1..$14: the keys, then values' arrays.
var sessionRollupRows = arrayColumns(rollupKeyColumns + `, sessions int, engaged int, events int, page_views int, key_events int,
	duration_us int8, engagement_ms int8, users bytea, active_users bytea, new_users bytea`)

// values are the arrays $5..$14 of the cells of keys, in arr.
func (a sessionRollupAgg) values(keys []rollupKey, arr *statementArrays) ([]any, error) {
	n := len(keys)
	sessions, engaged, events, views, keyEvents := arr.int32s(0, n), arr.int32s(1, n), arr.int32s(2, n), arr.int32s(3, n), arr.int32s(4, n)
	duration, engage := arr.int64s(0, n), arr.int64s(1, n)
	for i, k := range keys {
		c := a[k]
		sessions[i], engaged[i], events[i], views[i], keyEvents[i] = c.sessions, c.engaged, c.events, c.views, c.keyEvents
		duration[i], engage[i] = c.durationUs, c.engageMs
	}
	sk, err := sketchArrays(keys, a.sketches, arr)
	if err != nil {
		return nil, err
	}
	return []any{sessions, engaged, events, views, keyEvents, duration, engage, sk[0], sk[1], sk[2]}, nil
}

func (a sessionRollupAgg) write(ctx context.Context, tx pgx.Tx, keys []rollupKey, arr *statementArrays) error {
	if len(keys) == 0 {
		return nil
	}
	vals, err := a.values(keys, arr)
	if err != nil {
		return err
	}
	if _, err := tx.Exec(ctx, `UPDATE session_rollups r SET sessions = r.sessions + u.sessions, engaged = r.engaged + u.engaged,
			events = r.events + u.events, page_views = r.page_views + u.page_views, key_events = r.key_events + u.key_events,
			duration_us = r.duration_us + u.duration_us, engagement_ms = r.engagement_ms + u.engagement_ms,
			users = coalesce(u.users, r.users), active_users = coalesce(u.active_users, r.active_users),
			new_users = coalesce(u.new_users, r.new_users)
		FROM `+sessionRollupRowsZip+` AS u
		WHERE r.site_id = u.site_id AND r.kind = u.kind AND r.day = u.day AND r.dim_id = u.dim_id`,
		append(arr.keyArrays(keys), vals...)...); err != nil {
		return fmt.Errorf("update session rollups: %w", err)
	}
	return nil
}

// sessionRollupRowsZip and sessionRollupRowsNumbered are the rows of
// sessionRollupRows' arrays from $1, the second numbered as i.
var sessionRollupRowsZip, sessionRollupRowsNumbered = zipArrays(1, sessionRollupRows, ""), zipArrays(1, sessionRollupRows, "i")

func (a sessionRollupAgg) insert(ctx context.Context, tx pgx.Tx, keys []rollupKey, arr *statementArrays) ([]bool, error) {
	if len(keys) == 0 {
		return nil, nil
	}
	vals, err := a.values(keys, arr)
	if err != nil {
		return nil, err
	}
	return insertRollupRows(ctx, tx, keys, arr, `INSERT INTO session_rollups (site_id, kind, day, dim_id, `+sessionRollupValues+`)
		SELECT site_id, kind, day, dim_id, `+sessionRollupValues+`
		FROM `+sessionRollupRowsNumbered+` AS u
		ORDER BY i`, vals)
}

// cellSketches are a rollup cell's sketches of visitors (users, active
// users, new users): the deltas of a derivation, then, once merged with
// the stored row's, the merged ones' encodings.
type cellSketches struct {
	// sk are the deltas; nil: empty (a sketch is made by its first
	// insert: many cells count no active or new user).
	sk [3]*hyperloglog.Sketch
	// delta caches encodeSketch of sk (valid where encoded is set).
	delta   [3][]byte
	encoded [3]bool
	// pend are encoded hashes collected for the deltas and not in them
	// yet (collect); every reader of the deltas settles them first.
	pend [3][]uint32
	// enc is the encoding of a merged sketch (set by the merge).
	enc [3][]byte
	// same marks a merged sketch equal to the stored one: the row keeps
	// its value and no bytes are sent for it. Visitors coming back within
	// a day leave most of a busy site's sketches unchanged.
	same [3]bool
}

// insert adds visitor hash h to the sketches its bits (visitorUser …)
// name.
func (c *cellSketches) insert(h uint64, bits uint8) {
	c.add(0, h)
	if bits&visitorActive != 0 {
		c.add(1, h)
	}
	if bits&visitorNew != 0 {
		c.add(2, h)
	}
}

// add adds visitor hash h to delta sketch j.
func (c *cellSketches) add(j int, h uint64) {
	c.sketch(j).InsertHash(h)
	c.encoded[j] = false
}

// maxPending bounds the hashes collect keeps per sketch before it settles
// them.
const maxPending = 4096

// collect is insert for a caller with many visitors: their encoded hashes
// wait in pend and go into the deltas together (settle).
func (c *cellSketches) collect(h uint64, bits uint8) {
	k := encodeHash(h)
	c.pend[0] = append(c.pend[0], k)
	if bits&visitorActive != 0 {
		c.pend[1] = append(c.pend[1], k)
	}
	if bits&visitorNew != 0 {
		c.pend[2] = append(c.pend[2], k)
	}
	if len(c.pend[0]) >= maxPending {
		c.settlePending()
	}
}

// settlePending puts the collected hashes into the deltas.
func (c *cellSketches) settlePending() {
	if len(c.pend[0]) == 0 {
		return
	}
	p := c.pend
	c.pend = [3][]uint32{}
	c.settle(&p)
}

// sketch is delta sketch j, made (empty, or from its serialization) if
// there is none.
func (c *cellSketches) sketch(j int) *hyperloglog.Sketch {
	c.settlePending()
	if c.sk[j] != nil {
		return c.sk[j]
	}
	c.sk[j] = NewSketch()
	if c.encoded[j] && len(c.delta[j]) > 0 {
		if err := c.sk[j].UnmarshalBinary(c.delta[j]); err != nil {
			panic("BUG: a delta sketch's own serialization does not decode: " + err.Error())
		}
	}
	return c.sk[j]
}

// deltaBytes is encodeSketch of delta sketch j, encoded once.
func (c *cellSketches) deltaBytes(j int) ([]byte, error) {
	c.settlePending()
	if !c.encoded[j] {
		b, err := encodeSketch(c.sk[j])
		if err != nil {
			return nil, err
		}
		c.delta[j], c.encoded[j] = b, true
	}
	return c.delta[j], nil
}

// settle adds the encoded hashes (encodeHash) of each delta sketch j, in
// any order and with repeats; it sorts them. An empty delta sketch takes
// them as its serialization, what the library serializes for a sketch of
// those hashes inserted in any order, as long as its sparse list takes no
// more than 2^14 bytes: then none of the library's checks could turn it
// dense. A delta held as its serialization (settled before: a
// derivation's cells settle chunk after chunk) takes them as one merged
// into it (mergeEncoded), as a stored sketch takes a delta. Others go
// into the library's sketch hash by hash, which costs several times as
// much.
//
// A list equal to the users list (hashes[0]) as given (every visitor of
// the cell active, or new: most cells) is sorted and serialized once:
// the delta sketches then share their bytes, which nothing writes to
// (a sparse serialization decodes into a copy; a merge makes new bytes).
func (c *cellSketches) settle(hashes *[3][]uint32) { c.settleWith(hashes, nil, nil) }

// settleWith is settle, encoding the lists of sets that fit into *list
// (nil: none; grown as needed) first (sparseEncodingIn).
func (c *cellSketches) settleWith(hashes *[3][]uint32, list *[]byte, arena *sketchArena) {
	var sameAsUsers [3]bool
	for j := 1; j < len(hashes); j++ {
		sameAsUsers[j] = len(hashes[j]) > 0 && slices.Equal(hashes[j], hashes[0])
	}
	var users []uint32 // hashes[0], sorted and distinct
	var usersEnc []byte
	usersFresh := false // delta 0 was empty and took usersEnc
	// usersWas and usersNow are delta 0's serialization before and
	// after a merge of users into it (usersMerged).
	var usersWas, usersNow []byte
	usersMerged := false
	for j, set := range hashes {
		if len(set) == 0 {
			continue
		}
		held := c.sk[j] == nil && c.encoded[j] && len(c.delta[j]) > 0 // a serialization, not empty
		fresh := c.sk[j] == nil && !held
		if sameAsUsers[j] {
			set = users
			if fresh && usersFresh {
				c.delta[j], c.encoded[j] = usersEnc, true
				continue
			}
			if held && usersMerged && bytes.Equal(c.delta[j], usersWas) {
				c.delta[j] = usersNow
				continue
			}
		} else {
			sortHashes(set)
			set = slices.Compact(set)
		}
		if j == 0 {
			users = set
		}
		if (fresh || held) && list != nil && 5*len(set) <= denseAfter {
			// The list takes no more than 5 bytes a value: it fits.
			enc := sparseEncodingIn(set, list, arena)
			if fresh {
				c.delta[j], c.encoded[j] = enc, true
				if j == 0 {
					usersEnc, usersFresh = c.delta[j], true
				}
				continue
			}
			if merged, ok := mergeEncoded(c.delta[j], enc); ok {
				if j == 0 {
					usersWas, usersNow, usersMerged = c.delta[j], merged, true
				}
				c.delta[j] = merged
				continue
			}
		}
		size := sparseListBytes(set)
		if fresh && size <= denseAfter {
			c.delta[j], c.encoded[j] = sparseEncodingSized(set, size), true
			if j == 0 {
				usersEnc, usersFresh = c.delta[j], true
			}
			continue
		}
		if held && size <= denseAfter {
			if enc, ok := mergeEncoded(c.delta[j], sparseEncodingSized(set, size)); ok {
				if j == 0 {
					usersWas, usersNow, usersMerged = c.delta[j], enc, true
				}
				c.delta[j] = enc
				continue
			}
		}
		sk := c.sketch(j)
		for _, k := range set {
			sk.InsertHash(hashOfEncoded(k))
		}
		c.encoded[j] = false
	}
}

// merge merges the stored encoding b (nil: empty) of sketch j: the stored
// sketch takes the delta's visitors, and is kept when they change nothing.
// The merge works on the encodings (mergeEncoded); forms it does not
// know go through the library.
func (c *cellSketches) merge(j int, b []byte) error {
	_, err := c.mergeOnce(j, b)
	return err
}

// mergeOnce is merge, and reports whether the merge was mergeEncoded's.
func (c *cellSketches) mergeOnce(j int, b []byte) (encoded bool, err error) {
	if len(b) == 0 {
		return false, nil
	}
	d, err := c.deltaBytes(j)
	if err != nil {
		return false, err
	}
	enc, ok := mergeEncoded(b, d)
	if !ok {
		stored := NewSketch()
		if err := stored.UnmarshalBinary(b); err != nil {
			return false, fmt.Errorf("decode sketch: %w", err)
		}
		if len(d) > 0 {
			if err := stored.Merge(c.sketch(j)); err != nil {
				return false, fmt.Errorf("merge sketch: %w", err)
			}
		}
		if enc, err = encodeSketch(stored); err != nil {
			return false, err
		}
	}
	// Equal bytes are an equal sketch; a sketch equal in another
	// encoding is merely written again.
	c.enc[j], c.same[j] = enc, bytes.Equal(enc, b)
	return ok, nil
}

// mergeStored merges a stored row's sketches (users, active users, new
// users; the markers expanded) into the deltas (merge). A users or new
// users sketch whose stored bytes and delta bytes both equal the active
// sketch's (nearly every cell: its visitors are active, and stored as the
// marker) merges to the active one's result, which mergeEncoded, a
// function of the bytes alone, gave: it is taken, not computed again.
func (c *cellSketches) mergeStored(stored *[3][]byte) error {
	activeEncoded, err := c.mergeOnce(1, stored[1])
	if err != nil {
		return err
	}
	for _, j := range markedSketches {
		if activeEncoded && bytes.Equal(stored[j], stored[1]) {
			dj, err := c.deltaBytes(j)
			if err != nil {
				return err
			}
			d1, err := c.deltaBytes(1)
			if err != nil {
				return err
			}
			if bytes.Equal(dj, d1) {
				c.enc[j], c.same[j] = c.enc[1], c.same[1]
				continue
			}
		}
		if err := c.merge(j, stored[j]); err != nil {
			return err
		}
	}
	return nil
}

// readAndMergeSketches reads the rows of keys in table (with columns
// users, active_users, new_users), merges their sketches into those of
// sketches(key) and reports which keys have a row. It takes no row lock:
// the caller holds a lock that keeps every other writer of the site's
// rows away until it commits (storeRollupRounds).
func readAndMergeSketches(ctx context.Context, q Querier, table string, keys []rollupKey, sketches func(rollupKey) *cellSketches, arr *statementArrays) ([]bool, error) {
	found := make([]bool, len(keys))
	res, err := q.Query(ctx, `SELECT u.i, r.users, r.active_users, r.new_users FROM `+keyUnnest+`
		JOIN `+table+` r USING (site_id, kind, day, dim_id)`, arr.keyArrays(keys)...)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", table, err)
	}
	defer res.Close()
	// One scanner, not destinations per row: a row's would cost three
	// allocations besides its sketches' bytes. Each scan sets all of
	// them; the sketches go into arena.
	arena := new(sketchArena)
	if arr != nil {
		arena = &arr.arena
	}
	sc := newSketchRows(res.FieldDescriptions(), arena)
	scanned := &sc.scanned
	for res.Next() {
		if err := sc.scan(res); err != nil {
			return nil, fmt.Errorf("read %s: %w", table, err)
		}
		i := sc.i
		if i < 1 || i > int64(len(keys)) {
			return nil, fmt.Errorf("read %s: BUG: ordinality %d of %d keys", table, i, len(keys))
		}
		found[i-1] = true
		stored := [3][]byte{scanned[0].v, scanned[1].v, scanned[2].v}
		ExpandSketches(&stored)
		if err := sketches(keys[i-1]).mergeStored(&stored); err != nil {
			return nil, fmt.Errorf("read %s: %w", table, err)
		}
	}
	if err := res.Err(); err != nil {
		return nil, fmt.Errorf("read %s: %w", table, err)
	}
	return found, nil
}

// sketchArena holds the stored sketches a read scans (arenaBytes) and
// the deltas' encodings, in arrays of its chunkPool: pgx copies
// each bytea into a slice of its own, three allocations a row. The cells
// keep slices of them (a merge that changes nothing is the stored bytes),
// so an array is not written over until reset, which the owner of the
// cells calls once none is left (deriveCells.recycle): until then it
// lives while a cell holds any of it, as long as the cells do.
type sketchArena struct {
	buf []byte // the rest of the array handed out last
	chunkPool
}

// reset takes back every array the arena handed out, zeroed, up to
// maxSpareChunks: nothing may hold a slice of them any more.
func (a *sketchArena) reset() {
	a.chunkPool.reset(true)
	a.buf = nil
}

// alloc returns n zero bytes of a (an array of their own when a is nil or
// n is over a quarter of a chunk).
func (a *sketchArena) alloc(n int) []byte {
	if a == nil || n > chunkBytes/4 {
		return make([]byte, n)
	}
	if cap(a.buf)-len(a.buf) < n {
		a.buf = a.next()
	}
	start := len(a.buf)
	a.buf = a.buf[:start+n]
	return a.buf[start : start+n : start+n]
}

// arenaBytes scans a bytea into its arena: v is nil for NULL, empty but
// not nil for an empty value (the marker of ExpandUsers), as pgx scans
// a []byte.
type arenaBytes struct {
	a *sketchArena
	v []byte
}

func (b *arenaBytes) ScanBytes(v []byte) error {
	switch {
	case v == nil:
		b.v = nil
	case len(v) == 0:
		b.v = []byte{}
	default:
		b.v = b.a.alloc(len(v))
		copy(b.v, v)
	}
	return nil
}

// sketchArrays serializes the sketches of keys as three bytea arrays (users,
// active, new users): NULL for an empty sketch, and for a merged one equal
// to the stored one (write keeps the stored value). A users or new users
// sketch equal to the active sketch is the marker (compactSketches), and
// one kept but stored as the marker is written out when the active sketch
// changed.
func sketchArrays(keys []rollupKey, sketches func(rollupKey) *cellSketches, arr *statementArrays) ([3][][]byte, error) {
	out := arr.sketchArraysFor(len(keys))
	for i, k := range keys {
		c := sketches(k)
		var final [3][]byte
		for j := range c.sk {
			final[j] = c.enc[j]
			if final[j] == nil {
				b, err := c.deltaBytes(j)
				if err != nil {
					return out, err
				}
				final[j] = b
			}
			if !c.same[j] {
				out[j][i] = final[j]
			}
		}
		compact := compactSketches(final)
		for _, j := range markedSketches {
			if u := compact[j]; u != nil && len(u) == 0 {
				out[j][i] = u
			} else if c.same[j] && !c.same[1] {
				out[j][i] = final[j]
			}
		}
	}
	return out, nil
}

// insertRollupRows runs insert (an INSERT … SELECT over parallel arrays: $1..$4
// the keys, then vals, its rows in key order, ordinality column i) with ON
// CONFLICT DO NOTHING and reports which keys it inserted.
func insertRollupRows(ctx context.Context, tx pgx.Tx, keys []rollupKey, arr *statementArrays, insert string, vals []any) ([]bool, error) {
	done := make([]bool, len(keys))
	res, err := tx.Query(ctx, `WITH ins AS (`+insert+`
			ON CONFLICT DO NOTHING RETURNING site_id, kind, day, dim_id)
		SELECT u.i FROM ins JOIN `+keyUnnest+` USING (site_id, kind, day, dim_id)`, append(arr.keyArrays(keys), vals...)...)
	if err != nil {
		return nil, fmt.Errorf("insert rollups: %w", err)
	}
	defer res.Close()
	// Once, not per row: Scan's destination and its arguments escape.
	var i int64
	dest := []any{&i}
	for res.Next() {
		if err := res.Scan(dest...); err != nil {
			return nil, fmt.Errorf("insert rollups: %w", err)
		}
		if i < 1 || i > int64(len(keys)) {
			return nil, fmt.Errorf("insert rollups: BUG: ordinality %d of %d keys", i, len(keys))
		}
		done[i-1] = true
	}
	if err := res.Err(); err != nil {
		return nil, fmt.Errorf("insert rollups: %w", err)
	}
	return done, nil
}

// sessionStateColumns are the sessions columns a sessionState reads, in
// scan order; its dims follow (sessionStateSelect).
const sessionStateColumns = "site_id, visitor_id, ts, last_ts, events, page_views, key_events, engagement_ms, flags"

// sessionStateSelect is the select list of a sessionState from the sessions
// row (or RETURNING list holding client_id and traffic_id) named alias,
// joined as sessionDimsJoins does.
func sessionStateSelect(alias string) string {
	cols := strings.Split(sessionStateColumns, ", ")
	for i := range cols {
		cols[i] = alias + "." + cols[i]
	}
	for _, k := range SessionRollupKinds {
		cols = append(cols, sessionDimExpr(k))
	}
	return strings.Join(cols, ", ")
}

// sessionDimExpr is the SQL expression of a SessionRollupKinds kind's dims
// id in sessionStateSelect (and in filters on it).
func sessionDimExpr(k DimKind) string {
	return "COALESCE(" + sessionProfileAlias(ProfileOf(k)) + "." + DimColumns[k] + ", 0)"
}

// sessionDimsJoins joins the profiles of the sessions row named alias.
func sessionDimsJoins(alias string) string {
	var out string
	for _, p := range sessionProfiles {
		a := sessionProfileAlias(p)
		out += " LEFT JOIN " + p.Table + " " + a + " ON " + a + ".id = " + alias + "." + p.Column
	}
	return out
}

func sessionProfileAlias(p *Profile) string { return "sp_" + p.Column }

// scanDest returns scan destinations of sessionStateColumns into s.
func (s *sessionState) scanDest() []any {
	s.dims = make([]int32, len(SessionRollupKinds))
	dest := []any{&s.site, &s.visitor, &s.ts, &s.last, &s.events, &s.pageViews, &s.keyEvents, &s.engage, &s.flags}
	for i := range s.dims {
		dest = append(dest, &s.dims[i])
	}
	return dest
}

// sparseEncodingIn is the library's serialization of a sparse sketch
// whose list is set (sorted, distinct, not empty), nothing buffered. The
// list is written into *list (grown to 5 bytes a value if shorter) and
// copied out at its length: the values are walked once, not twice
// (sparseListBytes, then sparseEncodingSized). The encoding is
// arena's (nil: an array of its own).
func sparseEncodingIn(set []uint32, list *[]byte, arena *sketchArena) []byte {
	if len(*list) < 5*len(set) {
		*list = make([]byte, max(5*len(set), 2*len(*list)))
	}
	i, last := putSparseList(*list, set)
	out := arena.alloc(sparseHeader + i)
	copy(out[sparseHeader:], (*list)[:i])
	putSparseHeader(out, uint32(len(set)), last)
	return out
}
