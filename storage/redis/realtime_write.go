package redis

import (
	"strconv"
)

// redisArgs holds the strings of a batch's commands to Redis while its
// pipeline is built and sent: each minute's cells' fields (appendCell)
// and visitors in hex, all slices of one string, so a cell's field costs
// no allocation and copy of its own. A batchCounts keeps one, whose
// slices keep their room from batch to batch.
type redisArgs struct {
	buf      []byte
	fields   []span // of buf, per cell
	visitors []span // of buf, per visitor of a minute
	// Per minute of the batch, in order: its cells (fields of strs and
	// counts) and its visitors (args).
	minutes []argsMinute
	strs    []string // the fields
	counts  []int64  // the fields' events
	args    []any    // the visitors, for PFADD
	seen    map[uint64]bool
}

type span struct{ from, to int }

type argsMinute struct{ cells, visitors span }

// build fills a with b's minutes: the field and events of each cell of
// b.minutes[i] in strs and counts over a.minutes[i].cells, and each of
// its visitors once, in hex, in args over a.minutes[i].visitors. They
// stay valid until the next call.
func (a *redisArgs) build(b *batchCounts) {
	a.buf, a.fields, a.visitors, a.counts, a.minutes = a.buf[:0], a.fields[:0], a.visitors[:0], a.counts[:0], a.minutes[:0]
	if a.seen == nil {
		a.seen = map[uint64]bool{}
	}
	for _, m := range b.minutes {
		clear(a.seen)
		am := argsMinute{cells: span{len(a.fields), 0}, visitors: span{len(a.visitors), 0}}
		for c, n := range m.cells {
			from := len(a.buf)
			a.buf = appendCell(a.buf, &c)
			a.fields = append(a.fields, span{from, len(a.buf)})
			a.counts = append(a.counts, n)
			if !a.seen[c.Visitor] {
				a.seen[c.Visitor] = true
				from = len(a.buf)
				a.buf = strconv.AppendUint(a.buf, c.Visitor, 16)
				a.visitors = append(a.visitors, span{from, len(a.buf)})
			}
		}
		am.cells.to, am.visitors.to = len(a.fields), len(a.visitors)
		a.minutes = append(a.minutes, am)
	}
	// One string for all: its slices allocate nothing.
	s := string(a.buf)
	a.strs, a.args = a.strs[:0], a.args[:0]
	for _, sp := range a.fields {
		a.strs = append(a.strs, s[sp.from:sp.to])
	}
	for _, sp := range a.visitors {
		a.args = append(a.args, s[sp.from:sp.to])
	}
}
