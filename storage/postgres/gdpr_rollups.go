package postgres

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"time"

	"github.com/axiomhq/hyperloglog"
	"github.com/jackc/pgx/v5"
)

// An erasure corrects the rollup cells its subject touched instead of
// rebuilding their days. Counters and amounts: the subject's contribution,
// aggregated from its own events (sessions) and item rows by the code that
// aggregates a day for a rebuild (rollupReader, with the subject's
// sessions' traffic and landing page for RollupSessionTraffic and
// RollupLandingPage), is subtracted. Sketches:
// sketchWithout takes the subject's hashes out, knowing the cell's
// remaining visitors only where they can matter: those whose hash falls in
// a register of one of the subject's (its competitors), found among the
// day's visitor ids and aggregated like the subject (with their sessions'
// traffic). A sketch near the sparse/dense threshold is recomputed from
// the cell's remaining rows (the day's rows with the cell's dimension
// value; all the day's, and their sessions, for RollupSessionTraffic), as
// the rebuild would. Item cells (itemKind) hold amounts only, the cells by
// landing page (RollupLandingPage) counters only; the sessions sketches by
// page (SessionSketchKinds) hold session hashes: their competitors are the
// sessions of the day's events whose hash (SessionHash) falls in a
// register of one of the subject's sessions', whose visitors are read with
// the visitors' competitors, and those near the threshold are recomputed
// from the day's events of their pages and titles.
//
// A new rollup kind needs nothing here when rollupReader fills it (cells
// are keyed by kind) and rollupDimExpr or recomputeRollupCell finds its
// rows; a new counter of rollup_days goes into rollupCell,
// packEntry.addCounters and the statements, a new one of session_rollups
// into sessionRollupCell, addCounters and its statements; a new rollups
// table gets a correction of its own in correctRollups' shape.

// EraseSketches counts what an erasure did with the sketches of the cells
// it corrected.
type EraseSketches struct {
	Kept       int // unchanged: another visitor holds what the subject set
	Sparse     int // the subject's hashes removed from a sparse sketch
	Dense      int // dense registers lowered
	Recomputed int // near the dense threshold: rebuilt from the cell's rows
}

func (s *EraseSketches) count(o sketchOutcome) {
	switch o {
	case sketchKept:
		s.Kept++
	case sketchSparse:
		s.Sparse++
	case sketchDense:
		s.Dense++
	case sketchRecompute:
		s.Recomputed++
	}
}

// takeOut takes subject out of the stored sketch (sketchWithout, comp
// the cell's competitors) and counts the outcome. It reports whether the
// sketch must be recomputed from the cell's rows instead; *stored is left
// as it was then.
func (s *EraseSketches) takeOut(stored *[]byte, subject, comp *hyperloglog.Sketch) (recompute bool, err error) {
	b, outcome, err := sketchWithout(*stored, subject, comp)
	if err != nil {
		return false, err
	}
	s.count(outcome)
	if outcome == sketchRecompute {
		return true, nil
	}
	*stored = b
	return false, nil
}

// subjectRegisters are the dense register indexes of the subject keys'
// hashes.
func subjectRegisters(keys []int64) map[uint32]bool {
	out := make(map[uint32]bool, len(keys))
	for _, k := range keys {
		out[registerOfHash(VisitorHash(uint64(k)))] = true
	}
	return out
}

