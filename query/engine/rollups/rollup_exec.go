package rollups

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"math/big"
	"regexp"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/axiomhq/hyperloglog"

	"github.com/avila-analytics/avila/query/engine/sql"
	"github.com/avila-analytics/avila/query/plan"
	"github.com/avila-analytics/avila/storage/postgres"
)

// ErrNotCovered: a report forced onto the rollups asks what they lack.
var ErrNotCovered = errors.New("query: the rollups do not cover this report")

// rollupCell is one group's merged rollup rows. A report of thousands of
// groups has a cell each: what few of them hold (amounts, user counts) is
// kept apart, allocated when there is some.
type rollupCell struct {
	events, views, keyEvents, engageMs int64
	sessions, engaged, durationUs      int64             // session rollups only
	amounts                            *postgres.Amounts // nil: all zero (none read)
	users                              *cellUsers        // nil: no sketch merged or counted
}

// cellUsers are a cell's user counts: merged sketches or counts.
type cellUsers struct {
	sketches [3]*hyperloglog.Sketch // by sketch column; nil: not read
	// counted: the estimate of a sketch column computed from its inputs
	// instead of a merged sketch (hasCount; countRaw): from their encoded
	// hashes when the merge would have stayed sparse
	// (postgres.SparseUnionEstimate), else from their merged dense
	// registers (postgres.DenseUnionEstimate).
	counted  [3]int64
	hasCount [3]bool
}

// add adds o's counters to c's.
func (c *rollupCell) add(o *rollupCell) {
	c.events, c.views, c.keyEvents, c.engageMs = c.events+o.events, c.views+o.views, c.keyEvents+o.keyEvents, c.engageMs+o.engageMs
	c.sessions, c.engaged, c.durationUs = c.sessions+o.sessions, c.engaged+o.engaged, c.durationUs+o.durationUs
	c.addAmounts(o.amounts)
}

// addAmounts adds a (nil: all zero) to c's amounts, slot by slot as
// adding arrays of zeros would.
func (c *rollupCell) addAmounts(a *postgres.Amounts) {
	if a == nil && c.amounts == nil {
		return
	}
	if c.amounts == nil {
		c.amounts = new(postgres.Amounts)
	}
	for i := range c.amounts {
		v := 0.0
		if a != nil {
			v = a[i]
		}
		c.amounts[i] += v
	}
}

// amount is c's amount in slot (postgres.Amounts).
func (c *rollupCell) amount(slot int) float64 {
	if c.amounts == nil {
		return 0
	}
	return c.amounts[slot]
}

// userSketches are c's user counts, made empty if it had none.
func (c *rollupCell) userSketches() *cellUsers {
	if c.users == nil {
		c.users = new(cellUsers)
	}
	return c.users
}

func (c *rollupCell) estimate(bit int) int64 {
	u := c.users
	if u == nil {
		return 0
	}
	for i := range u.hasCount {
		if bit == 1<<i && u.hasCount[i] {
			return u.counted[i]
		}
	}
	for i := range u.sketches {
		if bit == 1<<i && u.sketches[i] != nil {
			return int64(postgres.EstimateSketch(u.sketches[i]))
		}
	}
	return 0
}

// rollupRow is a grouped report row read from the rollups.
type rollupRow struct {
	rng  int
	keys []string
	ints []int64   // integer metrics
	flts []float64 // other metrics
	// raw: the group's serialized sketches by sketch column, not merged
	// yet (lazySketches); nil once merged.
	raw *[3][][]byte
	c   *rollupCell
	ids []int32 // the group's rollup dim_ids, when read
}

// lazySketches reports whether p's rows can be ordered, counted and paged
// on their counters alone, so sketches need merging only for the rows of
// the page (and for totals): no ordering term and no maximum or minimum
// reads a user count. Merging a sketch per day and group dominates a
// report over thousands of groups (top pages over 30 days).
func lazySketches(p *plan.Plan) bool {
	if p.Maximums || p.Minimums || len(p.Metrics) == 0 {
		return false
	}
	terms := p.Order
	if len(terms) == 0 {
		terms = []plan.OrderTerm{{Metric: true, Idx: 0}}
	}
	for _, t := range terms {
		if t.Metric && metricsOf(p)[p.Metrics[t.Idx].Name].sketches != 0 {
			return false
		}
	}
	return true
}

