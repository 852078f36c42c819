package collect

// requestBufs are what one request's hits and encoded events take,
// reused by later requests (Collector.bufs) rather than left to the
// garbage collector, which the agent's small memory limit makes run often.
type requestBufs struct {
	hits   []Hit
	enc    []byte
	events [][]byte
	maps   paramMaps // the hits' emptied parameter maps
}

// paramMaps are emptied maps of hits' event parameters (Hit.Params,
// Hit.NumParams), for the hits of a later request: a gtag.js POST of
// scrolls and clicks made two small maps' allocations per event.
type paramMaps struct {
	str []map[string]string
	num []map[string]float64
}

// maxPooledMapLen bounds the entries a map kept for reuse had: a hit with
// many parameters grows its map's table, which is not kept.
const maxPooledMapLen = 8

// strings returns an empty map for Hit.Params; m may be nil.
func (m *paramMaps) strings() map[string]string {
	if m == nil {
		return map[string]string{}
	}
	return takeMap(&m.str)
}

// numbers returns an empty map for Hit.NumParams; m may be nil.
func (m *paramMaps) numbers() map[string]float64 {
	if m == nil {
		return map[string]float64{}
	}
	return takeMap(&m.num)
}

// keep empties the parameter maps of hits, which nothing reads any more,
// and keeps them, up to one of each kind a hit of a pooled request.
func (m *paramMaps) keep(hits []Hit) {
	for i := range hits {
		keepMap(&m.str, hits[i].Params)
		keepMap(&m.num, hits[i].NumParams)
	}
}

// takeMap takes the last of the kept maps, or makes one when none is.
func takeMap[V any](kept *[]map[string]V) map[string]V {
	n := len(*kept)
	if n == 0 {
		return map[string]V{}
	}
	p := (*kept)[n-1]
	*kept = (*kept)[:n-1]
	return p
}

// keepMap empties p and keeps it, unless it is nil, grew past
// maxPooledMapLen, or maxPooledHits are kept already.
func keepMap[V any](kept *[]map[string]V, p map[string]V) {
	if p != nil && len(p) <= maxPooledMapLen && len(*kept) < maxPooledHits {
		clear(p)
		*kept = append(*kept, p)
	}
}

// Bounds on what a request hands back for reuse: a request larger than
// gtag.js sends (64 events, or their encodings past 64 KiB) keeps its own
// buffers, so one odd request does not pin its size in the pool.
const (
	maxPooledHits     = 64
	maxPooledEncBytes = 64 << 10
)

// takeBufs returns buffers for a request, empty.
func (c *Collector) takeBufs() *requestBufs {
	if b, ok := c.bufs.Get().(*requestBufs); ok {
		return b
	}
	return new(requestBufs)
}

// releaseBufs hands b back for reuse once the request is answered. The
// hits and events are cleared first, so nothing of the request stays
// reachable from the pool.
func (c *Collector) releaseBufs(b *requestBufs) {
	if cap(b.hits) > maxPooledHits || cap(b.enc) > maxPooledEncBytes || cap(b.events) > maxPooledHits {
		return
	}
	b.maps.keep(b.hits)
	clear(b.hits)
	clear(b.events)
	b.hits, b.enc, b.events = b.hits[:0], b.enc[:0], b.events[:0]
	c.bufs.Put(b)
}
