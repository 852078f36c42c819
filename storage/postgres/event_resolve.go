package postgres

import (
	"context"
	"math"
	"slices"
	"time"

	"github.com/avila-analytics/avila/protocol"
)

// Traffic is a session's traffic source as the write stage attributes it
// (aggregator/channel): strings, stored at the traffic dims kinds.
type Traffic struct {
	Source, Medium, Campaign, Group string
}

// TrafficIDs is a Traffic resolved: its dims ids at the traffic kinds
// (DimSource … DimChannelGroup, by DimKind-1, the other kinds 0) and its
// traffic_profiles id.
type TrafficIDs struct {
	Dims    [numDimKinds]int32
	Profile int32
}

// Resolved are a batch's events as rows, with the traffic source of every
// distinct (page, referrer) of the batch: any event may turn out to start a
// session, which the write stage knows only once it assigns sessions.
type Resolved struct {
	Rows      []EventRow   // by event; Session is 0 until the caller sets it
	Traffic   []TrafficIDs // by distinct (site, page, referrer)
	TrafficOf []int32      // by event: index into Traffic

	// profiles and pairs are the resolution's memory, for
	// ResolveEventsTo into res to reuse.
	profiles profileScratch
	pairs    pairScratch
	dims     dimScratch
	// params are the buffers of the rows' params columns
	// (appendParamsColumn), kept for the next resolution into the same
	// Resolved: it clears the rows, which the COPY of the chunk they were
	// resolved for has read, before it writes over them (reset).
	params chunkPool
}

// dimScratch holds a resolution's maps of known strings and array of
// slots waiting for ids (dimResolver.known, pending), emptied, for the
// next resolution into the same Resolved: they hold no string and no
// slot once it is done.
type dimScratch struct {
	known   [numDimKinds]map[string]int32
	pending []dimSlot
}

// Bounds of what a dimScratch keeps: a kind's map of more strings, or
// an array of more slots (16 bytes each), goes.
const (
	maxKeptKnown   = 1 << 14
	maxKeptPending = 1 << 16
)

// resolver returns a resolver with the scratch's maps and array.
func (sc *dimScratch) resolver(addrs *dimAddrs) *dimResolver {
	return &dimResolver{addrs: addrs, known: sc.known, pending: sc.pending[:0]}
}

// keep takes back r's maps and array, emptied.
func (sc *dimScratch) keep(r *dimResolver) {
	for k, m := range r.known {
		if len(m) > maxKeptKnown {
			m = nil
		}
		clear(m)
		sc.known[k] = m
	}
	clear(r.pending)
	sc.pending = nil
	if cap(r.pending) <= maxKeptPending {
		sc.pending = r.pending[:0]
	}
}

// pairScratch holds what resolveEvents keeps of the distinct (page,
// referrer) pairs of its events: the index of each pair's first event,
// its traffic source (emptied after use, so it keeps no strings alive)
// and ids (Resolved.Traffic's array), and the pairs' indexes by site.
type pairScratch struct {
	first   []int32
	sources []Traffic
	traffic []TrafficIDs
	indexes map[uint32]map[uint64]int32
}

// maxIndexedSites bounds the sites whose pair index a pairScratch keeps
// for the next resolution (a derivation's events are of one site).
const maxIndexedSites = 4

// grown returns a's array with length n, or a new one when a has not
// room for n: with a quarter more room when a had an array already (uses
// of growing sizes). The entries are those of an earlier use.
func grown[T any](a []T, n int) []T {
	if cap(a) < n {
		a = make([]T, n+roomFor(a, n))
	}
	return a[:n]
}

// roomFor is the room past n a new array replacing a gets: a quarter
// of n, none for a first array.
func roomFor[T any](a []T, n int) int {
	if cap(a) == 0 {
		return 0
	}
	return n / 4
}

// EnsureEventDays makes sure every UTC day the events fall on has a
// partition. Only the days present count: a batch holding a few events
// queued long ago creates their days, not every day in between.
func (s *Store) EnsureEventDays(ctx context.Context, events []protocol.Event) error {
	var days []int64
	last := int64(math.MinInt64)
	for i := range events {
		d := unixDayMicros(events[i].TimeMicros)
		if d != last && !slices.Contains(days, d) { // events come nearly sorted: few distinct days
			days = append(days, d)
		}
		last = d
	}
	return s.ensureDays(ctx, days)
}

// pairKey is the key of a (page, referrer) of a site, by the dims ids of
// its strings, known or provisional (dimResolver.fill), which stand for
// the strings within one resolver.
func pairKey(dims *[numDimKinds]int32) uint64 {
	return uint64(uint32(dims[DimPagePath-1]))<<32 | uint64(uint32(dims[DimReferrer-1]))
}

