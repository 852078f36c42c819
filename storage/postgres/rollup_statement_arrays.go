package postgres

import "time"

// statementArrays are the arrays of a rollup statement's parameters (its
// keys, counters, sketches and amounts, in parallel), kept from one
// statement to the next: the reads, updates and inserts of a
// derivation's cells in both rollup tables made them afresh, a few
// thousand entries each. A statement's arrays are the parameters' only
// until pgx encoded them, when it sends the statement, so the next
// statement may take them. A nil *statementArrays makes new arrays each
// time. They are a CellScratch's, kept with its cells (clear drops what
// they point to), used by one derivation at a time.
type statementArrays struct {
	sites, dims      []int32
	kinds            []int16
	days             []time.Time
	counts           [5][]int32
	sums             [2][]int64
	sketches         [3][][]byte
	amounts          []*string
	existing, missed []rollupKey
	// arena holds the sketches the reads scan and the cells' delta
	// encodings (rollupAgg.settleIn).
	arena sketchArena
}

// of returns (*a)'s array with length n, its entries those of an
// earlier use, or a new one when it has not room for n.
func of[T any](a *[]T, n int) []T {
	*a = grown(*a, n)
	return *a
}

// int32s returns counter array i with length n (entries of an earlier
// use).
func (s *statementArrays) int32s(i, n int) []int32 {
	if s == nil {
		return make([]int32, n)
	}
	return of(&s.counts[i], n)
}

// int64s returns sum array i with length n (entries of an earlier use).
func (s *statementArrays) int64s(i, n int) []int64 {
	if s == nil {
		return make([]int64, n)
	}
	return of(&s.sums[i], n)
}

// keyArrays are keys as the parallel arrays $1..$4 of the rollup
// statements.
func (s *statementArrays) keyArrays(keys []rollupKey) []any {
	n := len(keys)
	var (
		sites, dims []int32
		kinds       []int16
		days        []time.Time
	)
	if s == nil {
		sites, kinds, days, dims = make([]int32, n), make([]int16, n), make([]time.Time, n), make([]int32, n)
	} else {
		sites, kinds, days, dims = of(&s.sites, n), of(&s.kinds, n), of(&s.days, n), of(&s.dims, n)
	}
	for i, k := range keys {
		sites[i], kinds[i], days[i], dims[i] = k.site, int16(k.kind), dayDate(k.day), k.dim
	}
	return []any{sites, kinds, days, dims}
}

// sketchArraysFor returns the three arrays of sketchArrays, nil entries.
func (s *statementArrays) sketchArraysFor(n int) [3][][]byte {
	if s == nil {
		return [3][][]byte{make([][]byte, n), make([][]byte, n), make([][]byte, n)}
	}
	var out [3][][]byte
	for j := range out {
		out[j] = of(&s.sketches[j], n)
		clear(out[j])
	}
	return out
}

// amountsFor returns an array of n amounts (entries of an earlier use).
func (s *statementArrays) amountsFor(n int) []*string {
	if s == nil {
		return make([]*string, n)
	}
	return of(&s.amounts, n)
}

// split returns the keys of pending found (existing) and not (missing),
// in pending's order.
func (s *statementArrays) split(pending []rollupKey, found []bool) (existing, missing []rollupKey) {
	n := 0
	for _, f := range found {
		if f {
			n++
		}
	}
	if s == nil {
		existing, missing = make([]rollupKey, 0, n), make([]rollupKey, 0, len(pending)-n)
	} else {
		existing, missing = of(&s.existing, n)[:0], of(&s.missed, len(pending)-n)[:0]
	}
	for i, k := range pending {
		if found[i] {
			existing = append(existing, k)
		} else {
			missing = append(missing, k)
		}
	}
	return existing, missing
}

// clear drops what the arrays point to (sketches, amounts), keeping the
// arrays, and resets the arena: the cells holding its sketches are gone.
func (s *statementArrays) clear() {
	s.arena.reset()
	for j := range s.sketches {
		clear(s.sketches[j][:cap(s.sketches[j])])
	}
	clear(s.amounts[:cap(s.amounts)])
}
