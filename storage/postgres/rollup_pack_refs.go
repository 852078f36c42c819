package postgres

import (
	"bytes"
	"strconv"
	"strings"
)

// A pack of a page title kind whose cells each equal a cell of the same
// day's pack of the page path kind (a site giving each page one title: the
// title's events are its path's) is stored as a reference to it
// (migration 029): its dim_ids, ref_kind the path kind, ref_pos the
// position (1-based) of each cell's equal cell in the path pack, NULL
// when every cell is at its own position in a pack of as many cells, and
// its other arrays empty. Readers read rollup_packs through rollupPacks,
// which gives a reference pack's arrays from the referenced one; writers
// (writePacks) decide the form each time a day's packs are written, and
// write the two kinds of a day together (packPartners), so a reference
// never outlives the pack it names.

// packRefs are, by kind, the kind whose pack of the same day a pack of it
// may reference.
var packRefs = map[int16]int16{
	int16(DimTitle):            int16(DimPagePath),
	int16(RollupTitleSessions): int16(RollupPageSessions),
}

// packPartners are the keys of the packs written with pk's: the kind it
// may reference, or the kind that may reference it.
func packPartners(pk packKey) []packKey {
	var out []packKey
	for from, to := range packRefs {
		switch pk.kind {
		case from:
			out = append(out, packKey{kind: to, day: pk.day})
		case to:
			out = append(out, packKey{kind: from, day: pk.day})
		}
	}
	return out
}

// equal reports whether e and o hold the same values: counters, amounts
// and sketches byte for byte (an empty sketch nil in both).
func (e *packEntry) equal(o *packEntry) bool {
	if e.events != o.events || e.views != o.views || e.keyEvents != o.keyEvents || e.engageMs != o.engageMs {
		return false
	}
	if (e.amounts == nil) != (o.amounts == nil) || (e.amounts != nil && *e.amounts != *o.amounts) {
		return false
	}
	for j := range e.sketches {
		if (e.sketches[j] == nil) != (o.sketches[j] == nil) || !bytes.Equal(e.sketches[j], o.sketches[j]) {
			return false
		}
	}
	return true
}

// packRef finds, for each cell of p (dims: its dim_ids ascending), an
// equal cell of to (toDims: its dim_ids ascending) and returns their
// positions in to (1-based; nil when every cell is at its own position
// and the packs have as many cells); ok is false when a cell of p has no
// equal cell in to.
func packRef(p pack, dims []int32, to pack, toDims []int32) (pos []int32, ok bool) {
	if len(dims) == 0 || len(toDims) == 0 {
		return nil, false
	}
	type counters struct {
		events, views, keyEvents int32
		engageMs                 int64
	}
	byCounters := make(map[counters][]int32, len(toDims))
	for i, dim := range toDims {
		e := to[dim]
		k := counters{e.events, e.views, e.keyEvents, e.engageMs}
		byCounters[k] = append(byCounters[k], int32(i+1))
	}
	pos = make([]int32, len(dims))
	same := len(dims) == len(toDims)
	for i, dim := range dims {
		e := p[dim]
		// The cell at the same position first: the common case, as a
		// page's path and title get their dims ids together.
		if i < len(toDims) && e.equal(to[toDims[i]]) {
			pos[i] = int32(i + 1)
			continue
		}
		same = false
		for _, at := range byCounters[counters{e.events, e.views, e.keyEvents, e.engageMs}] {
			if e.equal(to[toDims[at-1]]) {
				pos[i] = at
				break
			}
		}
		if pos[i] == 0 {
			return nil, false
		}
	}
	if same {
		return nil, true
	}
	return pos, true
}

// packArrays are rollup_packs' arrays of a value per cell.
var packArrays = append(RollupCounterColumns[:len(RollupCounterColumns):len(RollupCounterColumns)], RollupSketchColumns...)

// rollupPacks is rollup_packs as readers see it, a subquery of the
// columns site_id, kind, day, dim_ids, version (the row's xmin, and the
// referenced row's after a colon for a reference pack: it changes when
// either is rewritten), events, page_views, key_events, engagement_ms,
// users, active_users, new_users and amounts, a reference pack's arrays
// those of the referenced pack at its ref_pos. Conditions on site_id,
// kind and day reach the table's key; columns a statement does not use
// are not computed, and a pack holding its own values is read as stored.
var rollupPacks = func() string {
	var b strings.Builder
	b.WriteString(`(SELECT p.site_id, p.kind, p.day, p.dim_ids,
		CASE WHEN p.ref_kind IS NULL THEN p.xmin::text ELSE p.xmin::text || ':' || q.xmin::text END AS version, x.*
	FROM rollup_packs p LEFT JOIN rollup_packs q ON q.site_id = p.site_id AND q.kind = p.ref_kind AND q.day = p.day,
		LATERAL (SELECT `)
	// Each array is the referenced one as is, or its cells joined to
	// ref_pos by position: the referenced array is detoasted once.
	pick := func(col, on, order string) string {
		return "ARRAY(SELECT cel.v FROM unnest(p.ref_pos) WITH ORDINALITY AS ref(i, o) JOIN unnest(q." + col +
			") WITH ORDINALITY AS cel(v, n) ON " + on + " ORDER BY " + order + ")"
	}
	for _, col := range packArrays {
		b.WriteString("CASE WHEN p.ref_kind IS NULL THEN p." + col + " WHEN p.ref_pos IS NULL THEN q." + col +
			" ELSE " + pick(col, "cel.n = ref.i", "ref.o") + " END AS " + col + ", ")
	}
	// amounts: NumAmounts slots per cell, cell i's from (i - 1) * slots + 1.
	b.WriteString("CASE WHEN p.ref_kind IS NULL THEN p.amounts WHEN p.ref_pos IS NULL OR q.amounts IS NULL THEN q.amounts ELSE " +
		pick("amounts", "(cel.n - 1) / "+strconv.Itoa(NumAmounts)+" + 1 = ref.i", "ref.o, cel.n") + " END AS amounts")
	// OFFSET 0: computed once per pack row, however often the statement
	// refers to a column.
	b.WriteString(" OFFSET 0) x)")
	return b.String()
}()
