package postgres

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
)

// RebuildRollups recomputes a site's rollups from its events (rollup_packs
// for closed days, rollup_days for today and yesterday) and
// marks its rollups complete from its first day on, for events that reached
// the events table without the write stage (bulk loads, imports) and for sites
// created before rollups existed. It runs in one transaction holding the
// site's row lock, which a derivation waits for, so no event is counted twice
// or missed; derivations of the site wait until it commits. Memory stays
// bounded: one local day of events is aggregated at a time.
func (s *Store) RebuildRollups(ctx context.Context, site uint32) error {
	tx, err := s.pool.Begin(ctx)
	if err != nil {
		return fmt.Errorf("postgres: rebuild rollups of site %d: begin: %w", site, err)
	}
	defer tx.Rollback(context.WithoutCancel(ctx)) // no-op after Commit
	if err := rebuildRollups(ctx, tx, int32(site)); err != nil {
		return fmt.Errorf("postgres: rebuild rollups of site %d: %w", site, err)
	}
	if err := tx.Commit(ctx); err != nil {
		return fmt.Errorf("postgres: rebuild rollups of site %d: commit: %w", site, err)
	}
	return nil
}

func rebuildRollups(ctx context.Context, tx pgx.Tx, site int32) error {
	loc, err := lockSite(ctx, tx, site)
	if err != nil {
		return err
	}
	for _, table := range []string{"rollup_days", "rollup_packs", "rollup_user_days"} {
		if _, err := tx.Exec(ctx, "DELETE FROM "+table+" WHERE site_id = $1", site); err != nil {
			return fmt.Errorf("delete rollups: %w", err)
		}
	}
	packBefore := packedBefore(time.Now(), loc)
	var first, last *time.Time
	if err := tx.QueryRow(ctx, `SELECT min(lo), max(hi) FROM (
		SELECT min(ts) AS lo, max(ts) AS hi FROM events WHERE site_id = $1
		UNION ALL
		SELECT min(day)::timestamp AT TIME ZONE 'UTC', (max(day) + 1)::timestamp AT TIME ZONE 'UTC' - interval '1 microsecond'
		FROM event_packs WHERE site_id = $1) s`, site).Scan(&first, &last); err != nil {
		return fmt.Errorf("event span: %w", err)
	}
	rd, err := newRollupReader(ctx, tx, site, loc)
	if err != nil {
		return err
	}
	rd.userDaysFrom = userDaysFrom(time.Now(), loc)
	if first != nil && last != nil {
		y, m, d := first.In(loc).Date()
		for day := time.Date(y, m, d, 0, 0, 0, 0, loc); !day.After(*last); day = day.AddDate(0, 0, 1) {
			if err := rebuildDay(ctx, tx, rd, day, day.AddDate(0, 0, 1), packBefore); err != nil {
				return err
			}
		}
	}
	// Session rollups' active sketches and the user-days' session cells
	// follow the same events.
	if err := rebuildSessionRollups(ctx, tx, site, loc); err != nil {
		return err
	}
	if _, err := tx.Exec(ctx, `UPDATE sites SET rollups_from = '-infinity', hour_rollups_from = '-infinity',
		commerce_rollups_from = '-infinity', traffic_rollups_from = '-infinity', page_rollups_from = '-infinity' WHERE id = $1`, site); err != nil {
		return fmt.Errorf("mark complete: %w", err)
	}
	return nil
}

// lockSite locks the site's row FOR UPDATE, which batches of the site
// (siteZones, FOR SHARE) wait for, and returns its time zone; ErrNotFound
// without a row.
func lockSite(ctx context.Context, tx pgx.Tx, site int32) (*time.Location, error) {
	var zone string
	err := tx.QueryRow(ctx, "SELECT time_zone FROM sites WHERE id = $1 FOR UPDATE", site).Scan(&zone)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("lock site: %w", err)
	}
	loc, err := time.LoadLocation(zone)
	if err != nil {
		return nil, fmt.Errorf("time zone %q: %w", zone, err)
	}
	return loc, nil
}

