package rollups

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/avila-analytics/avila/query/engine/sql"
	"github.com/avila-analytics/avila/query/plan"
	"github.com/avila-analytics/avila/storage/postgres"
)

// rollupSums are a report's counters summed per date range and rollup
// dim_id, in Go: the "pre" step of buildRollupSQL without sketches, time
// dimensions or filter. Reading a packed day's arrays and adding them here
// costs a fraction of unnesting and grouping them in SQL (top pages over
// 30 days add some 40,000 values at a million events), and the statement
// then names and groups the few thousand dim_ids only.
type rollupSums struct {
	sums []rollupSum
	// amounts: each sum's amounts (by its index), when the report reads
	// them; apart, as a sum without them is a fifth of the size.
	amounts []postgres.Amounts
}

// rollupSum is one date range's and dim_id's summed counters (a
// rollupCell's event counters: the ones rollup_days and packs hold).
type rollupSum struct {
	rng, dim                           int32
	events, views, keyEvents, engageMs int64
}

// addTo adds sum i's counters and amounts to c.
func (s *rollupSums) addTo(c *rollupCell, i int) {
	u := &s.sums[i]
	c.events, c.views, c.keyEvents, c.engageMs = c.events+u.events, c.views+u.views, c.keyEvents+u.keyEvents, c.engageMs+u.engageMs
	if s.amounts != nil {
		c.addAmounts(&s.amounts[i])
	}
}

// daySpan is a date range's local days [lo, hi), as UTC midnights.
type daySpan struct{ lo, hi time.Time }

func (s daySpan) holds(day time.Time) bool { return !day.Before(s.lo) && day.Before(s.hi) }

// daySpans are p's date ranges as local days, with the earliest first day
// and the latest end of them all.
func daySpans(p *plan.Plan) (spans []daySpan, lo, hi time.Time) {
	spans = make([]daySpan, len(p.Ranges))
	for i, r := range p.Ranges {
		spans[i] = daySpan{localDay(p, r.Lo), localDay(p, r.Hi)}
		if i == 0 || spans[i].lo.Before(lo) {
			lo = spans[i].lo
		}
		if i == 0 || spans[i].hi.After(hi) {
			hi = spans[i].hi
		}
	}
	return spans, lo, hi
}

// localDay is the local date of t in p's time zone, as UTC midnight (how
// pgx reads a date).
func localDay(p *plan.Plan, t time.Time) time.Time {
	y, m, d := t.In(p.Site.Loc).Date()
	return time.Date(y, m, d, 0, 0, 0, 0, time.UTC)
}

// sumRollups reads the counters of rp's kind over p's ranges
// (postgres.SumRollupCounters) and sums them per range and dim_id.
func sumRollups(ctx context.Context, db sql.Querier, p *plan.Plan, rp Plan) (rollupSums, error) {
	spans, lo, hi := daySpans(p)
	var s rollupSums
	at := make([]dimIndex, len(spans))
	var order []int32
	of := postgres.RollupsOf{Site: int32(p.Site.ID), Kind: rp.kind, Lo: lo, Hi: hi, Packs: rp.packs}
	err := postgres.SumRollupCounters(ctx, db, of, countersUsed(p), rp.amounts, func(d *postgres.RollupDayCounts) {
		if s.sums == nil {
			// Most of a range's dim_ids are in each of its days.
			s.sums = make([]rollupSum, 0, len(d.Dims)*len(spans))
		}
		order = ascendingOrder(d.Dims, order)
		for r, sp := range spans {
			if !sp.holds(d.Day) {
				continue
			}
			at[r].place(d.Dims, order, func(dim int32) int32 {
				s.sums = append(s.sums, rollupSum{rng: int32(r), dim: dim})
				if rp.amounts {
					s.amounts = append(s.amounts, postgres.Amounts{})
				}
				return int32(len(s.sums) - 1)
			}, func(j, i int) {
				c := &s.sums[i]
				if d.Events != nil {
					c.events += int64(d.Events[j])
				}
				if d.PageViews != nil {
					c.views += int64(d.PageViews[j])
				}
				if d.KeyEvents != nil {
					c.keyEvents += int64(d.KeyEvents[j])
				}
				if d.EngagementMs != nil {
					c.engageMs += d.EngagementMs[j]
				}
				if d.Amounts != nil {
					amts := &s.amounts[i]
					for a, v := range d.Amounts[j*postgres.NumAmounts : (j+1)*postgres.NumAmounts] {
						if v != nil {
							amts[a] += *v
						}
					}
				}
			})
		}
	})
	if err != nil {
		return rollupSums{}, fmt.Errorf("query: %w", err)
	}
	return s, nil
}

// dimIndex finds the sums of a range's dim_ids: the dim_ids seen so far,
// ascending, and the index of each one's sum. A day's dim_ids (a packed
// day's ascend) are matched to them in one merging walk instead of a
// hash look-up per cell.
type dimIndex struct {
	dims []int32
	at   []int32
	// fresh: a day's dim_ids not seen before, with their positions in
	// the day; merged into dims after the day's walk.
	fresh []dimAt
}

type dimAt struct{ dim, at int32 }