// mergeSketches merges the row's raw sketches into its cell and computes
// its metrics with them.
func (r *rollupRow) mergeSketches(p *plan.Plan) error {
	if r.raw == nil {
		return nil
	}
	if err := countRaw(r.c, r.raw); err != nil {
		return err
	}
	r.raw = nil
	r.ints, r.flts = rollupValues(p, r.c)
	return nil
}

// mergeRows merges the raw sketches of rows (mergeSketches), rows on
// every core at once: a page of top pages merges ten groups' month of
// daily sketches, each group's merge independent of the others', and a
// dashboard user waits for all of them.
func mergeRows(p *plan.Plan, rows []*rollupRow) error {
	workers := min(runtime.GOMAXPROCS(0), len(rows))
	if workers <= 1 {
		for _, r := range rows {
			if err := r.mergeSketches(p); err != nil {
				return err
			}
		}
		return nil
	}
	var (
		next atomic.Int64
		wg   sync.WaitGroup
		errs = make([]error, len(rows))
	)
	for range workers {
		wg.Go(func() {
			for i := int(next.Add(1) - 1); i < len(rows); i = int(next.Add(1) - 1) {
				errs[i] = rows[i].mergeSketches(p)
			}
		})
	}
	wg.Wait()
	return errors.Join(errs...)
}

// countRaw sets c's user counts from serialized sketches (by sketch
// column; nil: not read), c's only merge, so no merged sketch is kept: a
// column whose merge would stay sparse is counted from its inputs' encoded
// hashes, which costs no sketch (a report of thousands of groups merges
// tens of thousands of small daily sketches), a large one from the dense
// registers merged from them (postgres.DenseUnionEstimate), and the
// others are merged (mergeRaw).
func countRaw(c *rollupCell, raw *[3][][]byte) error {
	rest := *raw
	for i, col := range raw {
		if col == nil || c.users != nil && c.users.sketches[i] != nil {
			continue
		}
		if !sparseMerge(col) {
			est, err := postgres.DenseUnionEstimate(col)
			if err != nil {
				return fmt.Errorf("query: rollup row: %w", err)
			}
			u := c.userSketches()
			u.counted[i], u.hasCount[i] = int64(est), true
			rest[i] = nil
			continue
		}
		est, ok, err := postgres.SparseUnionEstimate(col)
		if err != nil {
			return fmt.Errorf("query: rollup row: %w", err)
		}
		if ok {
			u := c.userSketches()
			u.counted[i], u.hasCount[i] = int64(est), true
			rest[i] = nil
		}
	}
	return mergeRaw(c, &rest)
}

// mergeRaw merges serialized sketches (by sketch column; nil: not read)
// into c's sketches.
func mergeRaw(c *rollupCell, raw *[3][][]byte) error {
	for i, col := range raw {
		if col == nil {
			continue
		}
		u := c.userSketches()
		if u.sketches[i] == nil && !sparseMerge(col) {
			// Large: merged into a dense sketch from the serializations.
			sk, err := postgres.MergeDense(col)
			if err != nil {
				return fmt.Errorf("query: rollup row: %w", err)
			}
			u.sketches[i] = sk
			continue
		}
		if u.sketches[i] == nil {
			u.sketches[i] = newMergeSketch(col)
		}
		if err := postgres.MergeSketches(u.sketches[i], col); err != nil {
			return fmt.Errorf("query: rollup row: %w", err)
		}
	}
	return nil
}

// denseMergeBytes is the size of serialized sketches above which their
// merge goes into a dense sketch. Merging sparse sketches rebuilds the
// growing sparse list on every merge, which made merging a top page's 30
// daily sketches the better part of its report; a dense sketch takes each
// entry in constant time. Sparse sketches of this size hold a few thousand
// visitors, where the dense estimate's error (well under 1%) is no larger
// than at any higher count; smaller merges stay sparse, exact for small
// counts.
const denseMergeBytes = 4096

// newMergeSketch is the empty sketch to merge the serialized sketches of
// col into: sparse (exact for small counts) unless they are large.
func newMergeSketch(col [][]byte) *hyperloglog.Sketch {
	if sparseMerge(col) {
		return postgres.NewSketch()
	}
	return postgres.NewDenseSketch()
}

