package collect

// requestBufs are what one request's hits and encoded events take,
// reused by later requests (Collector.bufs) rather than left to the
// garbage collector, which the agent's small memory limit makes run often.
type requestBufs struct {
	hits   []Hit
	enc    []byte
	events [][]byte
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
	clear(b.hits)
	clear(b.events)
	b.hits, b.enc, b.events = b.hits[:0], b.enc[:0], b.events[:0]
	c.bufs.Put(b)
}
