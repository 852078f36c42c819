package postgres

import (
	"context"
	"fmt"
	"time"

	"github.com/avila-analytics/avila/protocol"
)

// landingLead is how long before a session's start its events may lie:
// the session timeout, within which an earlier event joins a stored
// session (aggregator/sessions).
const landingLead = 30 * time.Minute

// moveLanding moves, in agg, the events that earlier derivations counted
// under landing page 0 (RollupLandingPage) for the sessions whose landing
// page this derivation set (changes: before without one, now with one) to
// the row of their landing page, as the raw-event engine puts every event
// of a session under the session's page_id. rows are this derivation's
// events, not yet in the events table (WriteEvents copies them after).
//
// A session whose earlier events lie on one local day (from landingLead
// before its start to its latest event before) moves its counters as
// stored in its sessions row before this derivation, which count exactly
// those events; a session spanning days has its earlier events read
// (EventsIn over its span: the earlier events only, as this derivation's
// are not copied yet) and moved day by day.
func (d *DeriveTx) moveLanding(ctx context.Context, agg rollupAgg, rows []EventRow, changes SessionChanges, hours *hourCache) error {
	var pageView int32
	pageViewRead := false
	for i := range changes {
		c := &changes[i]
		if c.before == nil || c.before.landing != 0 || c.now.landing == 0 {
			continue
		}
		b := c.before
		lo := b.ts.Add(-landingLead)
		day := localDay(b.last, d.zone)
		if localDay(lo, d.zone) == day {
			move := rollupCell{events: b.events, views: b.pageViews, keyEvents: b.keyEvents, engageMs: b.engage}
			agg.moveLandingCounters(int32(d.site), day, c.now.landing, &move)
			continue
		}
		if !pageViewRead {
			var err error
			if pageView, err = pageViewID(ctx, d.tx, int32(d.site)); err != nil {
				return err
			}
			pageViewRead = true
		}
		byDay, err := d.sessionEventsByDay(ctx, b.visitor, c.id, lo, b.last, pageView)
		if err != nil {
			return err
		}
		// This derivation's events of the session are not in the table
		// yet: they are not the earlier ones, and move nothing. The
		// days they fall on get their cells all the same, empty ones,
		// as they did when these events were read and taken off again.
		for j := range rows {
			r := &rows[j]
			if r.Visitor != b.visitor || r.Session != c.id || r.TS.Before(lo) || r.TS.After(b.last) {
				continue
			}
			if day, _ := hours.of(r.TS); byDay[day] == nil {
				byDay[day] = new(rollupCell)
			}
		}
		for day, m := range byDay {
			agg.moveLandingCounters(int32(d.site), day, c.now.landing, m)
		}
	}
	return nil
}

// moveLandingCounters takes m's counters from the RollupLandingPage cell
// of landing page 0 on day and adds them to landing's.
func (a rollupAgg) moveLandingCounters(site, day, landing int32, m *rollupCell) {
	for _, to := range []struct {
		dim  int32
		sign int32
	}{{0, -1}, {landing, 1}} {
		k := rollupKey{site: site, kind: int32(RollupLandingPage), day: day, dim: to.dim}
		c := a.get(k)
		c.events += to.sign * m.events
		c.views += to.sign * m.views
		c.keyEvents += to.sign * m.keyEvents
		c.engageMs += int64(to.sign) * m.engageMs
	}
}

// countEvent adds an event's counters, times sign, to c's.
func (c *rollupCell) countEvent(pageView bool, flags int16, engage int32, sign int32) {
	c.events += sign
	if pageView {
		c.views += sign
	}
	if uint8(flags)&protocol.FlagKeyEvent != 0 {
		c.keyEvents += sign
	}
	c.engageMs += int64(sign) * int64(engage)
}

// sessionEventsByDay counts the stored events of one session of the
// transaction's site with lo <= ts <= hi by local day.
func (d *DeriveTx) sessionEventsByDay(ctx context.Context, visitor, session int64, lo, hi time.Time, pageView int32) (map[int32]*rollupCell, error) {
	rows, err := d.tx.Query(ctx, "SELECT e.ts, e.name_id, e.flags, e.engagement_ms FROM "+
		EventsIn("$1", "$2", "$3", []string{"site_id", "ts", "visitor_id", "session_id", "name_id", "flags", "engagement_ms"})+
		" e WHERE e.visitor_id = $4 AND e.session_id = $5", int32(d.site), lo, hi.Add(time.Microsecond), visitor, session)
	if err != nil {
		return nil, fmt.Errorf("read events of a session given its landing page: %w", err)
	}
	defer rows.Close()
	out := map[int32]*rollupCell{}
	var (
		ts     time.Time
		name   int32
		flags  int16
		engage int32
	)
	for rows.Next() {
		if err := rows.Scan(&ts, &name, &flags, &engage); err != nil {
			return nil, fmt.Errorf("read events of a session given its landing page: %w", err)
		}
		day := localDay(ts, d.zone)
		c := out[day]
		if c == nil {
			c = new(rollupCell)
			out[day] = c
		}
		c.countEvent(pageView != 0 && name == pageView, flags, engage, 1)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read events of a session given its landing page: %w", err)
	}
	return out, nil
}
