package postgres

import (
	"context"
	"errors"
	"fmt"
	"math/bits"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"
)

// Reading the rollups: a rollup cell (site, kind, day, dim_id) is a row of
// rollup_days until its day is packed (PackRollups), then an element of
// the arrays of its day's rollup_packs row (a page title kind's row may be a
// reference to the page path kind's, expanded by rollupPacks); its users and
// new users sketches may be a marker for its active-users sketch
// (ExpandUsers, sketch_active.go). Readers get the cells as
// rows whatever the layout (RollupsIn) or read them through the typed
// reads below (SumRollupCounters, ReadRollupSketches); session_rollups
// are not packed (SessionRollupsIn) and their users and new users
// sketches take the same marker.

// Querier runs a statement: the report pool, a replica or a report
// snapshot's transaction.
type Querier interface {
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
}

// RollupCounterColumns are rollup_days' counter columns (and rollup_packs'
// arrays of them); SessionRollupCounterColumns are session_rollups', the
// same first.
var (
	RollupCounterColumns        = []string{"events", "page_views", "key_events", "engagement_ms"}
	SessionRollupCounterColumns = append(RollupCounterColumns[:len(RollupCounterColumns):len(RollupCounterColumns)], "sessions", "engaged", "duration_us")
)

// rollupCounterArrayType is the array type of each of RollupCounterColumns.
var rollupCounterArrayType = []string{"int[]", "int[]", "int[]", "int8[]"}

// RollupSketchColumns are the sketch columns of rollup_days and
// session_rollups; a set of them is given as bits by index (SketchUsers,
// SketchActive, SketchNew).
var RollupSketchColumns = []string{"users", "active_users", "new_users"}

// Sketch columns as bits of a set.
const (
	SketchUsers = 1 << iota
	SketchActive
	SketchNew
)

// RollupSketchReads are the sketch columns (a set of RollupSketchColumns)
// a reader of rollup_days reads to get the sketches of sketches: with the
// users or new users one, the active users one, which their markers stand
// for.
func RollupSketchReads(sketches int) int {
	if sketches&(SketchUsers|SketchNew) != 0 {
		return sketches | SketchActive
	}
	return sketches
}

// ExpandRollupSketches turns rollup_days' sketch columns as read (by
// RollupSketchReads(sketches); by column, nil: not read) into those of
// sketches: the markers among the users and new users sketches replaced
// by the active sketches beside them (ExpandUsers), the active sketches
// dropped when sketches does not hold them.
func ExpandRollupSketches(raw *[3][][]byte, sketches int) {
	if raw[1] == nil {
		return
	}
	for _, j := range markedSketches {
		for k, b := range raw[j] {
			raw[j][k] = ExpandUsers(b, raw[1][k])
		}
	}
	if sketches&SketchActive == 0 {
		raw[1] = nil
	}
}

// RollupAmountColumns are the columns of the amounts slots (a0, a1 … by
// slot) that RollupsIn gives with amounts.
var RollupAmountColumns = func() []string {
	out := make([]string, NumAmounts)
	for i := range out {
		out[i] = "a" + strconv.Itoa(i)
	}
	return out
}()

