package postgres

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"time"

	"github.com/jackc/pgx/v5"
)

// A closed local day's rollup_days rows of one kind are packed into one
// rollup_packs row of parallel arrays (migration 012). Days stay unpacked
// while batches still write them: today and yesterday in the site's time
// zone (late events of packed days add rows to rollup_days again, which
// the next pass packs). Reports read both tables and add them up.

// packedBefore is the first local day of loc, at now, that stays in
// rollup_days: days before it are packed.
func packedBefore(now time.Time, loc *time.Location) time.Time {
	y, m, d := now.In(loc).Date()
	return time.Date(y, m, d-1, 0, 0, 0, 0, time.UTC)
}

// packEntry is one dim_id's values in a pack.
type packEntry struct {
	events, views, keyEvents int32
	engageMs                 int64
	amounts                  *Amounts  // nil: every slot 0
	sketches                 [3][]byte // users, active, new; nil: empty
}

// addCounters adds o's counters and amounts, times sign (1 or -1), to
// e's: the one place a rollup counter is summed, for packs, folds and
// erasures.
func (e *packEntry) addCounters(o *packEntry, sign int32) {
	e.events += sign * o.events
	e.views += sign * o.views
	e.keyEvents += sign * o.keyEvents
	e.engageMs += int64(sign) * o.engageMs
	if o.amounts != nil {
		if e.amounts == nil {
			e.amounts = new(Amounts)
		}
		e.amounts.addTimes(o.amounts, float64(sign))
		if e.amounts.zero() {
			e.amounts = nil
		}
	}
}

// held reports whether e counts anything: events, or amounts (item cells
// count no events).
func (e *packEntry) held() bool {
	return e.events > 0 || (e.amounts != nil && !e.amounts.zero())
}

// entry is c's counters, amounts and serialized sketches.
func (c *rollupCell) entry() (*packEntry, error) {
	e := &packEntry{events: c.events, views: c.views, keyEvents: c.keyEvents, engageMs: c.engageMs, amounts: c.amounts}
	for j := range c.sketches.sk {
		b, err := c.sketches.deltaBytes(j)
		if err != nil {
			return nil, err
		}
		e.sketches[j] = b
	}
	return e, nil
}

// cell is a rollup cell holding e's counters, amounts and serialized
// sketches, for rollupAgg's statements.
func (e *packEntry) cell() *rollupCell {
	c := newRollupCell()
	c.events, c.views, c.keyEvents, c.engageMs, c.amounts = e.events, e.views, e.keyEvents, e.engageMs, e.amounts
	c.sketches.enc = e.sketches
	return c
}

// add adds o to e: counters sum, sketches merge.
func (e *packEntry) add(o *packEntry) error {
	e.addCounters(o, 1)
	for j, b := range o.sketches {
		switch {
		case len(b) == 0:
		case len(e.sketches[j]) == 0:
			e.sketches[j] = b
		default:
			sk := NewSketch()
			if err := MergeSketch(sk, e.sketches[j]); err != nil {
				return err
			}
			if err := MergeSketch(sk, b); err != nil {
				return err
			}
			enc, err := encodeSketch(sk)
			if err != nil {
				return err
			}
			e.sketches[j] = enc
		}
	}
	return nil
}

// pack is one rollup_packs row being built: entries by dim_id.
type pack map[int32]*packEntry

// add adds entry to the pack's dim.
func (p pack) add(dim int32, entry *packEntry) error {
	if e := p[dim]; e != nil {
		return e.add(entry)
	}
	p[dim] = entry
	return nil
}

// packKey identifies a rollup_packs row of a site.
type packKey struct {
	kind int16
	day  time.Time // local date as UTC midnight
}