// competitors reads the visitor ids query selects ($1 the site, then args)
// and keeps those whose hash falls in one of regs.
func competitors(ctx context.Context, tx pgx.Tx, regs map[uint32]bool, query string, args ...any) ([]int64, error) {
	rows, err := tx.Query(ctx, query, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []int64
	var v int64
	for rows.Next() {
		if err := rows.Scan(&v); err != nil {
			return nil, err
		}
		if regs[registerOfHash(VisitorHash(uint64(v)))] {
			out = append(out, v)
		}
	}
	return out, rows.Err()
}

// eventCompetitors finds the site's visitors with events in [lo, hi)
// whose hash falls in one of regs, or one of whose sessions' hash
// (SessionHash) falls in one of sessRegs: those of the events table's
// rows, the positions of those packed on the UTC days the range touches
// (their visitor_id and session_id arrays are read whole, not unnested; a
// position outside the range is dropped by the reader's time bounds), and
// the ids of both.
func eventCompetitors(ctx context.Context, tx pgx.Tx, site int32, regs, sessRegs map[uint32]bool, lo, hi time.Time) ([]int64, packSlots, []int64, error) {
	var slots packSlots
	competes := func(v, s int64) bool {
		return regs[registerOfHash(VisitorHash(uint64(v)))] || len(sessRegs) > 0 && sessRegs[registerOfHash(SessionHash(v, s))]
	}
	all := map[int64]bool{}
	rows, err := tx.Query(ctx, "SELECT DISTINCT visitor_id, session_id FROM events WHERE site_id = $1 AND ts >= $2 AND ts < $3", site, lo, hi)
	if err != nil {
		return nil, slots, nil, err
	}
	var v, sid int64
	if _, err := pgx.ForEachRow(rows, []any{&v, &sid}, func() error {
		if competes(v, sid) {
			all[v] = true
		}
		return nil
	}); err != nil {
		return nil, slots, nil, err
	}
	found := slices.Collect(maps.Keys(all))
	rows, err = tx.Query(ctx, `SELECT day, part, visitor_id, session_id FROM event_packs WHERE site_id = $1
		AND day >= ($2::timestamptz AT TIME ZONE 'UTC')::date AND day <= ($3::timestamptz AT TIME ZONE 'UTC')::date`, site, lo, hi)
	if err != nil {
		return nil, slots, nil, err
	}
	defer rows.Close()
	var (
		day                time.Time
		part               int32
		visitors, sessions []int64
	)
	for rows.Next() {
		if err := rows.Scan(&day, &part, &visitors, &sessions); err != nil {
			return nil, slots, nil, err
		}
		if len(sessions) != len(visitors) {
			return nil, slots, nil, fmt.Errorf("BUG: pack %s part %d has %d visitors and %d session ids", day.Format(time.DateOnly), part, len(visitors), len(sessions))
		}
		for i, v := range visitors {
			if competes(v, sessions[i]) {
				slots.add(day, part, int32(i+1))
				all[v] = true
			}
		}
	}
	if err := rows.Err(); err != nil {
		return nil, slots, nil, err
	}
	return found, slots, slices.Collect(maps.Keys(all)), nil
}

// sessionRegisters are the dense register indexes of the session hashes
// in subject's sessions sketches by page (SessionSketchKinds) among cells.
func sessionRegisters(subject rollupAgg, cells []rollupKey) (map[uint32]bool, error) {
	out := map[uint32]bool{}
	for _, k := range cells {
		if !sessionSketchKind(k.kind) || subject[k] == nil {
			continue
		}
		enc, err := encodedOf(subject[k].sketches.sketch(0))
		if err != nil {
			return nil, fmt.Errorf("sessions of kind %d dim %d: %w", k.kind, k.dim, err)
		}
		for _, e := range enc {
			i, _ := registerOf(e)
			out[i] = true
		}
	}
	return out, nil
}

// localBounds are the bounds of local day (days since 1970-01-01) in loc.
func localBounds(day int32, loc *time.Location) (time.Time, time.Time) {
	d := dayDate(day)
	lo := time.Date(d.Year(), d.Month(), d.Day(), 0, 0, 0, 0, loc)
	return lo, lo.AddDate(0, 0, 1)
}

// correctRollups takes subject (the subject's events, aggregated) out of
// the site's rollup_days and rollup_packs, the subject's events being
// deleted already. It returns the local days it corrected.
func correctRollups(ctx context.Context, tx pgx.Tx, rd *rollupReader, keys []int64, subject rollupAgg, st *EraseSketches) ([]time.Time, error) {
	regs := subjectRegisters(keys)
	return correctByDay(subject, rd.hours.loc, "rollups", func(lo, hi time.Time, cells []rollupKey) error {
		return correctRollupDay(ctx, tx, rd, regs, lo, hi, cells, subject, st)
	})
}

// correctByDay groups the cells of subject by local day and corrects each
// day, in day order, with correct (its bounds in loc and its cells in key
// order); it returns the days corrected. what names the table in errors.
func correctByDay[C any](subject map[rollupKey]C, loc *time.Location, what string, correct func(lo, hi time.Time, cells []rollupKey) error) ([]time.Time, error) {
	byDay := map[int32][]rollupKey{}
	for k := range subject {
		byDay[k.day] = append(byDay[k.day], k)
	}
	var days []time.Time
	for _, day := range slices.Sorted(maps.Keys(byDay)) {
		lo, hi := localBounds(day, loc)
		cells := byDay[day]
		slices.SortFunc(cells, compareRollupKeys)
		if err := correct(lo, hi, cells); err != nil {
			return nil, fmt.Errorf("correct %s of %s: %w", what, lo.Format(time.DateOnly), err)
		}
		days = append(days, dayDate(day))
	}
	return days, nil
}

func correctRollupDay(ctx context.Context, tx pgx.Tx, rd *rollupReader, regs map[uint32]bool,
	lo, hi time.Time, cells []rollupKey, subject rollupAgg, st *EraseSketches) error {
	site := rd.site
	day := dayDate(cells[0].day)
	// The stored cells: a day's cell is in its pack, in rollup_days (late
	// events of a packed day), or both; reports add both, so the two fold
	// into the pack's entry when there is one.
	packs := make(map[packKey]pack)
	if err := readPacks(ctx, tx, site, day, packs); err != nil {
		return err
	}
	stored := make(map[rollupKey]*packEntry, len(cells))
	for _, k := range cells {
		if p := packs[packKey{kind: int16(k.kind), day: day}]; p != nil && p[k.dim] != nil {
			stored[k] = p[k.dim]
		}
	}
	res, err := tx.Query(ctx, `DELETE FROM rollup_days r USING `+keyUnnest+`
		WHERE r.site_id = u.site_id AND r.kind = u.kind AND r.day = u.day AND r.dim_id = u.dim_id
		RETURNING r.kind, r.dim_id, r.events, r.page_views, r.key_events, r.engagement_ms, r.users, r.active_users, r.new_users, r.amounts`,
		keyArrays(cells)...)
	if err != nil {
		return fmt.Errorf("read rollup rows: %w", err)
	}
	for res.Next() {
		k := rollupKey{site: site, day: cells[0].day}
		e := new(packEntry)
		var amounts []*float64
		if err := res.Scan(&k.kind, &k.dim, &e.events, &e.views, &e.keyEvents, &e.engageMs, &e.sketches[0], &e.sketches[1], &e.sketches[2], &amounts); err != nil {
			res.Close()
			return fmt.Errorf("read rollup rows: %w", err)
		}
		ExpandSketches(&e.sketches)
		e.amounts = amountsOf(amounts)
		if s := stored[k]; s != nil {
			if err := s.add(e); err != nil {
				res.Close()
				return fmt.Errorf("read rollup rows: %w", err)
			}
			continue
		}
		stored[k] = e
	}
	if err := res.Err(); err != nil {
		return fmt.Errorf("read rollup rows: %w", err)
	}

	others := make(rollupAgg)
	sessRegs, err := sessionRegisters(subject, cells)
	if err != nil {
		return err
	}
	found, slots, visitors, err := eventCompetitors(ctx, tx, site, regs, sessRegs, lo, hi)
	if err != nil {
		return fmt.Errorf("visitors: %w", err)
	}
	if len(found) > 0 || len(slots.pos) > 0 {
		// Their sessions' traffic, for their cells of RollupSessionTraffic.
		if rd.traffic, err = sessionTrafficWhere(ctx, tx,
			sessionsNear("ts", "$2", "$3")+" AND visitor_id = ANY($4)",
			site, lo, hi, visitors); err != nil {
			return fmt.Errorf("competitors' sessions: %w", err)
		}
		src := eventsAt(rollupEventColumns(), "site_id = $1 AND ts >= $2 AND ts < $3 AND visitor_id = ANY($4)", "$5::date[], $6::int[], $7::int[]")
		// Every event of the competitors on the day: they tell which are
		// active on it.
		rd.selfActive = true
		err := rd.events(ctx, tx, others, rollupEventsSQL(src, "e.ts >= $2 AND e.ts < $3"),
			lo, hi, found, slots.days, slots.parts, slots.pos)
		rd.selfActive = false
		if err != nil {
			return fmt.Errorf("competitors' events: %w", err)
		}
	}

	// The sessions sketches by page lose the subject's sessions as the
	// visitors' sketches lose the subject, their competitors being the
	// sessions of the visitors found above; those near the dense threshold
	// are recomputed, in one read of the day's events of their pages.
	var redoPages []rollupKey
	for _, k := range cells {
		e := stored[k]
		if e == nil || !sessionSketchKind(k.kind) {
			continue
		}
		var comp *hyperloglog.Sketch
		if c := others[k]; c != nil {
			comp = c.sketches.sketch(0)
		}
		recompute, err := st.takeOut(&e.sketches[0], subject[k].sketches.sketch(0), comp)
		if err != nil {
			return fmt.Errorf("sketch of kind %d dim %d: %w", k.kind, k.dim, err)
		}
		if recompute {
			redoPages = append(redoPages, k)
		}
	}
	pageSessions, err := recomputeSessionSketches(ctx, tx, rd, lo, hi, redoPages, stored)
	if err != nil {
		return err
	}

	dirty := map[packKey]bool{}
	var rows []rollupKey
	after := make(rollupAgg)
	for _, k := range cells {
		e := stored[k]
		if e == nil {
			continue // not rolled up (before the site's rollups began)
		}
		subj, err := subject[k].entry()
		if err != nil {
			return err
		}
		e.addCounters(subj, -1)
		var redo []int
		for j := range e.sketches {
			if itemKind(k.kind) || DimKind(k.kind) == RollupLandingPage {
				break // item cells count amounts only, landing cells counters
			}
			if sessionSketchKind(k.kind) {
				// Taken out above (session hashes, only in the first).
				if j == 0 && slices.Contains(redoPages, k) {
					redo = append(redo, j)
				}
				continue
			}
			var comp *hyperloglog.Sketch
			if c := others[k]; c != nil {
				comp = c.sketches.sketch(j)
			}
			recompute, err := st.takeOut(&e.sketches[j], subject[k].sketches.sketch(j), comp)
			if err != nil {
				return fmt.Errorf("sketch of kind %d dim %d: %w", k.kind, k.dim, err)
			}
			if recompute {
				redo = append(redo, j)
			}
		}
		if len(redo) > 0 && e.events > 0 {
			again := new(packEntry)
			// pageSessions aggregated every kind of the events of the
			// subject's pages and titles, but without the day's activity
			// and, for other kinds, not all of a cell's events: only its
			// sessions sketches by page are a recomputed cell.
			if c := pageSessions[k]; c != nil && sessionSketchKind(k.kind) {
				if again, err = c.entry(); err != nil {
					return err
				}
			} else if !sessionSketchKind(k.kind) {
				if again, err = recomputeRollupCell(ctx, tx, rd, lo, hi, k); err != nil {
					return err
				}
			}
			for _, j := range redo {
				e.sketches[j] = again.sketches[j]
			}
		}
		pk := packKey{kind: int16(k.kind), day: day}
		if p := packs[pk]; p != nil {
			dirty[pk] = true
			if e.held() {
				p[k.dim] = e
			} else {
				delete(p, k.dim)
			}
			continue
		}
		if e.held() {
			rows = append(rows, k)
			after[k] = e.cell()
		}
	}
	// A pack is written with its partners (a title pack stored as a
	// reference to its path pack, and that path pack): each is written
	// in the form its new values allow.
	for pk := range maps.Clone(dirty) {
		for _, o := range packPartners(pk) {
			if packs[o] != nil {
				dirty[o] = true
			}
		}
	}
	write := make(map[packKey]pack, len(dirty))
	for pk := range dirty {
		if len(packs[pk]) == 0 {
			if _, err := tx.Exec(ctx, "DELETE FROM rollup_packs WHERE site_id = $1 AND kind = $2 AND day = $3", site, pk.kind, pk.day); err != nil {
				return fmt.Errorf("delete pack: %w", err)
			}
			continue
		}
		write[pk] = packs[pk]
	}
	if err := writePacks(ctx, tx, site, write); err != nil {
		return err
	}
	if _, err := after.insert(ctx, tx, rows, nil); err != nil {
		return err
	}
	return nil
}

// recomputeSessionSketches aggregates the remaining events of [lo, hi)
// of the pages and titles of the sessions sketches by page among cells
// (those stored) the way a rebuild of the day does, in one read for all
// of them: their cells of SessionSketchKinds in the result are the
// recomputed ones (a cell without remaining events is absent).
func recomputeSessionSketches(ctx context.Context, tx pgx.Tx, rd *rollupReader, lo, hi time.Time,
	cells []rollupKey, stored map[rollupKey]*packEntry) (rollupAgg, error) {
	var pages, titles []int32
	for _, k := range cells {
		switch {
		case stored[k] == nil:
		case DimKind(k.kind) == RollupPageSessions:
			pages = append(pages, k.dim)
		case DimKind(k.kind) == RollupTitleSessions:
			titles = append(titles, k.dim)
		}
	}
	agg := make(rollupAgg)
	if len(pages)+len(titles) == 0 {
		return agg, nil
	}
	where := "e.ts >= $2 AND e.ts < $3 AND (" + rollupDimExpr(RollupPageSessions) + " = ANY($4) OR " +
		rollupDimExpr(RollupTitleSessions) + " = ANY($5))"
	if err := rd.events(ctx, tx, agg, rollupEventsSQL(EventsIn("$1", "$2", "$3", rollupEventColumns()), where), lo, hi, pages, titles); err != nil {
		return nil, fmt.Errorf("recompute sessions by page: %w", err)
	}
	return agg, nil
}

// recomputeRollupCell aggregates cell k's remaining events of [lo, hi) the
// way a rebuild of the day does, reading only the events with the cell's
// dimension value (all the day's for RollupSessionTraffic and
// RollupLandingPage, whose value is found in Go, and their sessions).
func recomputeRollupCell(ctx context.Context, tx pgx.Tx, rd *rollupReader, lo, hi time.Time, k rollupKey) (*packEntry, error) {
	where, args := "e.ts >= $2 AND e.ts < $3", []any{lo, hi}
	switch kind := DimKind(k.kind); {
	case kind == RollupHour:
		where += " AND extract(hour FROM e.ts AT TIME ZONE $4) = $5"
		args = append(args, rd.hours.loc.String(), k.dim)
	case kind == RollupSessionTraffic || kind == RollupLandingPage:
		var err error
		if rd.traffic, err = sessionTraffic(ctx, tx, rd.site, lo, hi); err != nil {
			return nil, err
		}
	case rollupDimExpr(kind) != "":
		where += " AND " + rollupDimExpr(kind) + " = $4"
		args = append(args, k.dim)
	}
	var err error
	if rd.active, err = activeVisitors(ctx, tx, rd.site, lo, hi); err != nil {
		return nil, fmt.Errorf("recompute kind %d dim %d: %w", k.kind, k.dim, err)
	}
	agg := make(rollupAgg)
	if err := rd.events(ctx, tx, agg, rollupEventsSQL(EventsIn("$1", "$2", "$3", rollupEventColumns()), where), args...); err != nil {
		return nil, fmt.Errorf("recompute kind %d dim %d: %w", k.kind, k.dim, err)
	}
	c := agg[k]
	if c == nil {
		return new(packEntry), nil
	}
	return c.entry()
}

// itemKind reports whether rollup kind is one of the item kinds
// (RollupItems, ItemRollupKinds), whose cells hold amounts and no
// sketches.
func itemKind(kind int32) bool {
	return DimKind(kind) == RollupItems || slices.Contains(ItemRollupKinds, DimKind(kind))
}

// addCounters adds o's counters, times sign, to c's: the one place a
// session rollup counter is summed for an erasure.
func (c *sessionRollupCell) addCounters(o *sessionRollupCell, sign int32) {
	c.sessions += sign * o.sessions
	c.engaged += sign * o.engaged
	c.events += sign * o.events
	c.views += sign * o.views
	c.keyEvents += sign * o.keyEvents
	c.durationUs += int64(sign) * o.durationUs
	c.engageMs += int64(sign) * o.engageMs
}

// aggregateSessions adds the sessions of the site ($1) meeting where
// (on sessions "s", its profiles joined) to agg, each counting its visitor
// as active as act says.
func aggregateSessions(ctx context.Context, tx pgx.Tx, agg sessionRollupAgg, loc *time.Location, act *sessionActivity, where string, args ...any) error {
	rows, err := tx.Query(ctx, "SELECT s.session_id, "+sessionStateSelect("s")+" FROM sessions s"+sessionDimsJoins("s")+
		" WHERE s.site_id = $1 AND "+where, args...)
	if err != nil {
		return err
	}
	defer rows.Close()
	var (
		st  sessionState
		sid int64
	)
	dest := append([]any{&sid}, st.scanDest()...)
	for rows.Next() {
		if err := rows.Scan(dest...); err != nil {
			return err
		}
		st.dayActive = act.of(&st, sid, loc)
		agg.add(&st, loc, 1)
	}
	return rows.Err()
}

// correctSessionRollups takes subject (the subject's sessions, aggregated)
// out of session_rollups, the sessions being deleted already, and returns
// the local days it corrected.
func correctSessionRollups(ctx context.Context, tx pgx.Tx, site int32, loc *time.Location, keys []int64, subject sessionRollupAgg, st *EraseSketches) ([]time.Time, error) {
	regs := subjectRegisters(keys)
	return correctByDay(subject, loc, "session rollups", func(lo, hi time.Time, cells []rollupKey) error {
		return correctSessionDay(ctx, tx, site, loc, regs, lo, hi, cells, subject, st)
	})
}

func correctSessionDay(ctx context.Context, tx pgx.Tx, site int32, loc *time.Location, regs map[uint32]bool,
	lo, hi time.Time, cells []rollupKey, subject sessionRollupAgg, st *EraseSketches) error {
	stored := make(sessionRollupAgg, len(cells))
	res, err := tx.Query(ctx, `DELETE FROM session_rollups r USING `+keyUnnest+`
		WHERE r.site_id = u.site_id AND r.kind = u.kind AND r.day = u.day AND r.dim_id = u.dim_id
		RETURNING r.kind, r.dim_id, r.sessions, r.engaged, r.events, r.page_views, r.key_events, r.duration_us, r.engagement_ms,
			r.users, r.active_users, r.new_users`, keyArrays(cells)...)
	if err != nil {
		return fmt.Errorf("read session rollup rows: %w", err)
	}
	for res.Next() {
		k := rollupKey{site: site, day: cells[0].day}
		c := new(sessionRollupCell)
		if err := res.Scan(&k.kind, &k.dim, &c.sessions, &c.engaged, &c.events, &c.views, &c.keyEvents, &c.durationUs, &c.engageMs,
			&c.sketches.enc[0], &c.sketches.enc[1], &c.sketches.enc[2]); err != nil {
			res.Close()
			return fmt.Errorf("read session rollup rows: %w", err)
		}
		ExpandSketches(&c.sketches.enc)
		stored[k] = c
	}
	if err := res.Err(); err != nil {
		return fmt.Errorf("read session rollup rows: %w", err)
	}
	others := make(sessionRollupAgg)
	found, err := competitors(ctx, tx, regs, "SELECT DISTINCT visitor_id FROM sessions WHERE site_id = $1 AND ts >= $2 AND ts < $3", site, lo, hi)
	if err != nil {
		return fmt.Errorf("visitors: %w", err)
	}
	// The activity of the day's sessions reads the events of their days.
	end := sessionEventsEnd(hi, loc)
	if len(found) > 0 {
		act, err := readSessionActivity(ctx, tx, site, loc, lo, end, found, false, 0)
		if err != nil {
			return fmt.Errorf("competitors' sessions: %w", err)
		}
		if err := aggregateSessions(ctx, tx, others, loc, act, "s.ts >= $2 AND s.ts < $3 AND s.visitor_id = ANY($4)", site, lo, hi, found); err != nil {
			return fmt.Errorf("competitors' sessions: %w", err)
		}
	}
	var (
		rows []rollupKey
		all  *sessionActivity // every session's of the day, read once a cell is recomputed
	)
	for _, k := range cells {
		c := stored[k]
		if c == nil {
			continue // not rolled up (before the site's session rollups began)
		}
		c.addCounters(subject[k], -1)
		var redo []int
		for j := range c.sketches.enc {
			var comp *hyperloglog.Sketch
			if o := others[k]; o != nil {
				comp = o.sketches.sketch(j)
			}
			recompute, err := st.takeOut(&c.sketches.enc[j], subject[k].sketches.sketch(j), comp)
			if err != nil {
				return fmt.Errorf("sketch of kind %d dim %d: %w", k.kind, k.dim, err)
			}
			if recompute {
				redo = append(redo, j)
			}
		}
		if len(redo) > 0 && c.sessions > 0 {
			where, args := "s.ts >= $2 AND s.ts < $3", []any{site, lo, hi}
			if k.kind != 0 {
				i := slices.Index(SessionRollupKinds, DimKind(k.kind))
				if i < 0 {
					return fmt.Errorf("BUG: session rollup kind %d unknown", k.kind)
				}
				where += " AND " + sessionDimExpr(SessionRollupKinds[i]) + " = $4"
				args = append(args, k.dim)
			}
			if all == nil {
				if all, err = readSessionActivity(ctx, tx, site, loc, lo, end, nil, false, 0); err != nil {
					return fmt.Errorf("recompute kind %d dim %d: %w", k.kind, k.dim, err)
				}
			}
			again := make(sessionRollupAgg)
			if err := aggregateSessions(ctx, tx, again, loc, all, where, args...); err != nil {
				return fmt.Errorf("recompute kind %d dim %d: %w", k.kind, k.dim, err)
			}
			for _, j := range redo {
				c.sketches.enc[j] = nil
				if a := again[k]; a != nil {
					if c.sketches.enc[j], err = a.sketches.deltaBytes(j); err != nil {
						return err
					}
				}
			}
		}
		if c.sessions > 0 {
			rows = append(rows, k)
		}
	}
	if _, err := stored.insert(ctx, tx, rows, nil); err != nil {
		return err
	}
	return nil
}
