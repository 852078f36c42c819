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

// firstVisitName is the event GA4 logs on a client's first visit.
const firstVisitName = "first_visit"

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
	// seen, when not nil, holds visitor hashes not yet in the sketches,
	// with their visitorUser/visitorActive/visitorNew bits (see settle).
	seen map[uint64]uint8
}

// Bits of rollupCell.seen.
const (
	visitorUser uint8 = 1 << iota
	visitorActive
	visitorNew
)

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

// add counts one event; loc is its site's time zone. With dedupe, visitors
// are collected per cell and go into the sketches once each, at settle:
// a derivation's many events of few visitors then cost one sketch insert
// per visitor and cell, not per event (a sparse sketch merges its list
// again and again otherwise). Without, they go in at once, and memory
// does not grow with visitors (rebuilds of whole days).
func (a rollupAgg) add(row *EventRow, loc *time.Location, dedupe bool) {
	local := row.TS.In(loc)
	y, m, d := local.Date()
	day := time.Date(y, m, d, 0, 0, 0, 0, time.UTC)
	h := VisitorHash(uint64(row.Visitor))
	flags := uint8(row.Flags)
	active := flags&(protocol.FlagEngaged|protocol.FlagFirstVisit) != 0 || row.Engage > 0
	first := flags&protocol.FlagFirstVisit != 0
	for i := -2; i < len(RollupKinds); i++ {
		k := rollupKey{site: row.Site, day: day}
		switch {
		case i == -2:
			k.kind, k.dim = int16(RollupHour), int32(local.Hour())
		case i >= 0:
			k.kind = int16(RollupKinds[i])
			k.dim = row.Dims[RollupKinds[i]-1]
		}
		c := a[k]
		if c == nil {
			c = newRollupCell()
			a[k] = c
		}
		c.events++
		if row.PageView {
			c.views++
		}
		if flags&protocol.FlagKeyEvent != 0 {
			c.keyEvents++
		}
		c.engageMs += int64(row.Engage)
		if dedupe {
			if c.seen == nil {
				c.seen = make(map[uint64]uint8)
			}
			bits := visitorUser
			if active {
				bits |= visitorActive
			}
			if first {
				bits |= visitorNew
			}
			c.seen[h] |= bits
			continue
		}
		c.users.InsertHash(h)
		if active {
			c.active.InsertHash(h)
		}
		if first {
			c.newUsers.InsertHash(h)
		}
	}
}

// settle puts the visitors collected by add with dedupe into the sketches.
func (a rollupAgg) settle() {
	for _, c := range a {
		for h, bits := range c.seen {
			c.users.InsertHash(h)
			if bits&visitorActive != 0 {
				c.active.InsertHash(h)
			}
			if bits&visitorNew != 0 {
				c.newUsers.InsertHash(h)
			}
		}
		c.seen = nil
	}
}

// AddRollups adds rows (events of the transaction's site) to rollup_days.
func (d *DeriveTx) AddRollups(ctx context.Context, rows []EventRow) error {
	if len(rows) == 0 {
		return nil
	}
	agg := make(rollupAgg)
	for i := range rows {
		agg.add(&rows[i], d.zone, true)
	}
	if err := agg.store(ctx, d.tx); err != nil {
		return fmt.Errorf("postgres: derive site %d: %w", d.site, err)
	}
	return nil
}

// store writes the deltas in a to rollup_days inside tx (storeRollupRounds).
func (a rollupAgg) store(ctx context.Context, tx pgx.Tx) error {
	a.settle()
	return storeRollupRounds(ctx, tx, slices.SortedFunc(maps.Keys(a), compareRollupKeys), a)
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

// sketches are the delta sketches of key k.
func (a rollupAgg) sketches(k rollupKey) [3]*hyperloglog.Sketch {
	c := a[k]
	return [3]*hyperloglog.Sketch{c.users, c.active, c.newUsers}
}

func (a rollupAgg) lockAndMerge(ctx context.Context, tx pgx.Tx, keys []rollupKey) ([]bool, error) {
	return lockAndMergeSketches(ctx, tx, "rollup_days", keys, a.sketches)
}

// values are the arrays $5..$11 of a's cells for keys: counters and
// serialized sketches, NULL for an empty one.
func (a rollupAgg) values(keys []rollupKey) ([]any, error) {
	n := len(keys)
	events, views, keyEvents := make([]int32, n), make([]int32, n), make([]int32, n)
	engage := make([]int64, n)
	for i, k := range keys {
		c := a[k]
		events[i], views[i], keyEvents[i], engage[i] = c.events, c.views, c.keyEvents, c.engageMs
	}
	sk, err := sketchArrays(keys, a.sketches)
	if err != nil {
		return nil, err
	}
	return []any{events, views, keyEvents, engage, sk[0], sk[1], sk[2]}, nil
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
	if len(keys) == 0 {
		return nil, nil
	}
	vals, err := a.values(keys)
	if err != nil {
		return nil, err
	}
	return insertRollupRows(ctx, tx, keys, `INSERT INTO rollup_days (site_id, kind, day, dim_id, events, page_views, key_events, engagement_ms, users, active_users, new_users)
		SELECT site_id, kind, day, dim_id, events, views, key_events, engage, users, active, new_users
		FROM unnest($1::int[], $2::int2[], $3::date[], $4::int[], $5::int[], $6::int[], $7::int[], $8::int8[], $9::bytea[], $10::bytea[], $11::bytea[])
			WITH ORDINALITY AS u(site_id, kind, day, dim_id, events, views, key_events, engage, users, active, new_users, i)
		ORDER BY i`, vals)
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