// sparseMerge reports whether the serialized sketches of col merge into a
// sparse sketch (denseMergeBytes).
func sparseMerge(col [][]byte) bool {
	n := 0
	for _, b := range col {
		n += len(b)
	}
	return n <= denseMergeBytes
}

// metric i of the row as a number, for ordering and aggregation.
func (r *rollupRow) metric(p *plan.Plan, i int) float64 {
	if p.Metrics[i].Integer() {
		return float64(r.ints[i])
	}
	return r.flts[i]
}

func (r *rollupRow) allZero(p *plan.Plan) bool {
	for i := range p.Metrics {
		if r.metric(p, i) != 0 {
			return false
		}
	}
	return true
}

// RunReport answers p from the rollups, grouping, ordering and paging
// in Go as buildSQL's statement does in SQL. names keeps dim_ids' values
// across reports (nil: each report names its dim_ids anew).
func RunReport(ctx context.Context, db sql.Querier, p *plan.Plan, rp Plan, names *Names) (*plan.RunReportResponse, error) {
	rp.names = names
	lazy := lazySketches(p)
	// Two phases when the groups can be ordered and paged on counters and
	// no total needs every sketch: the counters of every group first, then
	// the sketches of the groups that need them (the page; groups whose
	// counters are all zero) only.
	twoPhase := lazy && rp.sketches != 0 && !p.Totals
	if twoPhase {
		rp.packs = new(postgres.PackDims)
	}
	first := rp
	first.sketches = 0
	// Groups ordered on user or session counts, without day dimensions
	// or a filter: their counters summed per dim_id first, then every
	// day's sketches read as they are stored (nothing grouped in SQL),
	// which is what a report over thousands of pages costs least.
	every := !lazy && rp.sketches != 0 && !rp.sessions && presummable(p, first, nil)
	if !twoPhase && !every {
		first = rp
	}
	totals := make([]*rollupCell, len(p.Ranges))
	all, err := readRollupRows(ctx, db, p, first, twoPhase || every, nil, totals)
	if err != nil {
		return nil, err
	}
	if every {
		if err := everySketch(ctx, db, p, rp, all, totals); err != nil {
			return nil, err
		}
	}
	var rows, unsure []*rollupRow
	for _, row := range all {
		if !lazy {
			if err := row.mergeSketches(p); err != nil {
				return nil, err
			}
		}
		if !p.KeepEmpty && len(p.Metrics) > 0 && row.allZero(p) {
			// GA4 drops rows whose metrics are all zero; a lazy row's user
			// counts decide only when its counters are all zero.
			unsure = append(unsure, row)
			continue
		}
		rows = append(rows, row)
	}
	if twoPhase {
		if err := fetchSketches(ctx, db, p, rp, unsure); err != nil {
			return nil, err
		}
	}
	if err := mergeRows(p, unsure); err != nil {
		return nil, err
	}
	for _, row := range unsure {
		if !row.allZero(p) {
			rows = append(rows, row)
		}
	}
	resp := sql.NewResponse(p)
	resp.RowCount = int64(len(rows))
	var page []*rollupRow
	if p.Offset < int64(len(rows)) {
		end := int(p.Offset + min(p.Limit, int64(len(rows))-p.Offset))
		page = firstRows(rows, end, rollupOrder(p))[p.Offset:]
	}
	if twoPhase {
		if err := fetchSketches(ctx, db, p, rp, page); err != nil {
			return nil, err
		}
	}
	if err := mergeRows(p, page); err != nil {
		return nil, err
	}
	for _, r := range page {
		row := plan.Row{DimensionValues: make([]plan.Value, 0, len(p.Dims)+1), MetricValues: formatValues(p, r.ints, r.flts)}
		for _, k := range r.keys {
			row.DimensionValues = append(row.DimensionValues, plan.Value{Value: k})
		}
		if len(p.Ranges) > 1 {
			row.DimensionValues = append(row.DimensionValues, plan.Value{Value: p.RangeNames[r.rng]})
		}
		resp.Rows = append(resp.Rows, row)
	}
	if len(p.Metrics) == 0 {
		return resp, nil
	}
	if p.Totals {
		byRange := map[int32][]plan.Value{}
		for i, c := range totals {
			if c != nil {
				ints, flts := rollupValues(p, c)
				byRange[int32(i)] = formatValues(p, ints, flts)
			}
		}
		resp.Totals = sql.SummaryRows(p, byRange, plan.ReservedTotal)
	}
	for _, agg := range []struct {
		on       bool
		out      *[]plan.Row
		reserved string
		better   func(a, b float64) bool
	}{
		{p.Maximums, &resp.Maximums, plan.ReservedMax, func(a, b float64) bool { return a > b }},
		{p.Minimums, &resp.Minimums, plan.ReservedMin, func(a, b float64) bool { return a < b }},
	} {
		if !agg.on {
			continue
		}
		best := map[int32]*rollupRow{} // per range: one row holding the best of each metric
		for _, r := range rows {
			b := best[int32(r.rng)]
			if b == nil {
				best[int32(r.rng)] = &rollupRow{ints: slices.Clone(r.ints), flts: slices.Clone(r.flts)}
				continue
			}
			for i := range p.Metrics {
				if agg.better(r.metric(p, i), b.metric(p, i)) {
					b.ints[i], b.flts[i] = r.ints[i], r.flts[i]
				}
			}
		}
		byRange := map[int32][]plan.Value{}
		for i, b := range best {
			byRange[i] = formatValues(p, b.ints, b.flts)
		}
		*agg.out = sql.SummaryRows(p, byRange, agg.reserved)
	}
	return resp, nil
}

