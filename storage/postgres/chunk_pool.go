package postgres

// chunkPool hands out empty byte arrays of chunkBytes (next) and takes
// back those it handed out at reset, up to maxSpareChunks, for the next
// ones: a derivation's sketches (sketchArena) and its rows' params
// columns (appendParamsColumn) are written into such arrays instead of
// an allocation each. Whatever took slices of its arrays must be done
// with them by reset. A nil *chunkPool hands out new arrays.
type chunkPool struct {
	// used are the arrays handed out since reset; spare are those kept
	// for the next.
	used, spare [][]byte
}

// chunkBytes is the size of a chunkPool's arrays.
const chunkBytes = 64 << 10

// maxSpareChunks bounds the arrays a chunkPool keeps across reset.
const maxSpareChunks = 64

// next returns an empty array of chunkBytes, a spare one if there is one.
func (p *chunkPool) next() []byte {
	if p == nil {
		return make([]byte, 0, chunkBytes)
	}
	var b []byte
	if k := len(p.spare); k > 0 {
		b, p.spare[k-1], p.spare = p.spare[k-1][:0], nil, p.spare[:k-1]
	} else {
		b = make([]byte, 0, chunkBytes)
	}
	p.used = append(p.used, b)
	return b
}

// reset takes back the arrays next handed out, up to maxSpareChunks,
// zeroed when zero is set (for an owner that hands out zero bytes).
func (p *chunkPool) reset(zero bool) {
	for _, b := range p.used {
		if len(p.spare) >= maxSpareChunks {
			break
		}
		if zero {
			clear(b[:cap(b)])
		}
		p.spare = append(p.spare, b[:0])
	}
	clear(p.used)
	p.used = p.used[:0]
}
