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
}

// EnsureEventDays makes sure every UTC day the events fall on has a
// partition. Only the days present count: a batch holding a few events
// queued long ago creates their days, not every day in between.
func (s *Store) EnsureEventDays(ctx context.Context, events []protocol.Event) error {
	var days []int64
	last := int64(math.MinInt64)
	for i := range events {
		d := unixDay(time.UnixMicro(events[i].TimeMicros))
		if d != last && !slices.Contains(days, d) { // events come nearly sorted: few distinct days
			days = append(days, d)
		}
		last = d
	}
	return s.ensureDays(ctx, days)
}

type trafficPair struct {
	site           uint32
	path, referrer string
}

// ResolveEvents resolves the events' strings to dims and profile ids and
// builds their rows. An event flagged as a session start (its sender cut
// the session) carries its traffic source, attribute(path, referrer), on
// its row; attribute also gives the source of every distinct page and
// referrer (Resolved.Traffic). Strings are inserted in their own short
// transactions, apart from any other: see resolveDims.
func (s *Store) ResolveEvents(ctx context.Context, events []protocol.Event, attribute func(path, referrer string) Traffic) (*Resolved, error) {
	res := &Resolved{Rows: make([]EventRow, len(events)), TrafficOf: make([]int32, len(events))}
	rows := res.Rows
	var pairs []trafficPair
	index := make(map[trafficPair]int32)
	for i := range events {
		p := trafficPair{events[i].Site, events[i].Path, events[i].Referrer}
		j, ok := index[p]
		if !ok {
			j = int32(len(pairs))
			index[p] = j
			pairs = append(pairs, p)
		}
		res.TrafficOf[i] = j
	}
	res.Traffic = make([]TrafficIDs, len(pairs))
	setTraffic := func(fields *[numDimKinds]string, t Traffic) {
		fields[DimSource-1], fields[DimMedium-1], fields[DimCampaign-1], fields[DimChannelGroup-1] =
			t.Source, t.Medium, t.Campaign, t.Group
	}
	// Each pair's source, once: a session start's event takes its
	// pair's.
	sources := make([]Traffic, len(pairs))
	for i := range pairs {
		sources[i] = attribute(pairs[i].path, pairs[i].referrer)
	}
	r := &dimResolver{addrs: s.dimAddrs}
	s.dims.mu.Lock()
	for i := range pairs {
		var fields [numDimKinds]string
		setTraffic(&fields, sources[i])
		r.fill(s.dims, pairs[i].site, &fields, &res.Traffic[i].Dims)
	}
	for i := range events {
		e := &events[i]
		fields := [numDimKinds]string{e.Name, e.Path, e.Host, e.Title, e.Referrer,
			e.Language, e.Screen, e.Country, e.Region, e.City, e.Browser, e.OS, e.Device}
		if e.Flags&protocol.FlagSessionStart != 0 {
			// The session's traffic source, from its landing page and
			// referrer, rides on its first event.
			setTraffic(&fields, sources[res.TrafficOf[i]])
		}
		r.fill(s.dims, e.Site, &fields, &rows[i].Dims)
	}
	s.dims.mu.Unlock()
	if err := s.resolveDims(ctx, r); err != nil {
		return nil, err
	}
	r.settle()
	var params []byte // every row's params column, one after the other
	for i := range events {
		e, row := &events[i], &rows[i]
		row.Params, params = appendParamsColumn(params, e)
		row.Site, row.TS, row.Visitor = int32(e.Site), time.UnixMicro(e.TimeMicros).UTC(), int64(e.Visitor)
		row.Engage, row.Flags = int32(min(max(e.EngageMs, 0), math.MaxInt32)), int16(e.Flags)
		row.PageView = e.Name == pageViewName
	}
	if err := s.eventProfiles(ctx, rows); err != nil {
		return nil, err
	}
	// Each pair's traffic profile, for the sessions it may start.
	keys := make([]profileKey, len(pairs))
	for i := range pairs {
		keys[i] = profileKeyOf(TrafficProfile, int32(pairs[i].site), &res.Traffic[i].Dims)
	}
	profiles := make([]int32, len(pairs))
	if err := s.profileIDs(ctx, TrafficProfile, s.traffic, keys, profiles); err != nil {
		return nil, err
	}
	for i := range profiles {
		res.Traffic[i].Profile = profiles[i]
	}
	return res, nil
}

// profileKeyOf is the key of p's profile of site with the dims ids dims.
func profileKeyOf(p *Profile, site int32, dims *[numDimKinds]int32) profileKey {
	k := profileKey{site: site}
	for j, kind := range p.Kinds {
		k.ids[j] = dims[kind-1]
	}
	return k
}

// eventProfiles sets each row's content, client and traffic profile ids
// from its dims ids.
func (s *Store) eventProfiles(ctx context.Context, rows []EventRow) error {
	// The keys are scratch, taken from and given back to the store's
	// pool (profileIDs copies those it keeps).
	buf, _ := s.profileKeys.Get().(*[]profileKey)
	if buf == nil {
		buf = new([]profileKey)
	}
	defer s.profileKeys.Put(buf)
	if cap(*buf) < len(rows) {
		*buf = make([]profileKey, len(rows))
	}
	keys := (*buf)[:len(rows)]
	ids := make([]int32, len(rows))
	for _, p := range []struct {
		*Profile
		cache *profileCache
		set   func(r *EventRow, id int32)
	}{
		{ContentProfile, s.contents, func(r *EventRow, id int32) { r.Content = id }},
		{ClientProfile, s.clients, func(r *EventRow, id int32) { r.Client = id }},
		{TrafficProfile, s.traffic, func(r *EventRow, id int32) { r.Traffic = id }},
	} {
		for i := range rows {
			keys[i] = profileKeyOf(p.Profile, rows[i].Site, &rows[i].Dims)
		}
		if err := s.profileIDs(ctx, p.Profile, p.cache, keys, ids); err != nil {
			return err
		}
		for i := range rows {
			p.set(&rows[i], ids[i])
		}
	}
	return nil
}

// paramsChunk is the size of the buffers appendParamsColumn writes rows'
// params columns into.
const paramsChunk = 64 << 10

// noParams is the params column of an event without parameters.
var noParams = []byte{}

// appendParamsColumn returns an event's params column and buf, extended
// with it: the column is empty when the event has no parameters, else the
// MessagePack msgpack.Marshal writes for EventParams (a map of the
// non-empty fields ps, pn, up, floats in 8 bytes), written by
// protocol.AppendParams without reflection. A batch's rows share one
// buffer instead of an allocation each; a column is capped at its length,
// so nothing appended later reaches into it.
func appendParamsColumn(buf []byte, e *protocol.Event) (col, extended []byte) {
	if len(e.Params) == 0 && len(e.NumParams) == 0 && len(e.UserProps) == 0 {
		return noParams, buf
	}
	if cap(buf)-len(buf) < 256 {
		// A new chunk, not a grown copy: the columns taken from the
		// old one keep it, and copying them would only double it.
		buf = make([]byte, 0, paramsChunk)
	}
	start := len(buf)
	buf = protocol.AppendParams(buf, e)
	return buf[start:len(buf):len(buf)], buf
}