// ResolveEventsTo resolves the events' strings to dims and profile ids and
// builds their rows into res. An event flagged as a session start (its
// sender cut the session) carries its traffic source, attribute(path,
// referrer), on its row; attribute also gives the source of every
// distinct page and referrer (Resolved.Traffic). Strings are inserted in
// their own short transactions, apart from any other: see resolveDims.
//
// res's arrays are reused (Rows and TrafficOf, a derivation chunk's
// worth: about 200 bytes an event): what res held before is overwritten,
// and rows it held past the events' number are zeroed, so they keep no
// params or amounts alive. The rows of res.Rows' array past its length
// must be zero, as ResolveEventsTo leaves them (a caller that shortens
// Rows clears what it cuts); a new Resolved is. On error res holds no
// rows.
func (s *Store) ResolveEventsTo(ctx context.Context, res *Resolved, events []protocol.Event, attribute func(path, referrer string) Traffic) error {
	// The resolution below relies on zero rows; the array is zero past
	// the rows of the last use.
	clear(res.Rows)
	// The rows cleared held the last resolution's params columns.
	res.params.reset(false)
	res.Rows = slices.Grow(res.Rows[:0], len(events))[:len(events)]
	res.TrafficOf = slices.Grow(res.TrafficOf[:0], len(events))[:len(events)]
	res.Traffic = nil
	err := s.resolveEvents(ctx, res, events, attribute)
	if err != nil {
		clear(res.Rows)
		res.Rows = res.Rows[:0]
	}
	return err
}

// eventKinds are the dimension kinds an event carries itself,
// DimEventName … DimDevice; the traffic kinds after them are a session
// start's.
const eventKinds = DimDevice

// eventTexts are e's texts of eventKinds, by kind-1.
func eventTexts(e *protocol.Event) [eventKinds]string {
	return [eventKinds]string{e.Name, e.Path, e.Host, e.Title, e.Referrer,
		e.Language, e.Screen, e.Country, e.Region, e.City, e.Browser, e.OS, e.Device}
}

func (s *Store) resolveEvents(ctx context.Context, res *Resolved, events []protocol.Event, attribute func(path, referrer string) Traffic) error {
	rows := res.Rows
	r := res.dims.resolver(s.dimAddrs)
	defer res.dims.keep(r)
	s.dims.mu.Lock()
	for i := range events {
		fields := eventTexts(&events[i])
		r.fill(s.dims, events[i].Site, 0, fields[:], &rows[i].Dims)
	}
	s.dims.mu.Unlock()
	// The distinct pairs, by their strings' ids (pairKey): comparing ids
	// costs less than hashing strings. A page's events mostly follow each
	// other.
	first := res.pairs.first[:0] // by pair: the index of its first event
	var index map[uint64]int32
	indexes := res.pairs.indexes // by site
	if indexes == nil || len(indexes) > maxIndexedSites {
		indexes = make(map[uint32]map[uint64]int32)
		res.pairs.indexes = indexes
	}
	for _, m := range indexes {
		clear(m)
	}
	site, last, lastAt := uint32(0), uint64(0), int32(-1)
	for i := range events {
		k := pairKey(&rows[i].Dims)
		if lastAt < 0 || k != last || events[i].Site != site {
			if index == nil || events[i].Site != site {
				site = events[i].Site
				if index = indexes[site]; index == nil {
					index = make(map[uint64]int32)
					indexes[site] = index
				}
			}
			j, ok := index[k]
			if !ok {
				j = int32(len(first))
				index[k] = j
				first = append(first, int32(i))
			}
			last, lastAt = k, j
		}
		res.TrafficOf[i] = lastAt
	}
	res.pairs.first = first
	res.pairs.traffic = grown(res.pairs.traffic, len(first))
	res.Traffic = res.pairs.traffic
	clear(res.Traffic)
	trafficFields := func(t Traffic) []string {
		return []string{0: t.Source, DimMedium - DimSource: t.Medium,
			DimCampaign - DimSource: t.Campaign, DimChannelGroup - DimSource: t.Group}
	}
	// Each pair's source, once: a session start's event takes its
	// pair's.
	res.pairs.sources = grown(res.pairs.sources, len(first))
	sources := res.pairs.sources
	defer clear(sources)
	for i, at := range first {
		sources[i] = attribute(events[at].Path, events[at].Referrer)
	}
	s.dims.mu.Lock()
	for i, at := range first {
		r.fill(s.dims, events[at].Site, int(DimSource-1), trafficFields(sources[i]), &res.Traffic[i].Dims)
	}
	for i := range events {
		if e := &events[i]; e.Flags&protocol.FlagSessionStart != 0 {
			// The session's traffic source, from its landing page and
			// referrer, rides on its first event.
			r.fill(s.dims, e.Site, int(DimSource-1), trafficFields(sources[res.TrafficOf[i]]), &rows[i].Dims)
		}
	}
	s.dims.mu.Unlock()
	if err := s.resolveDims(ctx, r); err != nil {
		return err
	}
	r.settle()
	var params []byte // every row's params column, one after the other
	for i := range events {
		e, row := &events[i], &rows[i]
		row.Params, params = appendParamsColumn(params, e, &res.params)
		row.Site, row.TS, row.Visitor = int32(e.Site), time.UnixMicro(e.TimeMicros).UTC(), int64(e.Visitor)
		row.Engage, row.Flags = int32(min(max(e.EngageMs, 0), math.MaxInt32)), int16(e.Flags)
		row.PageView = e.Name == pageViewName
	}
	if err := s.eventProfiles(ctx, rows, &res.profiles); err != nil {
		return err
	}
	// Each pair's traffic profile, for the sessions it may start.
	keys, profiles := res.profiles.take(len(first))
	for i, at := range first {
		keys[i] = profileKeyOf(TrafficProfile, int32(events[at].Site), &res.Traffic[i].Dims)
	}
	if err := s.profileIDs(ctx, TrafficProfile, s.traffic, keys, profiles); err != nil {
		return err
	}
	for i := range profiles {
		res.Traffic[i].Profile = profiles[i]
	}
	return nil
}