// packs turns a's cells of site into packs by kind and day.
func (a rollupAgg) packs(site int32) (map[packKey]pack, error) {
	a.settle()
	out := make(map[packKey]pack)
	for k, c := range a {
		if k.site != site {
			continue
		}
		e, err := c.entry()
		if err != nil {
			return nil, err
		}
		pk := packKey{kind: int16(k.kind), day: dayDate(k.day)}
		if out[pk] == nil {
			out[pk] = make(pack)
		}
		if err := out[pk].add(k.dim, e); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// readPacks adds the stored packs of site and day into packs, locking
// their rows; a reference pack comes with its referenced pack's values.
func readPacks(ctx context.Context, tx pgx.Tx, site int32, day time.Time, packs map[packKey]pack) error {
	if _, err := tx.Exec(ctx, "SELECT FROM rollup_packs WHERE site_id = $1 AND day = $2 FOR UPDATE", site, day); err != nil {
		return fmt.Errorf("lock packs: %w", err)
	}
	res, err := tx.Query(ctx, `SELECT kind, dim_ids, events, page_views, key_events, engagement_ms, users, active_users, new_users, amounts
		FROM `+rollupPacks+` p WHERE site_id = $1 AND day = $2 ORDER BY kind`, site, day)
	if err != nil {
		return fmt.Errorf("read packs: %w", err)
	}
	defer res.Close()
	for res.Next() {
		var (
			kind                     int16
			dims, events, views, kev []int32
			engage                   []int64
			sks                      [3][][]byte
			amounts                  []*float64
		)
		if err := res.Scan(&kind, &dims, &events, &views, &kev, &engage, &sks[0], &sks[1], &sks[2], &amounts); err != nil {
			return fmt.Errorf("read packs: %w", err)
		}
		n := len(dims)
		if len(events) != n || len(views) != n || len(kev) != n || len(engage) != n || len(sks[0]) != n || len(sks[1]) != n || len(sks[2]) != n {
			return fmt.Errorf("read packs: BUG: pack of kind %d on %s has arrays of unequal lengths", kind, day.Format(time.DateOnly))
		}
		if amounts != nil && len(amounts) != n*NumAmounts {
			return fmt.Errorf("read packs: BUG: pack of kind %d on %s has %d amounts for %d cells", kind, day.Format(time.DateOnly), len(amounts), n)
		}
		pk := packKey{kind: kind, day: day}
		if packs[pk] == nil {
			packs[pk] = make(pack)
		}
		for i, dim := range dims {
			e := &packEntry{events: events[i], views: views[i], keyEvents: kev[i], engageMs: engage[i],
				sketches: [3][]byte{sks[0][i], sks[1][i], sks[2][i]}}
			ExpandSketches(&e.sketches)
			if amounts != nil {
				e.amounts = amountsOf(amounts[i*NumAmounts : (i+1)*NumAmounts])
			}
			if err := packs[pk].add(dim, e); err != nil {
				return fmt.Errorf("read packs: %w", err)
			}
		}
	}
	if err := res.Err(); err != nil {
		return fmt.Errorf("read packs: %w", err)
	}
	return nil
}

// packUpsert writes one rollup_packs row, replacing the row of its key:
// $1..$4 the key and dim_ids, $5..$12 its arrays and amounts, $13 and
// $14 ref_kind and ref_pos (NULL for a pack holding its own values; for a
// reference, its own arrays are empty).
const packUpsert = `INSERT INTO rollup_packs (site_id, kind, day, dim_ids, events, page_views, key_events, engagement_ms,
		users, active_users, new_users, amounts, ref_kind, ref_pos)
	VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)
	ON CONFLICT (site_id, kind, day) DO UPDATE SET dim_ids = EXCLUDED.dim_ids, events = EXCLUDED.events,
		page_views = EXCLUDED.page_views, key_events = EXCLUDED.key_events, engagement_ms = EXCLUDED.engagement_ms,
		users = EXCLUDED.users, active_users = EXCLUDED.active_users, new_users = EXCLUDED.new_users, amounts = EXCLUDED.amounts,
		ref_kind = EXCLUDED.ref_kind, ref_pos = EXCLUDED.ref_pos`

// writePacks stores packs of site, replacing rows of the same keys. A
// pack of a kind that may reference another (packRefs) is stored as a
// reference when the referenced kind's pack of its day is among packs and
// holds an equal cell for each of its cells; packs must hold the
// partners (packPartners) of every pack they hold that the site has, so
// no stored reference is left naming a pack rewritten without it.
func writePacks(ctx context.Context, tx pgx.Tx, site int32, packs map[packKey]pack) error {
	if len(packs) == 0 {
		return nil
	}
	var b pgx.Batch
	keys := slices.SortedFunc(maps.Keys(packs), func(a, b packKey) int {
		if c := a.day.Compare(b.day); c != 0 {
			return c
		}
		return int(a.kind) - int(b.kind)
	})
	dimsOf := make(map[packKey][]int32, len(keys))
	for _, pk := range keys {
		dimsOf[pk] = slices.Sorted(maps.Keys(packs[pk]))
	}
	for _, pk := range keys {
		p := packs[pk]
		dims := dimsOf[pk]
		if to, ok := packRefs[pk.kind]; ok {
			tk := packKey{kind: to, day: pk.day}
			if pos, ok := packRef(p, dims, packs[tk], dimsOf[tk]); ok {
				// Its own arrays empty, amounts NULL.
				b.Queue(packUpsert, site, pk.kind, pk.day, dims, []int32{}, []int32{}, []int32{}, []int64{},
					[][]byte{}, [][]byte{}, [][]byte{}, []*float64(nil), &to, pos)
				continue
			}
		}
		n := len(dims)
		events, views, kev := make([]int32, n), make([]int32, n), make([]int32, n)
		engage := make([]int64, n)
		sks := [3][][]byte{make([][]byte, n), make([][]byte, n), make([][]byte, n)}
		var amounts []*float64 // nil (NULL) unless a cell has amounts
		for i, dim := range dims {
			e := p[dim]
			events[i], views[i], kev[i], engage[i] = e.events, e.views, e.keyEvents, e.engageMs
			for j, b := range compactSketches(e.sketches) {
				sks[j][i] = b
			}
			if e.amounts != nil && !e.amounts.zero() && amounts == nil {
				amounts = make([]*float64, 0, n*NumAmounts)
				for range i {
					amounts = appendPackAmounts(amounts, nil)
				}
			}
			if amounts != nil {
				amounts = appendPackAmounts(amounts, e.amounts)
			}
		}
		// No reference: ref_kind and ref_pos NULL.
		b.Queue(packUpsert, site, pk.kind, pk.day, dims, events, views, kev, engage, sks[0], sks[1], sks[2], amounts,
			(*int16)(nil), []int32(nil))
	}
	if err := tx.SendBatch(ctx, &b).Close(); err != nil {
		return fmt.Errorf("write packs: %w", err)
	}
	return nil
}

// packDay moves site's rollup_days rows of day into its packs. The caller
// holds the site's row lock FOR UPDATE, so no batch of the site writes
// meanwhile.
func packDay(ctx context.Context, tx pgx.Tx, site int32, day time.Time) error {
	packs := make(map[packKey]pack)
	if err := readPacks(ctx, tx, site, day, packs); err != nil {
		return err
	}
	res, err := tx.Query(ctx, `DELETE FROM rollup_days WHERE site_id = $1 AND day = $2
		RETURNING kind, dim_id, events, page_views, key_events, engagement_ms, users, active_users, new_users, amounts`, site, day)
	if err != nil {
		return fmt.Errorf("move rows: %w", err)
	}
	defer res.Close()
	for res.Next() {
		var kind int16
		var dim int32
		e := new(packEntry)
		var amounts []*float64
		if err := res.Scan(&kind, &dim, &e.events, &e.views, &e.keyEvents, &e.engageMs, &e.sketches[0], &e.sketches[1], &e.sketches[2], &amounts); err != nil {
			return fmt.Errorf("move rows: %w", err)
		}
		ExpandSketches(&e.sketches)
		e.amounts = amountsOf(amounts)
		pk := packKey{kind: kind, day: day}
		if packs[pk] == nil {
			packs[pk] = make(pack)
		}
		if err := packs[pk].add(dim, e); err != nil {
			return fmt.Errorf("move rows: %w", err)
		}
	}
	if err := res.Err(); err != nil {
		return fmt.Errorf("move rows: %w", err)
	}
	return writePacks(ctx, tx, site, packs)
}

// packDaysPerRun bounds the site days one PackRollups call packs, so a
// backlog (rows written before packing existed) drains over several runs
// instead of holding up one.
const packDaysPerRun = 200

// PackRollups packs the rollup_days rows of sites' closed days (before
// yesterday in the site's time zone at now) into rollup_packs, one site
// and day per transaction, oldest days first and at most packDaysPerRun
// of them. Each transaction holds the site's row lock, so the site's
// batches wait for it (one day's rows; once a day per site in steady
// state).
func (s *Store) PackRollups(ctx context.Context, now time.Time) error {
	if err := s.pruneUserDays(ctx, now); err != nil {
		return fmt.Errorf("postgres: pack rollups: %w", err)
	}
	res, err := s.pool.Query(ctx, `SELECT DISTINCT r.day, r.site_id FROM rollup_days r JOIN sites s ON s.id = r.site_id
		WHERE r.day < ($1::timestamptz AT TIME ZONE s.time_zone)::date - 1 ORDER BY 1, 2 LIMIT $2`, now, packDaysPerRun)
	if err != nil {
		return fmt.Errorf("postgres: pack rollups: %w", err)
	}
	type siteDay struct {
		site int32
		day  time.Time
	}
	todo, err := pgx.CollectRows(res, func(row pgx.CollectableRow) (siteDay, error) {
		var sd siteDay
		err := row.Scan(&sd.day, &sd.site)
		return sd, err
	})
	if err != nil {
		return fmt.Errorf("postgres: pack rollups: %w", err)
	}
	for _, sd := range todo {
		if err := s.packSiteDay(ctx, sd.site, sd.day); err != nil {
			return fmt.Errorf("postgres: pack rollups of site %d on %s: %w", sd.site, sd.day.Format(time.DateOnly), err)
		}
	}
	return nil
}

func (s *Store) packSiteDay(ctx context.Context, site int32, day time.Time) error {
	tx, err := s.pool.Begin(ctx)
	if err != nil {
		return fmt.Errorf("begin: %w", err)
	}
	defer tx.Rollback(context.WithoutCancel(ctx)) // no-op after Commit
	var one int
	err = tx.QueryRow(ctx, "SELECT 1 FROM sites WHERE id = $1 FOR UPDATE", site).Scan(&one)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil // deleted meanwhile
	}
	if err != nil {
		return fmt.Errorf("lock site: %w", err)
	}
	if err := packDay(ctx, tx, site, day); err != nil {
		return err
	}
	if err := tx.Commit(ctx); err != nil {
		return fmt.Errorf("commit: %w", err)
	}
	return nil
}