// rebuildDay aggregates the site's events and items in [lo, hi) (one local
// day) into rollup rows, packed when the day is before packBefore.
func rebuildDay(ctx context.Context, tx pgx.Tx, rd *rollupReader, lo, hi, packBefore time.Time) error {
	site := rd.site
	var err error
	if rd.traffic, err = sessionTraffic(ctx, tx, site, lo, hi); err != nil {
		return err
	}
	if rd.active, err = activeVisitors(ctx, tx, site, lo, hi); err != nil {
		return fmt.Errorf("read events of %s: %w", lo.Format(time.DateOnly), err)
	}
	day := localDay(lo, rd.hours.loc)
	if keep := !dayDate(day).Before(rd.userDaysFrom); keep {
		rd.pending = make(rebuiltDays)
		defer func() { rd.pending = nil }()
	}
	agg := make(rollupAgg)
	if err := rd.events(ctx, tx, agg, rollupEventsSQL(EventsIn("$1", "$2", "$3", rollupEventColumns()), "e.ts >= $2 AND e.ts < $3"), lo, hi); err != nil {
		return fmt.Errorf("read events of %s: %w", lo.Format(time.DateOnly), err)
	}
	if rd.pending != nil {
		if err := writeUserDays(ctx, tx, site, day, rd.active, rd.pending); err != nil {
			return fmt.Errorf("%s: %w", lo.Format(time.DateOnly), err)
		}
	}
	if err := rd.items(ctx, tx, agg, ItemsIn("$1", "$2", "$3", rollupItemColumns), lo, hi); err != nil {
		return fmt.Errorf("read items of %s: %w", lo.Format(time.DateOnly), err)
	}
	if len(agg) == 0 {
		return nil
	}
	if y, m, d := lo.Date(); time.Date(y, m, d, 0, 0, 0, 0, time.UTC).Before(packBefore) {
		packs, err := agg.packs(site)
		if err != nil {
			return fmt.Errorf("pack rollups of %s: %w", lo.Format(time.DateOnly), err)
		}
		if err := writePacks(ctx, tx, site, packs); err != nil {
			return fmt.Errorf("pack rollups of %s: %w", lo.Format(time.DateOnly), err)
		}
		return nil
	}
	if err := agg.store(ctx, tx); err != nil {
		return fmt.Errorf("store rollups of %s: %w", lo.Format(time.DateOnly), err)
	}
	return nil
}

// rollupReader aggregates a site's events and items into rollup cells the
// one way rollups count them, whether a day is rebuilt (rebuildDay) or an
// erasure corrects cells (the subject's rows, its competitors', a cell's
// remaining rows): what it needs besides the rows is the site's zone, its
// page_view id, its ecommerce event names (EventAmounts, ItemAmounts) and
// the traffic of the sessions the events read belong to
// (RollupSessionTraffic), which the caller reads for the events it
// selects (sessionTraffic, sessionTrafficWhere).
type rollupReader struct {
	site     int32
	hours    *hourCache
	pageView int32
	names    map[int32]string
	traffic  sessionTraffics
	// active are the visitors active on the local day read (activeVisitors;
	// an event makes its visitor active by itself too). With selfActive
	// the query reads every event of its visitors on each day it covers
	// (an erasure's subject, its competitors), which tell whether each is
	// active on its day.
	active     map[int64]bool
	selfActive bool
	// activeSessions collects, with selfActive, the sessions (visitor,
	// session id) with an event on a day on which their visitor is active
	// (sessionActivity of an erasure's subject).
	activeSessions map[[2]int64]bool
	// times, when not nil, collects the times of the events read (an
	// erasure's subject's: their items are found by them).
	times *[]time.Time
	// pending, when not nil, collects the cells of the events of visitors
	// not active on their day (a rebuild's rollup_user_days, for the days
	// from userDaysFrom on).
	pending      rebuiltDays
	userDaysFrom time.Time
}

func newRollupReader(ctx context.Context, tx pgx.Tx, site int32, loc *time.Location) (*rollupReader, error) {
	pageView, err := pageViewID(ctx, tx, site)
	if err != nil {
		return nil, err
	}
	names, err := ecommerceNames(ctx, tx, site)
	if err != nil {
		return nil, err
	}
	return &rollupReader{site: site, hours: &hourCache{loc: loc}, pageView: pageView, names: names}, nil
}

// rollupEventColumns are the events columns rollups count: EventsIn's
// columns for rollupEventsSQL.
func rollupEventColumns() []string {
	cols := []string{"site_id", "ts", "visitor_id", "session_id", "engagement_ms", "flags", "commerce_id"}
	for _, k := range RollupKinds {
		if ProfileOf(k) == nil {
			cols = append(cols, DimColumns[k])
		}
	}
	for _, p := range Profiles {
		cols = append(cols, p.Column)
	}
	return cols
}

// rollupDimExpr is the SQL expression of kind's dims id in rollupEventsSQL
// ("" for kinds without one: 0, RollupHour, RollupSessionTraffic and
// RollupLandingPage, whose dims id is found in Go); SessionSketchKinds
// have their dims kind's.
func rollupDimExpr(kind DimKind) string {
	if base, ok := SessionSketchKinds[kind]; ok {
		kind = base
	}
	if p := ProfileOf(kind); p != nil {
		return "COALESCE(" + p.Table + "." + RollupColumns[kind] + ", 0)"
	}
	if _, ok := RollupColumns[kind]; ok {
		return "e." + RollupColumns[kind]
	}
	return ""
}

