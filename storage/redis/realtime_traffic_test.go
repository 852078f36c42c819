package redis

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/avila-analytics/avila/internal/benchtraffic"
	"github.com/avila-analytics/avila/internal/testenv"
	"github.com/avila-analytics/avila/protocol"
)

// trafficBatches are n batches of the end-to-end bench's traffic
// (benchtraffic.Wire) from first on,
// decoded from their wire form as ingest decodes them (so their strings
// are interned as ingest's are).
func trafficBatches(tb testing.TB, first time.Time, n int) [][]protocol.Event {
	tb.Helper()
	wires, err := benchtraffic.Wire(1, first, n)
	if err != nil {
		tb.Fatal(err)
	}
	batches := make([][]protocol.Event, n)
	for i, wire := range wires {
		b, err := protocol.DecodeBatch(wire)
		if err != nil {
			tb.Fatal(err)
		}
		batches[i] = b.Events
	}
	return batches
}

// BenchmarkRealtimeRecordTraffic counts the bench's traffic as the
// end-to-end phase does: batches of 5000 events into one minute, whose
// cells grow to the bound (MaxCells) within the first 20 batches; one
// iteration is 5 batches, 25,000 events, after those. "redis" counts
// them in Redis too (the end-to-end phase's store), where the minute's
// cells are not bounded.
func BenchmarkRealtimeRecordTraffic(b *testing.B) {
	first := time.Date(2026, 12, 6, 12, 0, 0, 0, time.UTC)
	batches := trafficBatches(b, first, 30)
	now := func() time.Time { return first.Add(50 * time.Second) }
	for _, withRedis := range []bool{false, true} {
		b.Run(map[bool]string{false: "memory", true: "redis"}[withRedis], func(b *testing.B) {
			var r realtimeStore = NewRealtime(RealtimeOptions{Now: now})
			if withRedis {
				c, err := Open(context.Background(), Options{URL: testenv.RedisURL(b)})
				if err != nil {
					b.Fatal(err)
				}
				defer c.Close()
				r = NewRedisRealtime(c, RealtimeOptions{Prefix: testenv.Prefix(b), Now: now})
			}
			for _, evs := range batches[:20] {
				r.Record(context.Background(), evs)
			}
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				for range 5 {
					r.Record(context.Background(), batches[20+i%10])
					i++
				}
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*5*5000), "ns/event")
		})
	}
}

// BenchmarkRealtimeRecordTrafficMinutes counts the bench's traffic in
// memory a minute after another: one iteration is 20 batches of 5000
// events into a new minute, which they fill to the bound (MaxCells), as
// the end-to-end phase's minutes fill.
func BenchmarkRealtimeRecordTrafficMinutes(b *testing.B) {
	first := time.Date(2026, 12, 6, 12, 0, 0, 0, time.UTC)
	// Stamped a day ahead: every batch counts in the clock's minute.
	batches := trafficBatches(b, first.Add(24*time.Hour), 20)
	clock := first
	r := NewRealtime(RealtimeOptions{Now: func() time.Time { return clock }})
	for _, evs := range batches {
		r.Record(context.Background(), evs)
	}
	b.ReportAllocs()
	for b.Loop() {
		clock = clock.Add(time.Minute)
		for _, evs := range batches {
			r.Record(context.Background(), evs)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*20*5000), "ns/event")
}

// BenchmarkRealtimeRecordTrafficHeld counts the bench's traffic in memory
// into a minute that holds every cell of it (MaxCells above them), as
// the end-to-end phase's minutes do, whose visitors repeat their pages:
// after 30 batches are counted, one iteration is 5 of them again, 25,000
// events each of a cell the minute holds.
func BenchmarkRealtimeRecordTrafficHeld(b *testing.B) {
	first := time.Date(2026, 12, 6, 12, 0, 0, 0, time.UTC)
	batches := trafficBatches(b, first, 30)
	recordHeld(b, first, batches, batches[20:])
}

// recordHeld counts held, then again's batches, 5 an iteration, into a
// memory Realtime whose minute holds every cell.
func recordHeld(b *testing.B, first time.Time, held, again [][]protocol.Event) {
	r := NewRealtime(RealtimeOptions{Now: func() time.Time { return first.Add(50 * time.Second) }, MaxCells: 1 << 20})
	for _, evs := range held {
		r.Record(context.Background(), evs)
	}
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		for range 5 {
			r.Record(context.Background(), again[i%len(again)])
			i++
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*5*5000), "ns/event")
}

// apart is a copy of batches whose strings are copies of theirs, each
// value one string across the copy: the same events decoded by another
// decoder (ingest interns per decoder), whose strings are equal to the
// held cells' but not at their addresses. Every event is a persistent
// visitor's, as the agent marks the bench's events (they carry a client
// id), so each looks up its device's session (sessionUsers).
func apart(batches [][]protocol.Event) [][]protocol.Event {
	interned := map[string]string{}
	clone := func(s *string) {
		c, ok := interned[*s]
		if !ok {
			c = strings.Clone(*s)
			interned[c] = c
		}
		*s = c
	}
	out := make([][]protocol.Event, len(batches))
	for i, evs := range batches {
		out[i] = slices.Clone(evs)
		for j := range out[i] {
			e := &out[i][j]
			e.Flags |= protocol.FlagPersistent
			for _, s := range []*string{&e.Name, &e.Country, &e.City, &e.Device, &e.Title, &e.Path} {
				clone(s)
			}
		}
	}
	return out
}

// BenchmarkRealtimeRecordTrafficHeldApart is
// BenchmarkRealtimeRecordTrafficHeld with the events of persistent
// visitors whose strings are not at the held cells' addresses: the
// batches the end-to-end phase sends again come through other decoders
// than the first time.
func BenchmarkRealtimeRecordTrafficHeldApart(b *testing.B) {
	first := time.Date(2026, 12, 6, 12, 0, 0, 0, time.UTC)
	batches := trafficBatches(b, first, 30)
	for i := range batches {
		for j := range batches[i] {
			batches[i][j].Flags |= protocol.FlagPersistent
		}
	}
	recordHeld(b, first, batches, apart(batches[20:]))
}
