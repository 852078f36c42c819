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
var RollupKinds = []DimKind{DimEventName, DimPagePath, DimHost, DimTitle, DimReferrer, DimCountry, DimBrowser, DimOS, DimDevice,
	DimSource, DimChannelGroup}

// RollupHour is the rollup_days kind of hourly rows: every event of the
// local day by its local hour, dim_id the hour (0 to 23). Not a dims kind.
// A local hour that repeats when clocks go back is one row, as it is one
// value of GA4's hour dimension.
const RollupHour DimKind = 100

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

// add counts one event; loc is its site's time zone.
func (a rollupAgg) add(row *eventRow, loc *time.Location) {
	local := row.ts.In(loc)
	y, m, d := local.Date()
	day := time.Date(y, m, d, 0, 0, 0, 0, time.UTC)
	h := VisitorHash(uint64(row.visitor))
	flags := uint8(row.flags)
	active := flags&(protocol.FlagEngaged|protocol.FlagFirstVisit) != 0 || row.engage > 0
	first := flags&protocol.FlagFirstVisit != 0
	for i := -2; i < len(RollupKinds); i++ {
		k := rollupKey{site: row.site, day: day}
		switch {
		case i == -2:
			k.kind, k.dim = int16(RollupHour), int32(local.Hour())
		case i >= 0:
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

// writeRollups adds rows to rollup_days inside tx (see rollupAgg.store).
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

// store writes the deltas in a to rollup_days inside tx. Counters add up
// in SQL; sketches are merged here with the stored ones, read under row
// locks (taken in key order), so concurrent batches never overwrite each
// other's sketches. Keys without a row are inserted with their values; a
// key another transaction inserted meanwhile (the insert waited for it to
// commit, then did nothing) is locked and merged on the next round.
func (a rollupAgg) store(ctx context.Context, tx pgx.Tx) error {
	pending := slices.SortedFunc(maps.Keys(a), compareRollupKeys)
	// A key raced in one round is a committed row in the next, which
	// locks it: rounds end. (Only RebuildRollups deletes rows, and it
	// excludes batches of its site.)
	for len(pending) > 0 {
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("store rollups: %w", err)
		}
		found, err := a.lockAndMerge(ctx, tx, pending)
		if err != nil {
			return err
		}
		var existing, missing []rollupKey
		for i, k := range pending {
			if found[i] {
				existing = append(existing, k)
			} else {
				missing = append(missing, k)
			}
		}
		if err := a.write(ctx, tx, existing); err != nil {
			return err
		}
		inserted, err := a.insert(ctx, tx, missing)
		if err != nil {
			return err
		}
		pending = pending[:0]
		for i, k := range missing {
			if !inserted[i] {
				pending = append(pending, k)
			}
		}
	}
	return nil
}

// keyArrays are keys as the parallel arrays $1..$4 of the rollup statements.
func keyArrays(keys []rollupKey) []any {
	n := len(keys)
	sites, kinds, days, dims := make([]int32, n), make([]int16, n), make([]time.Time, n), make([]int32, n)
	for i, k := range keys {
		sites[i], kinds[i], days[i], dims[i] = k.site, k.kind, k.day, k.dim
	}
	return []any{sites, kinds, days, dims}
}

const keyUnnest = "unnest($1::int[], $2::int2[], $3::date[], $4::int[]) WITH ORDINALITY AS u(site_id, kind, day, dim_id, i)"

// lockAndMerge locks the stored rows of keys, merges their sketches into
// a's cells and reports which keys have a row.
func (a rollupAgg) lockAndMerge(ctx context.Context, tx pgx.Tx, keys []rollupKey) ([]bool, error) {
	found := make([]bool, len(keys))
	res, err := tx.Query(ctx, `SELECT u.i, r.users, r.active_users, r.new_users FROM `+keyUnnest+`
		JOIN rollup_days r USING (site_id, kind, day, dim_id) ORDER BY u.i FOR UPDATE OF r`, keyArrays(keys)...)
	if err != nil {
		return nil, fmt.Errorf("lock rollups: %w", err)
	}
	defer res.Close()
	for res.Next() {
		var i int64
		var stored [3][]byte
		if err := res.Scan(&i, &stored[0], &stored[1], &stored[2]); err != nil {
			return nil, fmt.Errorf("lock rollups: %w", err)
		}
		if i < 1 || i > int64(len(keys)) {
			return nil, fmt.Errorf("lock rollups: BUG: ordinality %d of %d keys", i, len(keys))
		}
		found[i-1] = true
		c := a[keys[i-1]]
		for j, sk := range []*hyperloglog.Sketch{c.users, c.active, c.newUsers} {
			if err := MergeSketch(sk, stored[j]); err != nil {
				return nil, fmt.Errorf("lock rollups: %w", err)
			}
		}
	}
	if err := res.Err(); err != nil {
		return nil, fmt.Errorf("lock rollups: %w", err)
	}
	return found, nil
}

// values are the arrays $5..$11 of a's cells for keys: counters and
// serialized sketches, NULL for an empty one.
func (a rollupAgg) values(keys []rollupKey) ([]any, error) {
	n := len(keys)
	events, views, keyEvents := make([]int32, n), make([]int32, n), make([]int32, n)
	engage := make([]int64, n)
	sketches := [3][][]byte{make([][]byte, n), make([][]byte, n), make([][]byte, n)}
	for i, k := range keys {
		c := a[k]
		events[i], views[i], keyEvents[i], engage[i] = c.events, c.views, c.keyEvents, c.engageMs
		for j, sk := range []*hyperloglog.Sketch{c.users, c.active, c.newUsers} {
			b, err := encodeSketch(sk)
			if err != nil {
				return nil, err
			}
			sketches[j][i] = b
		}
	}
	return []any{events, views, keyEvents, engage, sketches[0], sketches[1], sketches[2]}, nil
}

// write updates the (locked) rows of keys: counters add, sketches are
// replaced by the merged ones.
func (a rollupAgg) write(ctx context.Context, tx pgx.Tx, keys []rollupKey) error {
	if len(keys) == 0 {
		return nil
	}
	vals, err := a.values(keys)
	if err != nil {
		return err
	}
	if _, err := tx.Exec(ctx, `UPDATE rollup_days r SET events = r.events + u.events, page_views = r.page_views + u.views,
			key_events = r.key_events + u.key_events, engagement_ms = r.engagement_ms + u.engage,
			users = u.users, active_users = u.active, new_users = u.new_users
		FROM unnest($1::int[], $2::int2[], $3::date[], $4::int[], $5::int[], $6::int[], $7::int[], $8::int8[], $9::bytea[], $10::bytea[], $11::bytea[])
			AS u(site_id, kind, day, dim_id, events, views, key_events, engage, users, active, new_users)
		WHERE r.site_id = u.site_id AND r.kind = u.kind AND r.day = u.day AND r.dim_id = u.dim_id`,
		append(keyArrays(keys), vals...)...); err != nil {
		return fmt.Errorf("update rollups: %w", err)
	}
	return nil
}

// insert adds rows for keys, in key order, and reports which it inserted;
// a key inserted by another transaction meanwhile is left alone.
func (a rollupAgg) insert(ctx context.Context, tx pgx.Tx, keys []rollupKey) ([]bool, error) {
	done := make([]bool, len(keys))
	if len(keys) == 0 {
		return done, nil
	}
	vals, err := a.values(keys)
	if err != nil {
		return nil, err
	}
	res, err := tx.Query(ctx, `WITH ins AS (
			INSERT INTO rollup_days (site_id, kind, day, dim_id, events, page_views, key_events, engagement_ms, users, active_users, new_users)
			SELECT site_id, kind, day, dim_id, events, views, key_events, engage, users, active, new_users
			FROM unnest($1::int[], $2::int2[], $3::date[], $4::int[], $5::int[], $6::int[], $7::int[], $8::int8[], $9::bytea[], $10::bytea[], $11::bytea[])
				WITH ORDINALITY AS u(site_id, kind, day, dim_id, events, views, key_events, engage, users, active, new_users, i)
			ORDER BY i
			ON CONFLICT DO NOTHING RETURNING site_id, kind, day, dim_id)
		SELECT u.i FROM ins JOIN `+keyUnnest+` USING (site_id, kind, day, dim_id)`, append(keyArrays(keys), vals...)...)
	if err != nil {
		return nil, fmt.Errorf("insert rollups: %w", err)
	}
	defer res.Close()
	for res.Next() {
		var i int64
		if err := res.Scan(&i); err != nil {
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

// encodeSketch serializes sk, nil for an empty sketch.
func encodeSketch(sk *hyperloglog.Sketch) ([]byte, error) {
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
