package postgres

import (
	"cmp"
	"context"
	"fmt"
	"maps"
	"slices"
	"time"

	"github.com/axiomhq/hyperloglog"
	"github.com/jackc/pgx/v5"

	"github.com/avila-analytics/avila/protocol"
)

// RollupKinds are the dims kinds with rows in rollup_days besides kind 0
// (all events): the dimensions a dashboard groups by.
var RollupKinds = []DimKind{DimEventName, DimPagePath, DimHost, DimTitle, DimReferrer, DimCountry, DimBrowser, DimOS, DimDevice}

// RollupPrecision is the HyperLogLog precision of rollup sketches: 2^14
// registers, a standard error of about 0.8%.
const RollupPrecision = 14

// pageViewName is the event GA4 counts as a page view.
const pageViewName = "page_view"

// rollupKey identifies a rollup_days row.
type rollupKey struct {
	site int32
	kind int16
	day  time.Time // local date as UTC midnight
	dim  int32
}

func compareRollupKeys(a, b rollupKey) int {
	return cmp.Or(cmp.Compare(a.site, b.site), cmp.Compare(a.kind, b.kind), a.day.Compare(b.day), cmp.Compare(a.dim, b.dim))
}

// rollupCell accumulates one rollup row's delta.
type rollupCell struct {
	events, views, keyEvents int32
	engageMs                 int64
	users, active, newUsers  *hyperloglog.Sketch
}