// RollupsIn is a subquery of the rollup cells of every site, kind and day
// as rows: rollup_days and the packed days of rollup_packs unnested into
// rows of the same columns (site_id, kind, day, dim_id,
// RollupCounterColumns), with the sketch columns of sketches (a set of
// RollupSketchColumns, as stored: read the users one through
// RollupSketchReads and ExpandRollupSketches) only, since a pack's sketch
// arrays are large and read only when asked for, and, with amounts, a
// column per amounts slot (RollupAmountColumns; NULL: 0). A statement's
// conditions on site_id, kind and day reach both tables' keys.
func RollupsIn(sketches int, amounts bool) string {
	cols := "dim_id, events, page_views, key_events, engagement_ms"
	arrays := "p.dim_ids, p.events, p.page_views, p.key_events, p.engagement_ms"
	for i, col := range RollupSketchColumns {
		if sketches&(1<<i) != 0 {
			cols += ", " + col
			arrays += ", p." + col
		}
	}
	if !amounts {
		return "(SELECT site_id, kind, day, " + cols + " FROM rollup_days UNION ALL SELECT p.site_id, p.kind, p.day, u.* FROM " + rollupPacks + " p, unnest(" +
			arrays + ") AS u(" + cols + "))"
	}
	dayAmounts, packAmounts := "", ""
	for i := range NumAmounts {
		n := strconv.Itoa(i)
		dayAmounts += ", amounts[" + n + " + 1] AS " + RollupAmountColumns[i]
		// A pack's cell i (from 1) has its slots from (i - 1) * slots + 1.
		packAmounts += ", p.amounts[(u.ord - 1) * " + strconv.Itoa(NumAmounts) + " + " + n + " + 1]"
	}
	return "(SELECT site_id, kind, day, " + cols + dayAmounts + " FROM rollup_days UNION ALL SELECT p.site_id, p.kind, p.day, u." +
		strings.ReplaceAll(cols, ", ", ", u.") + packAmounts + " FROM " + rollupPacks + " p, unnest(" +
		arrays + ") WITH ORDINALITY AS u(" + cols + ", ord))"
}

// SessionRollupsIn is the session rollup cells as rows (site_id, kind,
// day, dim_id, SessionRollupCounterColumns, RollupSketchColumns): session
// rollups are not packed; their users and new users sketches may be the
// marker, as
// rollup_days' (RollupSketchReads, ExpandRollupSketches).
func SessionRollupsIn() string { return "session_rollups" }

// RollupsOf selects a site's rollup cells of one kind on the local days
// [Lo, Hi) (UTC midnights).
type RollupsOf struct {
	Site   int32
	Kind   DimKind
	Lo, Hi time.Time
	// Packs, when set, keeps the dim_ids of the packs SumRollupCounters
	// reads, with their row versions, for a later ReadRollupSketches of
	// the same cells to find its dim_ids' positions in (PackDims).
	Packs *PackDims
}

// RollupDayCounts are one day's rollup cells as read: their dim_ids and,
// at the same index, their counters; a counter not read is nil (all 0).
type RollupDayCounts struct {
	Day                          time.Time
	Dims                         []int32
	Events, PageViews, KeyEvents []int32
	EngagementMs                 []int64
	// Amounts, when read: NumAmounts slots per cell, cell i's from
	// i * NumAmounts; a slot the cell does not hold is nil.
	Amounts []*float64
	version *string // a pack row's xmin; nil: rollup_days
}