// rollupEventsSQL selects what rollups count of the events of src (an
// EventsIn-like subquery with rollupEventColumns; $1 is the site) that meet
// where, joined to their profiles and ecommerce rows: the one statement
// reading events for rollups (rollupReader.events).
func rollupEventsSQL(src, where string) string {
	cols := make([]string, len(RollupKinds))
	for i, k := range RollupKinds {
		cols[i] = rollupDimExpr(k)
	}
	return "SELECT e.ts, e.visitor_id, e.session_id, e.engagement_ms, e.flags, " + strings.Join(cols, ", ") +
		", ec.id IS NOT NULL, COALESCE(ec.revenue, 0), COALESCE(ec.tax, 0), COALESCE(ec.shipping, 0), COALESCE(ec.transaction_id, 0)" +
		" FROM " + src + " e" + profileJoins() +
		" LEFT JOIN event_commerce ec ON ec.id = e.commerce_id AND e.commerce_id <> 0" +
		" WHERE e.site_id = $1 AND " + where
}

// events adds the events that query (rollupEventsSQL; $1 the site, then
// args) selects to agg, each visitor into the sketches at once (as a
// rebuild does), with their amounts and session traffic.
func (rd *rollupReader) events(ctx context.Context, tx pgx.Tx, agg rollupAgg, query string, args ...any) error {
	rows, err := tx.Query(ctx, query, append([]any{rd.site}, args...)...)
	if err != nil {
		return err
	}
	defer rows.Close()
	r := EventRow{Site: rd.site}
	dims := make([]int32, len(RollupKinds))
	nameAt := slices.Index(RollupKinds, DimEventName)
	var (
		hasCommerce bool
		c           CommerceRow
	)
	dest := []any{&r.TS, &r.Visitor, &r.Session, &r.Engage, &r.Flags}
	for i := range dims {
		dest = append(dest, &dims[i])
	}
	dest = append(dest, &hasCommerce, &c.Revenue, &c.Tax, &c.Shipping, &c.Transaction)
	var (
		held       []EventRow
		selfActive = map[userDay]bool{}
	)
	for rows.Next() {
		if err := rows.Scan(dest...); err != nil {
			return err
		}
		for i, k := range RollupKinds {
			r.Dims[k-1] = dims[i]
		}
		r.PageView = rd.pageView != 0 && dims[nameAt] == rd.pageView
		r.Amounts = nil
		if hasCommerce {
			r.Amounts = EventAmounts(rd.names[dims[nameAt]], &c)
		}
		r.SessionTraffic, r.SessionLanding = rd.traffic.of(r.Visitor, r.Session, r.TS)
		if rd.times != nil {
			*rd.times = append(*rd.times, r.TS)
		}
		if rd.selfActive {
			held = append(held, r)
			if eventActive(&r) {
				day, _ := rd.hours.of(r.TS)
				selfActive[userDay{r.Visitor, day}] = true
			}
			continue
		}
		r.DayActive = rd.active[r.Visitor] || eventActive(&r)
		if !r.DayActive && rd.pending != nil {
			day, hour := rd.hours.of(r.TS)
			set := rd.pending[userDay{r.Visitor, day}]
			if set == nil {
				set = make(map[int64]struct{})
				rd.pending[userDay{r.Visitor, day}] = set
			}
			addEventCells(set, &r, day, hour)
		}
		agg.add(&r, rd.hours, false)
	}
	if err := rows.Err(); err != nil {
		return err
	}
	if len(held) > 0 && rd.activeSessions == nil {
		rd.activeSessions = map[[2]int64]bool{}
	}
	for i := range held {
		day, _ := rd.hours.of(held[i].TS)
		held[i].DayActive = selfActive[userDay{held[i].Visitor, day}]
		if held[i].DayActive {
			rd.activeSessions[[2]int64{held[i].Visitor, held[i].Session}] = true
		}
		agg.add(&held[i], rd.hours, false)
	}
	return nil
}

// rollupItemColumns are the item columns rollups count: ItemsIn's columns
// for rollupReader.items.
var rollupItemColumns = []string{"ts", "revenue", "name_id", "quantity", "list_id", "promotion_id", "item_profile_id"}