// rollupValues computes p's metrics from c.
func rollupValues(p *plan.Plan, c *rollupCell) ([]int64, []float64) {
	ints, flts := make([]int64, len(p.Metrics)), make([]float64, len(p.Metrics))
	valuesInto(metricFuncs(p), c, ints, flts)
	return ints, flts
}

// metricFuncs are the functions of p's metrics, by position.
func metricFuncs(p *plan.Plan) []rollupMetric {
	fs := make([]rollupMetric, len(p.Metrics))
	for i, m := range p.Metrics {
		fs[i] = metricsOf(p)[m.Name].value
	}
	return fs
}

// valuesInto computes the metrics of fs from c into ints and flts.
func valuesInto(fs []rollupMetric, c *rollupCell, ints []int64, flts []float64) {
	for i, f := range fs {
		ints[i], flts[i] = f(c)
	}
}

// formatValues formats metrics as metricCells.values does.
func formatValues(p *plan.Plan, ints []int64, flts []float64) []plan.Value {
	out := make([]plan.Value, len(p.Metrics))
	for i, m := range p.Metrics {
		if m.Integer() {
			out[i] = plan.Value{Value: strconv.FormatInt(ints[i], 10)}
		} else {
			out[i] = plan.Value{Value: strconv.FormatFloat(flts[i], 'f', -1, 64)}
		}
	}
	return out
}

// numberText is numericSQL's test: the values NUMERIC order reads as numbers.
var numberText = regexp.MustCompile(`^-?[0-9]+(\.[0-9]+)?$`)