// SumRollupCounters reads the cells of of and gives add each day's: the
// counters of counters (a set of RollupCounterColumns by index; the
// others are nil) and, with amounts, the amounts. A packed day comes as
// one row of its arrays and a day of rollup_days rows as one row of
// arrays of the same shape, so a reader summing thousands of cells a day
// pays no row per cell; counters not read cost no array's detoasting and
// decoding, and the integer arrays are decoded from their binary form
// directly (rawIntArray). A packed day's dim_ids ascend; rollup_days'
// come in no order. The packed days come first, in day order, then the
// days of rollup_days. d and its arrays are reused between calls.
//
// When of keeps the packs' dim_ids (of.Packs: a report ordered on
// counters, reading its page's sketches next, as top pages over
// thousands of groups), db runs statements at once (concurrent) and of
// spans two days or more, the days are read in two halves on two
// connections: PostgreSQL sends each array element by element (its
// binary send function per integer), most of the statement's time, and
// two backends do it on two cores while this goroutine decodes and adds
// the first half's. Each day is read whole by one statement, as one
// statement reads it. (A report of a few groups, devices, gains nothing
// from a second statement.)
func SumRollupCounters(ctx context.Context, db Querier, of RollupsOf, counters int, amounts bool, add func(d *RollupDayCounts)) error {
	// A pack's day is kept (of.Packs) and given at once; a day of
	// rollup_days waits in *rest, given after the packs as one statement
	// gives them.
	// owned: d's dim_ids are a clone of the statement's, kept as they are.
	givePack := func(d *RollupDayCounts, owned bool) {
		dims := d.Dims
		if !owned && of.Packs != nil {
			dims = slices.Clone(dims)
		}
		of.Packs.keep(of, d.Day, *d.version, dims)
		add(d)
	}
	packsFirst := func(rest *[]*RollupDayCounts) func(d *RollupDayCounts) {
		return func(d *RollupDayCounts) {
			if d.version == nil {
				*rest = append(*rest, d.clone())
				return
			}
			givePack(d, false)
		}
	}
	split, ok := halves(db, of)
	if !ok || of.Packs == nil {
		var rows []*RollupDayCounts // rollup_days', after the packs
		err := readCounterDays(ctx, db, of, counters, amounts, packsFirst(&rows))
		for _, d := range rows {
			add(d)
		}
		return err
	}
	first, second := split[0], split[1]
	var (
		later        []*RollupDayCounts // the second half's days
		err2         error
		done         = make(chan struct{})
		rows         []*RollupDayCounts // the first half's rollup_days days
		ctx2, cancel = context.WithCancel(ctx)
	)
	defer cancel()
	go func() {
		defer close(done)
		err2 = readCounterDays(ctx2, db, second, counters, amounts, func(d *RollupDayCounts) { later = append(later, d.clone()) })
	}()
	err := readCounterDays(ctx, db, first, counters, amounts, packsFirst(&rows))
	if err != nil {
		cancel()
	}
	<-done
	if err := errors.Join(err, err2); err != nil {
		return err
	}
	// Packs first, in day order, then the days of rollup_days, as one
	// statement gives them.
	for _, d := range later {
		if d.version != nil {
			givePack(d, true)
		}
	}
	for _, d := range rows {
		add(d)
	}
	for _, d := range later {
		if d.version == nil {
			add(d)
		}
	}
	return nil
}

// clone is a copy of d that shares none of its arrays.
func (d *RollupDayCounts) clone() *RollupDayCounts {
	c := *d
	c.Dims, c.Events, c.PageViews, c.KeyEvents = slices.Clone(d.Dims), slices.Clone(d.Events), slices.Clone(d.PageViews), slices.Clone(d.KeyEvents)
	c.EngagementMs, c.Amounts = slices.Clone(d.EngagementMs), slices.Clone(d.Amounts)
	if d.version != nil {
		v := *d.version
		c.version = &v
	}
	return &c
}

