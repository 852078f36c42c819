// Package benchtraffic generates the end-to-end bench's traffic in
// process, for the benchmarks of the stages it goes through
// (aggregator/write's derivations, storage/postgres's string resolution),
// so they measure the same events.
package benchtraffic

import (
	"fmt"
	"time"

	"github.com/avila-analytics/avila/protocol"
)

// Pages is how many pages the bench's traffic visits.
const Pages = 2000

// Page is the page the hash h picks: pages skewed towards the popular
// ones, as on a real site (the product of two uniform picks), in
// [0, Pages).
func Page(h uint64) int {
	return int((h % Pages) * ((h >> 20) % Pages) / Pages)
}

// Event is event j of the traffic of site from first on: 2048 visitors
// each in one GA4 session, 20-event requests of page views (a quarter
// from one of 300 referrers), scrolls and clicks with parameters and
// engagement, pages skewed towards 2000 popular ones, an event every
// 40 µs.
func Event(site uint32, first time.Time, j int) protocol.Event {
	v := (j / 20) % 2048
	h := uint64(j)*0x9e3779b97f4a7c15 ^ uint64(j)>>7
	page := Page(h)
	e := protocol.Event{Site: site, Visitor: 1 + uint64(v)*7919, SessionID: 1_718_000_000 + int64(v), SessionNum: 1,
		TimeMicros: first.Add(time.Duration(j) * 40 * time.Microsecond).UnixMicro(),
		Host:       "www.bench.example", Path: fmt.Sprintf("/page/%d", page), Title: fmt.Sprintf("Page %d", page),
		Language: "en-us", Screen: "1440x900", Country: "DE", City: "Berlin", Browser: "Chrome", OS: "Windows", Device: "desktop"}
	switch j % 4 {
	case 0:
		e.Name = "page_view"
		if (h>>40)%4 == 0 {
			e.Referrer = fmt.Sprintf("https://ref%d.example/", (h>>44)%300)
		}
		if j%20 == 0 {
			e.Flags |= protocol.FlagSessionStart
		}
	case 1:
		e.Name, e.NumParams = "scroll", map[string]float64{"percent_scrolled": 90}
	case 2:
		e.Name, e.EngageMs, e.Flags = "user_engagement", int64(1000+j%20000), protocol.FlagEngaged
	case 3:
		e.Name, e.Params = "click", map[string]string{"link_domain": "docs.bench.example", "outbound": "true"}
	}
	return e
}

// SegmentEvents is the agent's segment size under load: the events of
// one wire batch of Wire.
const SegmentEvents = 5000

// Wire is n wire batches of SegmentEvents events of site's traffic from
// first on (Event), one after the other, as one agent ("agent-1") ships
// them.
func Wire(site uint32, first time.Time, n int) ([][]byte, error) {
	wires := make([][]byte, n)
	raw := make([][]byte, SegmentEvents)
	j := 0
	for i := range wires {
		for k := range raw {
			e := Event(site, first, j)
			j++
			var err error
			if raw[k], err = protocol.EncodeEvent(&e); err != nil {
				return nil, fmt.Errorf("benchtraffic: encode event %d: %w", j-1, err)
			}
		}
		var err error
		if wires[i], err = protocol.EncodeRawBatch("agent-1", uint64(i+1), first.UnixMicro(), raw); err != nil {
			return nil, fmt.Errorf("benchtraffic: encode batch %d: %w", i+1, err)
		}
	}
	return wires, nil
}