func newRollupCell() *rollupCell {
	return &rollupCell{users: NewSketch(), active: NewSketch(), newUsers: NewSketch()}
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

// add counts one event; loc is its site's time zone.
func (a rollupAgg) add(row *eventRow, loc *time.Location) {
	y, m, d := row.ts.In(loc).Date()
	day := time.Date(y, m, d, 0, 0, 0, 0, time.UTC)
	h := VisitorHash(uint64(row.visitor))
	flags := uint8(row.flags)
	active := flags&(protocol.FlagEngaged|protocol.FlagFirstVisit) != 0 || row.engage > 0
	first := flags&protocol.FlagFirstVisit != 0
	for i := -1; i < len(RollupKinds); i++ {
		k := rollupKey{site: row.site, day: day}
		if i >= 0 {
			k.kind = int16(RollupKinds[i])
			k.dim = row.dims[RollupKinds[i]-1]
		}
		c := a[k]
		if c == nil {
			c = newRollupCell()
			a[k] = c
		}
		c.events++
		if row.pageView {
			c.views++
		}
		if flags&protocol.FlagKeyEvent != 0 {
			c.keyEvents++
		}
		c.engageMs += int64(row.engage)
		c.users.InsertHash(h)
		if active {
			c.active.InsertHash(h)
		}
		if first {
			c.newUsers.InsertHash(h)
		}
	}
}

// siteZones reads the time zones of the sites in rows, locking their sites
// rows FOR SHARE so a rollup rebuild (which locks them FOR UPDATE) never
// interleaves with a batch. A site without a row counts in UTC.
func siteZones(ctx context.Context, tx pgx.Tx, rows []eventRow) (map[int32]*time.Location, error) {
	zones := make(map[int32]*time.Location)
	var ids []int32
	for i := range rows {
		if _, ok := zones[rows[i].site]; !ok {
			zones[rows[i].site] = time.UTC
			ids = append(ids, rows[i].site)
		}
	}
	slices.Sort(ids)
	res, err := tx.Query(ctx, "SELECT id, time_zone FROM sites WHERE id = ANY($1) ORDER BY id FOR SHARE", ids)
	if err != nil {
		return nil, fmt.Errorf("read site zones: %w", err)
	}
	defer res.Close()
	for res.Next() {
		var id int32
		var name string
		if err := res.Scan(&id, &name); err != nil {
			return nil, fmt.Errorf("read site zones: %w", err)
		}
		loc, err := time.LoadLocation(name)
		if err != nil {
			return nil, fmt.Errorf("site %d: time zone %q: %w", id, name, err)
		}
		zones[id] = loc
	}
	if err := res.Err(); err != nil {
		return nil, fmt.Errorf("read site zones: %w", err)
	}
	return zones, nil
}

// writeRollups adds rows to rollup_days inside tx. Counters add up in SQL;
// sketches are merged here with the stored ones, read under row locks: new
// keys are inserted first (a concurrent batch with the same key waits for
// this one) and all keys are then locked in key order, so two batches never
// overwrite each other's sketches and never deadlock on rollup rows.
func writeRollups(ctx context.Context, tx pgx.Tx, rows []eventRow) error {
	if len(rows) == 0 {
		return nil
	}
	zones, err := siteZones(ctx, tx, rows)
	if err != nil {
		return err
	}
	agg := make(rollupAgg)
	for i := range rows {
		agg.add(&rows[i], zones[rows[i].site])
	}
	return agg.store(ctx, tx)
}

// store writes the deltas in agg to rollup_days inside tx.
func (a rollupAgg) store(ctx context.Context, tx pgx.Tx) error {
	keys := slices.SortedFunc(maps.Keys(a), compareRollupKeys)
	n := len(keys)
	sites, kinds, days, dims := make([]int32, n), make([]int16, n), make([]time.Time, n), make([]int32, n)
	for i, k := range keys {
		sites[i], kinds[i], days[i], dims[i] = k.site, k.kind, k.day, k.dim
	}
	const keyArgs = "unnest($1::int[], $2::int2[], $3::date[], $4::int[]) WITH ORDINALITY AS u(site_id, kind, day, dim_id, i)"
	if _, err := tx.Exec(ctx, `INSERT INTO rollup_days (site_id, kind, day, dim_id)
		SELECT site_id, kind, day, dim_id FROM `+keyArgs+` ORDER BY i ON CONFLICT DO NOTHING`,
		sites, kinds, days, dims); err != nil {
		return fmt.Errorf("insert rollup keys: %w", err)
	}
	res, err := tx.Query(ctx, `SELECT u.i, r.users, r.active_users, r.new_users FROM `+keyArgs+`
		JOIN rollup_days r USING (site_id, kind, day, dim_id) ORDER BY u.i FOR UPDATE OF r`,
		sites, kinds, days, dims)
	if err != nil {
		return fmt.Errorf("lock rollups: %w", err)
	}
	for res.Next() {
		var i int64
		var stored [3][]byte
		if err := res.Scan(&i, &stored[0], &stored[1], &stored[2]); err != nil {
			res.Close()
			return fmt.Errorf("lock rollups: %w", err)
		}
		if i < 1 || i > int64(n) {
			res.Close()
			return fmt.Errorf("lock rollups: BUG: ordinality %d of %d keys", i, n)
		}
		c := a[keys[i-1]]
		for j, sk := range []*hyperloglog.Sketch{c.users, c.active, c.newUsers} {
			if err := MergeSketch(sk, stored[j]); err != nil {
				res.Close()
				return fmt.Errorf("lock rollups: %w", err)
			}
		}
	}
	res.Close()
	if err := res.Err(); err != nil {
		return fmt.Errorf("lock rollups: %w", err)
	}
	events, views, keyEvents := make([]int32, n), make([]int32, n), make([]int32, n)
	engage := make([]int64, n)
	users, active, newUsers := make([][]byte, n), make([][]byte, n), make([][]byte, n)
	for i, k := range keys {
		c := a[k]
		events[i], views[i], keyEvents[i], engage[i] = c.events, c.views, c.keyEvents, c.engageMs
		for _, x := range []struct {
			dst [][]byte
			sk  *hyperloglog.Sketch
		}{{users, c.users}, {active, c.active}, {newUsers, c.newUsers}} {
			b, err := x.sk.MarshalBinary()
			if err != nil {
				return fmt.Errorf("encode sketch: %w", err)
			}
			x.dst[i] = b
		}
	}
	if _, err := tx.Exec(ctx, `UPDATE rollup_days r SET events = r.events + u.events, page_views = r.page_views + u.views,
			key_events = r.key_events + u.key_events, engagement_ms = r.engagement_ms + u.engage,
			users = u.users, active_users = u.active, new_users = u.new_users
		FROM unnest($1::int[], $2::int2[], $3::date[], $4::int[], $5::int[], $6::int[], $7::int[], $8::int8[], $9::bytea[], $10::bytea[], $11::bytea[])
			AS u(site_id, kind, day, dim_id, events, views, key_events, engage, users, active, new_users)
		WHERE r.site_id = u.site_id AND r.kind = u.kind AND r.day = u.day AND r.dim_id = u.dim_id`,
		sites, kinds, days, dims, events, views, keyEvents, engage, users, active, newUsers); err != nil {
		return fmt.Errorf("update rollups: %w", err)
	}
	return nil
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