// readCounterDays runs SumRollupCounters' statement over of and gives
// each day to each (d and its arrays reused between calls; d.version set
// for a pack's row).
func readCounterDays(ctx context.Context, db Querier, of RollupsOf, counters int, amounts bool, each func(d *RollupDayCounts)) error {
	packCols, dayCols := "", ""
	for i, c := range RollupCounterColumns {
		if counters&(1<<i) != 0 {
			packCols += ", " + c
			dayCols += ", array_agg(" + c + ")"
		} else {
			packCols += ", NULL::" + rollupCounterArrayType[i]
			dayCols += ", NULL::" + rollupCounterArrayType[i]
		}
	}
	// Amounts: a pack's flat array, a day's rows' arrays one after
	// another (a row without amounts as NULLs), read flat.
	if amounts {
		packCols += ", amounts"
		dayCols += ", array_agg(COALESCE(amounts, array_fill(NULL::float8, ARRAY[" + strconv.Itoa(NumAmounts) + "])))"
	} else {
		packCols += ", NULL::float8[]"
		dayCols += ", NULL::float8[]"
	}
	res, err := db.Query(ctx, `SELECT day, version, dim_ids`+packCols+` FROM `+rollupPacks+` p
			WHERE site_id = $1 AND kind = $2 AND day >= $3 AND day < $4
		UNION ALL
		SELECT day, NULL, array_agg(dim_id)`+dayCols+` FROM rollup_days
			WHERE site_id = $1 AND kind = $2 AND day >= $3 AND day < $4 GROUP BY day`,
		of.Site, int16(of.Kind), of.Lo, of.Hi)
	if err != nil {
		return fmt.Errorf("postgres: sum rollups: %w", err)
	}
	defer res.Close()
	var (
		amts pgtype.FlatArray[*float64]
		d    RollupDayCounts
		// Columns 2 to 6: dim_ids and the counters, decoded from their
		// binary form when they come in it (raw), else by pgx.
		raw  = rawIntArrays(res.FieldDescriptions(), 2, 3, 4, 5, 6)
		dest = []any{&d.Day, &d.version, &d.Dims, &d.Events, &d.PageViews, &d.KeyEvents, &d.EngagementMs, &amts}
		bufs RollupDayCounts // the raw decoding's arrays, reused
	)
	if raw {
		dest = []any{&d.Day, &d.version, nil, nil, nil, nil, nil, &amts}
	}
	const slots = NumAmounts
	for res.Next() {
		if err := res.Scan(dest...); err != nil {
			return fmt.Errorf("postgres: sum rollups: %w", err)
		}
		if raw {
			vals := res.RawValues()
			var errs [5]error
			bufs.Dims, errs[0] = rawIntArray(vals[2], bufs.Dims)
			bufs.Events, errs[1] = rawIntArray(vals[3], bufs.Events)
			bufs.PageViews, errs[2] = rawIntArray(vals[4], bufs.PageViews)
			bufs.KeyEvents, errs[3] = rawIntArray(vals[5], bufs.KeyEvents)
			bufs.EngagementMs, errs[4] = rawIntArray(vals[6], bufs.EngagementMs)
			if err := errors.Join(errs[:]...); err != nil {
				return fmt.Errorf("postgres: sum rollups of %s: %w", d.Day.Format(time.DateOnly), err)
			}
			// A NULL (a counter not read) decodes as nil.
			d.Dims, d.Events, d.PageViews, d.KeyEvents, d.EngagementMs = bufs.Dims, bufs.Events, bufs.PageViews, bufs.KeyEvents, bufs.EngagementMs
		}
		n := len(d.Dims)
		if amts != nil && len(amts) != n*slots {
			return fmt.Errorf("postgres: sum rollups: BUG: rollups of %s have %d amounts for %d cells", d.Day.Format(time.DateOnly), len(amts), n)
		}
		if !lenOrNil(d.Events, n) || !lenOrNil(d.PageViews, n) || !lenOrNil(d.KeyEvents, n) || !lenOrNil(d.EngagementMs, n) {
			return fmt.Errorf("postgres: sum rollups: BUG: rollups of %s have arrays of unequal lengths", d.Day.Format(time.DateOnly))
		}
		d.Amounts = amts
		each(&d)
	}
	if err := res.Err(); err != nil {
		return fmt.Errorf("postgres: sum rollups: %w", err)
	}
	return nil
}

// lenOrNil reports whether a was not read (nil) or holds n values.
func lenOrNil[T int32 | int64](a []T, n int) bool {
	return a == nil || len(a) == n
}

// ReadRollupSketches reads the sketches of sketches (a set of
// RollupSketchColumns; the users and new users ones expanded from their
// markers) of
// the cells of of whose dim_id is one of ids (ascending, distinct), and
// gives each cell's to add, by column in RollupSketchColumns' order (sks
// is reused between calls). Nothing is grouped in SQL. With every, ids
// are all the dim_ids the caller wants of the range: the packs are read
// whole instead of searched for each dim_id.
func ReadRollupSketches(ctx context.Context, db Querier, of RollupsOf, ids []int32, every bool, sketches int, add func(day time.Time, dim int32, sks [][]byte)) error {
	reads := RollupSketchReads(sketches)
	var cols, arrays []string
	for i, col := range RollupSketchColumns {
		if reads&(1<<i) != 0 {
			cols = append(cols, "r."+col)
			arrays = append(arrays, "p."+col)
		}
	}
	if !every {
		return pickRollupSketches(ctx, db, of, ids, reads, sketches, add)
	}
	// The packs' arrays whole, a day's rows aggregated into arrays of the
	// same shape: one row a day, unnested in Go (a row per value and day
	// cost more than merging them).
	aggs := make([]string, len(cols))
	for i, c := range cols {
		aggs[i] = "array_agg(" + c + ")"
	}
	query := `SELECT p.day, p.dim_ids, ` + strings.Join(arrays, ", ") + ` FROM ` + rollupPacks + ` p
			WHERE p.site_id = $1 AND p.kind = $2 AND p.day >= $3 AND p.day < $4
		UNION ALL
		SELECT r.day, array_agg(r.dim_id), ` + strings.Join(aggs, ", ") + ` FROM rollup_days r
			WHERE r.site_id = $1 AND r.kind = $2 AND r.day >= $3 AND r.day < $4 AND r.dim_id = ANY($5::int[]) GROUP BY r.day`
	return scanSketchRows(ctx, db, reads, sketches, add, query, of.Site, int16(of.Kind), of.Lo, of.Hi, ids)
}