// readRollupRows runs the rollup statement of p and rp (with ids, reading
// each group's dim_ids; restricted to the dim_ids of only, if not nil) and
// returns its groups with their counters' metrics and their sketches
// unmerged. With p.totals it adds every group into totals (by range),
// sketches merged.
func readRollupRows(ctx context.Context, db sql.Querier, p *plan.Plan, rp Plan, ids bool, only []int32, totals []*rollupCell) ([]*rollupRow, error) {
	if presummable(p, rp, only) && !rp.sessions { // session rollups are not packed
		sums, err := sumRollups(ctx, db, p, rp)
		if err != nil {
			return nil, err
		}
		return groupRollupSums(ctx, db, p, rp.names, sums, ids, totals)
	}
	q := buildRollupSQL(p, rp, ids, only)
	res, err := db.Query(ctx, q.Text, q.Args...)
	if err != nil {
		return nil, fmt.Errorf("query: run rollup report: %w", err)
	}
	defer res.Close()
	nd := len(p.Dims)
	var (
		k0     int32
		keys   = make([]*string, nd)
		counts = make([]int64, len(sessionCounters))
		amts   [postgres.NumAmounts]float64
		skb    [3][][]byte
		dimIDs []int32
		dest   = []any{&k0}
	)
	for i := range keys {
		dest = append(dest, &keys[i])
	}
	for i := range rp.counters() {
		dest = append(dest, &counts[i])
	}
	for i := range rp.amountColumns() {
		dest = append(dest, &amts[i])
	}
	for i := range skb {
		if rp.reads()&(1<<i) != 0 {
			dest = append(dest, &skb[i])
		}
	}
	if ids {
		dest = append(dest, &dimIDs)
	}
	var rows []*rollupRow
	for res.Next() {
		if err := res.Scan(dest...); err != nil {
			return nil, fmt.Errorf("query: scan rollup row: %w", err)
		}
		c := &rollupCell{events: counts[0], views: counts[1], keyEvents: counts[2], engageMs: counts[3],
			sessions: counts[4], engaged: counts[5], durationUs: counts[6]}
		if len(rp.amountColumns()) > 0 {
			c.amounts = new(postgres.Amounts)
			*c.amounts = amts
		}
		raw := new([3][][]byte)
		for i := range skb {
			if rp.reads()&(1<<i) != 0 {
				raw[i] = slices.Clone(skb[i])
			}
		}
		rp.expandRaw(raw)
		rng := sql.RangeIndex(&k0, len(p.Ranges))
		if p.Totals && only == nil {
			if totals[rng] == nil {
				totals[rng] = &rollupCell{}
			}
			t := totals[rng]
			t.add(c)
			if err := mergeRaw(t, raw); err != nil {
				return nil, err
			}
		}
		row := &rollupRow{rng: rng, keys: make([]string, nd), c: c, raw: raw}
		if ids {
			row.ids = slices.Clone(dimIDs)
		}
		for i, k := range keys {
			row.keys[i] = sql.Deref(k)
		}
		row.ints, row.flts = rollupValues(p, c) // user counts 0 until merged
		rows = append(rows, row)
	}
	if err := res.Err(); err != nil {
		return nil, fmt.Errorf("query: run rollup report: %w", err)
	}
	return rows, nil
}

// groupRollupSums groups sums (per range and dim_id, no sketches) by p's
// dimension values, which one statement computes for the distinct dim_ids
// (a few thousand names instead of a row per day and value) that kept
// does not hold already, and returns the groups as readRollupRows does.
func groupRollupSums(ctx context.Context, db sql.Querier, p *plan.Plan, kept *Names, sums rollupSums, ids bool, totals []*rollupCell) ([]*rollupRow, error) {
	dimIDs := make([]int32, len(sums.sums))
	for i := range sums.sums {
		dimIDs[i] = sums.sums[i].dim
	}
	slices.Sort(dimIDs)
	dimIDs = slices.Compact(dimIDs)
	// The values of each of dimIDs (by position): kept, or named now.
	names := make([][]string, len(dimIDs))
	key := namesKeyOf(p)
	if missing := kept.lookup(key, dimIDs, names); len(missing) > 0 {
		named := make(map[int32][]string, len(missing))
		if err := nameDimIDs(ctx, db, p, missing, named); err != nil {
			return nil, err
		}
		kept.add(key, missing, named)
		for i, id := range dimIDs {
			if v, ok := named[id]; ok && names[i] == nil {
				names[i] = v
			}
		}
	}
	// A group per range and values (the values NUL-joined, as groupKey
	// does; one value needs no joining). Rows and cells come from one
	// allocation each: there are as many groups as sums at most. A row
	// has no raw sketches (nil) until it reads them (pickSketches).
	type group struct {
		rng  int
		vals string
	}
	n := len(sums.sums)
	groups := make(map[group]*rollupRow, n)
	rows := make([]*rollupRow, 0, n)
	var (
		rowSlab  = make([]rollupRow, n)
		cellSlab = make([]rollupCell, n)
	)
	for i := range sums.sums {
		rng, dim := int(sums.sums[i].rng), sums.sums[i].dim
		at, _ := slices.BinarySearch(dimIDs, dim)
		vals := names[at]
		if vals == nil {
			return nil, fmt.Errorf("query: BUG: rollup dim_id %d has no name", dim)
		}
		k := group{rng: rng}
		if len(vals) == 1 {
			k.vals = vals[0]
		} else {
			k.vals = strings.Join(vals, "\x00")
		}
		row := groups[k]
		if row == nil {
			n := len(rows)
			row = &rowSlab[n]
			*row = rollupRow{rng: rng, keys: vals, c: &cellSlab[n]}
			groups[k] = row
			rows = append(rows, row)
		}
		sums.addTo(row.c, i)
		if ids {
			row.ids = append(row.ids, dim)
		}
		if p.Totals {
			if totals[rng] == nil {
				totals[rng] = &rollupCell{}
			}
			sums.addTo(totals[rng], i)
		}
	}
	// Metrics (user counts 0 until merged), every row's in one array of
	// each kind.
	fs, nm := metricFuncs(p), len(p.Metrics)
	ints, flts := make([]int64, len(rows)*nm), make([]float64, len(rows)*nm)
	for j, row := range rows {
		slices.Sort(row.ids)
		row.ids = slices.Compact(row.ids)
		row.ints, row.flts = ints[j*nm:(j+1)*nm:(j+1)*nm], flts[j*nm:(j+1)*nm:(j+1)*nm]
		valuesInto(fs, row.c, row.ints, row.flts)
	}
	return rows, nil
}