// items adds the item rows of src (an ItemsIn-like subquery over
// rollupItemColumns; $1 the site, then args) to agg's item cells.
func (rd *rollupReader) items(ctx context.Context, tx pgx.Tx, agg rollupAgg, src string, args ...any) error {
	cols := make([]string, len(ItemProfile.Kinds))
	for i, k := range ItemProfile.Kinds {
		cols[i] = "COALESCE(p." + DimColumns[k] + ", 0)"
	}
	rows, err := tx.Query(ctx, "SELECT i.ts, i.revenue, i.name_id, i.quantity, i.list_id, i.promotion_id, "+strings.Join(cols, ", ")+
		" FROM "+src+" i LEFT JOIN item_profiles p ON p.id = i.item_profile_id", append([]any{rd.site}, args...)...)
	if err != nil {
		return err
	}
	defer rows.Close()
	r := ItemRow{Site: rd.site}
	dest := []any{&r.TS, &r.Revenue, &r.Name, &r.Quantity, &r.List, &r.Promotion}
	for i := range r.Dims {
		dest = append(dest, &r.Dims[i])
	}
	for rows.Next() {
		if err := rows.Scan(dest...); err != nil {
			return err
		}
		r.Amounts = ItemAmounts(rd.names[r.Name], r.Revenue, r.Quantity)
		agg.addItem(&r, rd.hours)
	}
	return rows.Err()
}

// ecommerceNames are the site's dims ids of the event names that fill
// amounts (EventAmounts, ItemAmounts), by id.
func ecommerceNames(ctx context.Context, tx pgx.Tx, site int32) (map[int32]string, error) {
	rows, err := tx.Query(ctx, "SELECT id, value FROM dims WHERE site_id = $1 AND kind = $2 AND value = ANY($3)", site, DimEventName,
		[]string{purchaseEvent, inAppEvent, refundEvent, viewItemEvent, addToCartEvent})
	if err != nil {
		return nil, fmt.Errorf("ecommerce event names: %w", err)
	}
	out := map[int32]string{}
	var id int32
	var name string
	if _, err := pgx.ForEachRow(rows, []any{&id, &name}, func() error { out[id] = name; return nil }); err != nil {
		return nil, fmt.Errorf("ecommerce event names: %w", err)
	}
	return out, nil
}

// pageViewID is the site's dims id of page_view (0: none yet).
func pageViewID(ctx context.Context, tx pgx.Tx, site int32) (int32, error) {
	var id int32
	err := tx.QueryRow(ctx, "SELECT id FROM dims WHERE site_id = $1 AND kind = $2 AND value = $3", site, DimEventName, pageViewName).Scan(&id)
	if err != nil && !errors.Is(err, pgx.ErrNoRows) {
		return 0, fmt.Errorf("page_view id: %w", err)
	}
	return id, nil
}

// profileJoins joins events "e" to every profile table, aliased by its name.
func profileJoins() string {
	var b strings.Builder
	for _, p := range Profiles {
		b.WriteString(" LEFT JOIN " + p.Table + " ON " + p.Table + ".id = e." + p.Column)
	}
	return b.String()
}

// sessionRef is a session's start, traffic profile and landing page.
type sessionRef struct {
	ts      time.Time
	traffic int32
	landing int32
}

// sessionTraffics are the sessions events in a range may belong to, by
// visitor and session id, for RollupSessionTraffic and RollupLandingPage.
type sessionTraffics map[[2]int64][]sessionRef

// sessionTraffic reads the site's sessions that events in [lo, hi) may
// belong to (sessionsNear), as reports join them (SessionOf). They are looked up in Go rather than joined
// in SQL, so the day's events are read by the same statement as before
// the rows by session traffic source existed, whatever plan a join of
// unnested event packs with sessions would get.
func sessionTraffic(ctx context.Context, tx pgx.Tx, site int32, lo, hi time.Time) (sessionTraffics, error) {
	out, err := sessionTrafficWhere(ctx, tx, sessionsNear("ts", "$2", "$3"), site, lo, hi)
	if err != nil {
		return nil, fmt.Errorf("read sessions of %s: %w", lo.Format(time.DateOnly), err)
	}
	return out, nil
}

// sessionTrafficWhere reads the site's ($1) sessions meeting where (then
// args), for sessionTraffics.of: those of an erasure's subject or of its
// competitors.
func sessionTrafficWhere(ctx context.Context, tx pgx.Tx, where string, args ...any) (sessionTraffics, error) {
	rows, err := tx.Query(ctx, "SELECT visitor_id, session_id, ts, traffic_id, page_id FROM sessions WHERE site_id = $1 AND "+where, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := sessionTraffics{}
	var k [2]int64
	var ref sessionRef
	for rows.Next() {
		if err := rows.Scan(&k[0], &k[1], &ref.ts, &ref.traffic, &ref.landing); err != nil {
			return nil, err
		}
		out[k] = append(out[k], ref)
	}
	return out, rows.Err()
}

// of is the traffic profile and landing page of the session of an event
// of visitor with session id at ts; 0 without one.
func (s sessionTraffics) of(visitor, session int64, ts time.Time) (traffic, landing int32) {
	for _, ref := range s[[2]int64{visitor, session}] {
		if !ref.ts.Before(ts.Add(-25*time.Hour)) && !ref.ts.After(ts.Add(73*time.Hour)) {
			return ref.traffic, ref.landing
		}
	}
	return 0, 0
}