// profileKeyOf is the key of p's profile of site with the dims ids dims.
// The profiles of Profiles read their kinds at constant indices, not
// kind by kind from p.Kinds with a bounds check each (every event's
// three keys; TestProfileKeyOf holds them to p.Kinds).
func profileKeyOf(p *Profile, site int32, dims *[numDimKinds]int32) profileKey {
	k := profileKey{site: site}
	switch p {
	case ContentProfile:
		k.ids[0], k.ids[1], k.ids[2] = dims[DimHost-1], dims[DimPagePath-1], dims[DimTitle-1]
	case ClientProfile:
		k.ids[0], k.ids[1], k.ids[2], k.ids[3] = dims[DimLanguage-1], dims[DimScreen-1], dims[DimCountry-1], dims[DimRegion-1]
		k.ids[4], k.ids[5], k.ids[6], k.ids[7] = dims[DimCity-1], dims[DimBrowser-1], dims[DimOS-1], dims[DimDevice-1]
	case TrafficProfile:
		k.ids[0], k.ids[1], k.ids[2], k.ids[3] = dims[DimSource-1], dims[DimMedium-1], dims[DimCampaign-1], dims[DimChannelGroup-1]
	default:
		k = profileKeyOfKinds(p, site, dims)
	}
	return k
}

// profileKeyOfKinds is profileKeyOf, kind by kind.
func profileKeyOfKinds(p *Profile, site int32, dims *[numDimKinds]int32) profileKey {
	k := profileKey{site: site}
	for j, kind := range p.Kinds {
		k.ids[j] = dims[kind-1]
	}
	return k
}

// profileScratch holds the keys and ids of the profiles of a resolution's
// rows (eventProfiles), kept in Resolved for the resolutions after.
type profileScratch struct {
	keys []profileKey
	ids  []int32
}

// take returns keys and ids for n rows, of the arrays kept when they have
// room, else of new ones with a quarter more room. Their entries are
// those of an earlier use: the caller writes each key before it reads.
func (sc *profileScratch) take(n int) ([]profileKey, []int32) {
	sc.keys, sc.ids = grown(sc.keys, n), grown(sc.ids, n)
	return sc.keys, sc.ids
}

// eventProfiles sets each row's content, client and traffic profile ids
// from its dims ids, with the keys and ids of sc (profileIDs copies the
// keys it keeps).
func (s *Store) eventProfiles(ctx context.Context, rows []EventRow, sc *profileScratch) error {
	keys, ids := sc.take(len(rows))
	for _, p := range []struct {
		*Profile
		cache *profileCache
	}{
		{ContentProfile, s.contents},
		{ClientProfile, s.clients},
		{TrafficProfile, s.traffic},
	} {
		for i := range rows {
			keys[i] = profileKeyOf(p.Profile, rows[i].Site, &rows[i].Dims)
		}
		if err := s.profileIDs(ctx, p.Profile, p.cache, keys, ids); err != nil {
			return err
		}
		// Each profile's column in a loop of its own, not through a
		// function value per row.
		switch p.Profile {
		case ContentProfile:
			for i := range rows {
				rows[i].Content = ids[i]
			}
		case ClientProfile:
			for i := range rows {
				rows[i].Client = ids[i]
			}
		case TrafficProfile:
			for i := range rows {
				rows[i].Traffic = ids[i]
			}
		}
	}
	return nil
}

// noParams is the params column of an event without parameters.
var noParams = []byte{}

// appendParamsColumn returns an event's params column and buf, extended
// with it: the column is empty when the event has no parameters, else the
// MessagePack msgpack.Marshal writes for EventParams (a map of the
// non-empty fields ps, pn, up, floats in 8 bytes), written by
// protocol.AppendParams without reflection. A batch's rows share one
// buffer instead of an allocation each; a column is capped at its length,
// so nothing appended later reaches into it. A new buffer is one of
// chunks (nil: a new one).
func appendParamsColumn(buf []byte, e *protocol.Event, chunks *chunkPool) (col, extended []byte) {
	if len(e.Params) == 0 && len(e.NumParams) == 0 && len(e.UserProps) == 0 {
		return noParams, buf
	}
	if cap(buf)-len(buf) < 256 {
		// A new chunk, not a grown copy: the columns taken from the
		// old one keep it, and copying them would only double it.
		buf = chunks.next()
	}
	start := len(buf)
	buf = protocol.AppendParams(buf, e)
	return buf[start:len(buf):len(buf)], buf
}