// scanSketchRows runs query (rows of a day, its dim_ids and its cells'
// sketch arrays by the columns of reads) and gives add each cell's
// sketches (sketchScan).
func scanSketchRows(ctx context.Context, db Querier, reads, sketches int, add func(day time.Time, dim int32, sks [][]byte), query string, args ...any) error {
	res, err := db.Query(ctx, query, args...)
	if err != nil {
		return fmt.Errorf("postgres: read rollup sketches: %w", err)
	}
	defer res.Close()
	sc := newSketchScan(reads, sketches, nil)
	for res.Next() {
		if err := res.Scan(sc.dest...); err != nil {
			return fmt.Errorf("postgres: read rollup sketches: %w", err)
		}
		if err := sc.give(add); err != nil {
			return err
		}
	}
	if err := res.Err(); err != nil {
		return fmt.Errorf("postgres: read rollup sketches: %w", err)
	}
	return nil
}

// sketchScan scans rows of a day, its dim_ids and its cells' sketch
// arrays (by the columns of reads, in RollupSketchColumns' order), and
// gives each cell's sketches (those of sketches, the users and new users
// ones expanded from their markers) to an add function.
type sketchScan struct {
	sketches int
	day      time.Time
	dims     []int32
	sks      [][][]byte
	dest     []any
	// one: a cell's sketches by column read; out: those of sketches.
	one, out [][]byte
	// users, active, news: the positions of those columns among those
	// read (-1: not read).
	users, active, news int
}

// newSketchScan scans the sketch columns of reads after the day and
// dim_ids, and after the columns of extra.
func newSketchScan(reads, sketches int, extra []any) *sketchScan {
	n := bits.OnesCount(uint(reads))
	sc := &sketchScan{sketches: sketches, sks: make([][][]byte, n), one: make([][]byte, n), out: make([][]byte, 0, n), users: -1, active: -1, news: -1}
	sc.dest = append([]any{&sc.day}, extra...)
	sc.dest = append(sc.dest, &sc.dims)
	for i := range sc.sks {
		sc.dest = append(sc.dest, &sc.sks[i])
	}
	if reads&SketchUsers != 0 {
		sc.users = 0
	}
	if reads&SketchActive != 0 {
		sc.active = sc.users + 1
	}
	if reads&SketchNew != 0 {
		sc.news = n - 1
	}
	return sc
}

// give gives the scanned row's cells to add.
func (sc *sketchScan) give(add func(day time.Time, dim int32, sks [][]byte)) error {
	for k, dim := range sc.dims {
		for i := range sc.sks {
			if k >= len(sc.sks[i]) {
				return fmt.Errorf("postgres: read rollup sketches: %s holds %d dim_ids and %d sketches", sc.day.Format(time.DateOnly), len(sc.dims), len(sc.sks[i]))
			}
			sc.one[i] = sc.sks[i][k]
		}
		for _, j := range [2]int{sc.users, sc.news} {
			if j >= 0 {
				sc.one[j] = ExpandUsers(sc.one[j], sc.one[sc.active])
			}
		}
		sc.out = sc.out[:0]
		for i := range sc.one {
			if i == sc.active && sc.sketches&SketchActive == 0 {
				continue
			}
			sc.out = append(sc.out, sc.one[i])
		}
		add(sc.day, dim, sc.out)
	}
	return nil
}