// nameDimIDs puts the values of p's dimensions for each of dimIDs into
// names, from one statement joining the dictionary.
func nameDimIDs(ctx context.Context, db sql.Querier, p *plan.Plan, dimIDs []int32, names map[int32][]string) error {
	w := &sql.Writer{Args: []any{int32(p.Site.ID)}, Rollup: true, RollupTraffic: usesSessionTraffic(p), Items: p.Items}
	joins := sql.JoinsOf(p.Dims)
	w.WriteString("WITH ")
	w.WriteNameTables(joins)
	w.WriteString("e AS (SELECT unnest(" + w.Bind(dimIDs) + "::int[]) AS dim_id)\nSELECT e.dim_id")
	for _, d := range p.Dims {
		w.WriteString(", " + w.DimExpr(d))
	}
	w.WriteString(" FROM e")
	w.WriteRollupJoins(joins)
	w.WriteString(" WHERE $1::int IS NOT NULL") // the name tables' site; typed when none reads it
	res, err := db.Query(ctx, w.String(), w.Args...)
	if err != nil {
		return fmt.Errorf("query: name rollup values: %w", err)
	}
	defer res.Close()
	nd := len(p.Dims)
	var (
		id   int32
		keys = make([]*string, nd)
		dest = []any{&id}
	)
	for i := range keys {
		dest = append(dest, &keys[i])
	}
	for res.Next() {
		if err := res.Scan(dest...); err != nil {
			return fmt.Errorf("query: name rollup values: %w", err)
		}
		vals := make([]string, nd)
		for i, k := range keys {
			vals[i] = sql.Deref(k)
		}
		names[id] = vals
	}
	if err := res.Err(); err != nil {
		return fmt.Errorf("query: name rollup values: %w", err)
	}
	return nil
}

// fetchSketches reads the sketches of rows (groups read without them, with
// their dim_ids) and leaves them unmerged in each row.
func fetchSketches(ctx context.Context, db sql.Querier, p *plan.Plan, rp Plan, rows []*rollupRow) error {
	if len(rows) == 0 {
		return nil
	}
	ids := groupIDs(rows)
	// pickSketches reads rollup_days and rollup_packs: session reports'
	// sketches are session_rollups', read as their counters were.
	if !rp.sessions && !slices.ContainsFunc(p.Dims, isDayDim) {
		return pickSketches(ctx, db, p, rp, rows, ids, false)
	}
	// Other groups may share these dim_ids (other ranges; other days of a
	// date dimension): they are read and ignored.
	got, err := readRollupRows(ctx, db, p, rp, false, ids, nil)
	if err != nil {
		return err
	}
	byKey := make(map[string]*rollupRow, len(got))
	for _, g := range got {
		byKey[groupKey(g.rng, g.keys)] = g
	}
	for _, r := range rows {
		g := byKey[groupKey(r.rng, r.keys)]
		if g == nil {
			return fmt.Errorf("query: BUG: rollup group %d %q lost between its counters and its sketches", r.rng, r.keys)
		}
		r.raw = g.raw
	}
	return nil
}

// groupIDs are the dim_ids of rows, ascending, each once.
func groupIDs(rows []*rollupRow) []int32 {
	var ids []int32
	for _, r := range rows {
		ids = append(ids, r.ids...)
	}
	slices.Sort(ids)
	return slices.Compact(ids)
}