// place gives add the position in dims of each cell of a day (walked in
// order, the positions that sort dims; nil: dims ascend) and the index of
// its dim_id's sum, which newSum makes for a dim_id not seen before.
// Sums are made in the order of the day's positions, as a look-up of
// each cell in turn would make them.
func (x *dimIndex) place(dims, order []int32, newSum func(dim int32) int32, add func(pos, at int)) {
	x.fresh = x.fresh[:0]
	k := 0
	for n := range dims {
		pos := n
		if order != nil {
			pos = int(order[n])
		}
		dim := dims[pos]
		for k < len(x.dims) && x.dims[k] < dim {
			k++
		}
		if k < len(x.dims) && x.dims[k] == dim {
			add(pos, int(x.at[k]))
			continue
		}
		// A dim_id twice in a day (neither table's key allows it) gets
		// one sum (made).
		x.fresh = append(x.fresh, dimAt{dim: dim, at: int32(pos)})
	}
	if len(x.fresh) == 0 {
		return
	}
	// New sums in the order of their cells' positions.
	made := make(map[int32]int32, len(x.fresh))
	slices.SortFunc(x.fresh, func(a, b dimAt) int { return cmp.Compare(a.at, b.at) })
	for _, f := range x.fresh {
		i, ok := made[f.dim]
		if !ok {
			i = newSum(f.dim)
			made[f.dim] = i
		}
		add(int(f.at), int(i))
	}
	// Merge the new dim_ids into the ascending ones.
	added := make([]dimAt, 0, len(made))
	for dim, i := range made {
		added = append(added, dimAt{dim: dim, at: i})
	}
	slices.SortFunc(added, func(a, b dimAt) int { return cmp.Compare(a.dim, b.dim) })
	// In place from the end (none of added is in dims), the arrays grown
	// as append grows them rather than copied anew on each day.
	i, j := len(x.dims)-1, len(added)-1
	x.dims, x.at = slices.Grow(x.dims, len(added))[:len(x.dims)+len(added)], slices.Grow(x.at, len(added))[:len(x.at)+len(added)]
	for w := len(x.dims) - 1; j >= 0; w-- {
		if i >= 0 && x.dims[i] > added[j].dim {
			x.dims[w], x.at[w] = x.dims[i], x.at[i]
			i--
		} else {
			x.dims[w], x.at[w] = added[j].dim, added[j].at
			j--
		}
	}
}

// ascendingOrder is nil when dims ascend (or hold equal neighbours), else
// the positions of dims ordered by dim_id (in buf's storage).
func ascendingOrder(dims, buf []int32) []int32 {
	if slices.IsSorted(dims) {
		return nil
	}
	buf = buf[:0]
	for i := range dims {
		buf = append(buf, int32(i))
	}
	slices.SortStableFunc(buf, func(a, b int32) int { return cmp.Compare(dims[a], dims[b]) })
	return buf
}

// metricCounters are the rollup_days counters (bits by eventCounters) each
// rollup metric reads; user counts read none.
var metricCounters = map[string]int{
	"eventCount": 1 << 0, "screenPageViews": 1 << 1, "keyEvents": 1 << 2, "userEngagementDuration": 1 << 3,
	"eventCountPerUser": 1 << 0, "totalUsers": 0, "activeUsers": 0, "newUsers": 0,
}

// countersUsed are the counters p's metrics read (all for a metric not
// listed in metricCounters; none for one of the amounts).
func countersUsed(p *plan.Plan) int {
	used := 0
	for _, m := range p.Metrics {
		if ReadsAmounts(m.Name) {
			continue
		}
		c, ok := metricCounters[m.Name]
		if !ok {
			c = 1<<len(eventCounters) - 1
		}
		used |= c
	}
	return used
}

// presummable reports whether buildRollupSQL sums p's rollup rows per
// dim_id before naming them ("pre"): a dictionary dimension, no sketches,
// no time dimension of a day, no filter, every dim_id.
func presummable(p *plan.Plan, rp Plan, only []int32) bool {
	return rp.sketches == 0 && p.DimFilter == nil && rp.column != "" && only == nil && !slices.ContainsFunc(p.Dims, isDayDim)
}

// isDayDim reports whether d is a time dimension of a rollup day.
func isDayDim(d *plan.DimDef) bool {
	_, ok := sql.RollupDayExprs[d.Name]
	return ok
}

// pickSketches sets the raw sketches of rows, groups of a report without
// day dimensions read with their dim_ids (ids, ascending, all of them):
// each day's sketches of those dim_ids (postgres.ReadRollupSketches) go to
// the groups holding the dim_id in the ranges holding the day. With every,
// rows are all the report's groups: the packs are read whole instead of
// searched for each dim_id.
func pickSketches(ctx context.Context, db sql.Querier, p *plan.Plan, rp Plan, rows []*rollupRow, ids []int32, every bool) error {
	spans, lo, hi := daySpans(p)
	type key struct{ rng, dim int32 }
	groups := make(map[key][]*rollupRow)
	for _, r := range rows {
		r.raw = new([3][][]byte)
		for i := range r.raw {
			if rp.sketches&(1<<i) != 0 {
				r.raw[i] = [][]byte{}
			}
		}
		for _, id := range r.ids {
			k := key{int32(r.rng), id}
			groups[k] = append(groups[k], r)
		}
	}
	// add gives a day's sketches of dim (by rp's columns) to its groups.
	add := func(day time.Time, dim int32, sks [][]byte) {
		for rng, sp := range spans {
			if !sp.holds(day) {
				continue
			}
			for _, r := range groups[key{int32(rng), dim}] {
				j := 0
				for i := range r.raw {
					if r.raw[i] != nil {
						r.raw[i] = append(r.raw[i], slices.Clone(sks[j]))
						j++
					}
				}
			}
		}
	}
	of := postgres.RollupsOf{Site: int32(p.Site.ID), Kind: rp.kind, Lo: lo, Hi: hi, Packs: rp.packs}
	if err := postgres.ReadRollupSketches(ctx, db, of, ids, every, rp.sketches, add); err != nil {
		return fmt.Errorf("query: %w", err)
	}
	return nil
}