// everySketch reads the sketches of rows, every group of p (read with
// their dim_ids), and merges them into totals (by range) when p asks for
// totals, group by group as readRollupRows does.
func everySketch(ctx context.Context, db sql.Querier, p *plan.Plan, rp Plan, rows []*rollupRow, totals []*rollupCell) error {
	if len(rows) == 0 {
		return nil
	}
	if err := pickSketches(ctx, db, p, rp, rows, groupIDs(rows), true); err != nil {
		return err
	}
	if !p.Totals {
		return nil
	}
	for _, r := range rows {
		if totals[r.rng] == nil {
			totals[r.rng] = &rollupCell{}
		}
		if err := mergeRaw(totals[r.rng], r.raw); err != nil {
			return err
		}
	}
	return nil
}

// firstRows are the first k of rows in order, a total order (rollupOrder
// ends on every key), sorted; rows may be reordered. A page of ten out of
// thousands of groups keeps the k first in a heap, comparing most rows
// with its largest only, instead of sorting them all; as the order is
// total, the k first are the same rows either way. rows keeps every row
// (its maximums and minimums are read after).
func firstRows(rows []*rollupRow, k int, order func(a, b *rollupRow) int) []*rollupRow {
	if k <= 0 {
		return nil
	}
	if k >= len(rows)/8 {
		slices.SortFunc(rows, order)
		return rows[:k]
	}
	// h is a heap whose root is its last row in order.
	h := rows[:k]
	down := func(i int) {
		for {
			c := 2*i + 1
			if c >= k {
				return
			}
			if c+1 < k && order(h[c+1], h[c]) > 0 {
				c++
			}
			if order(h[c], h[i]) <= 0 {
				return
			}
			h[i], h[c] = h[c], h[i]
			i = c
		}
	}
	for i := k/2 - 1; i >= 0; i-- {
		down(i)
	}
	for j := k; j < len(rows); j++ {
		if order(rows[j], h[0]) < 0 {
			rows[j], h[0] = h[0], rows[j] // rows stays a permutation of itself
			down(0)
		}
	}
	slices.SortFunc(h, order)
	return h
}

// groupKey identifies a group of a rollup report: range and dimension values.
func groupKey(rng int, keys []string) string {
	return strconv.Itoa(rng) + "\x00" + strings.Join(keys, "\x00")
}

// rollupOrder is writeOrder's ordering: the request's terms (or the first
// metric descending), then the date range and every dimension ascending.
// Text compares by bytes, which for UTF-8 is code point order (COLLATE "C").
func rollupOrder(p *plan.Plan) func(a, b *rollupRow) int {
	terms := p.Order
	if len(terms) == 0 && len(p.Metrics) > 0 {
		terms = []plan.OrderTerm{{Metric: true, Idx: 0, Desc: true}}
	}
	for i := 0; i <= len(p.Dims); i++ {
		terms = append(slices.Clip(terms), plan.OrderTerm{Idx: i})
	}
	return func(a, b *rollupRow) int {
		for _, t := range terms {
			var c int
			switch {
			case t.Metric:
				c = cmp.Compare(a.metric(p, t.Idx), b.metric(p, t.Idx))
			case t.Idx == 0:
				c = cmp.Compare(a.rng, b.rng)
			case t.Numeric:
				c = CompareNumberText(a.keys[t.Idx-1], b.keys[t.Idx-1])
			case t.Fold:
				c = strings.Compare(strings.ToLower(a.keys[t.Idx-1]), strings.ToLower(b.keys[t.Idx-1]))
			default:
				c = strings.Compare(a.keys[t.Idx-1], b.keys[t.Idx-1])
			}
			if t.Desc {
				c = -c
			}
			if c != 0 {
				return c
			}
		}
		return 0
	}
}

// CompareNumberText orders texts by numeric value, texts that are no number
// before all numbers (ascending; so after them descending, as NULLS FIRST
// ascending and NULLS LAST descending do).
func CompareNumberText(a, b string) int {
	x, xok := ParseNumberText(a)
	y, yok := ParseNumberText(b)
	switch {
	case !xok && !yok:
		return 0
	case !xok:
		return -1
	case !yok:
		return 1
	}
	return x.Cmp(y)
}

func ParseNumberText(s string) (*big.Rat, bool) {
	if !numberText.MatchString(s) {
		return nil, false
	}
	return new(big.Rat).SetString(s)
}
