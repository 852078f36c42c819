package postgres

import (
	"context"
	"errors"
	"fmt"
	"math"
	"slices"
	"time"

	"github.com/avila-analytics/avila/aggregator/channel"
	"github.com/avila-analytics/avila/protocol"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/vmihailenco/msgpack/v5"
)

// DeadLetter is an event refused inside an otherwise good batch.
type DeadLetter struct {
	Index  int    // position of the event in its batch
	Reason string // why it was refused, for people
	Event  []byte // the event as MessagePack (protocol.EncodeEvent)
}

// WriteResult says what WriteBatch did.
type WriteResult struct {
	Stored, DeadLetters int
	// Duplicate: the batch key was committed before; nothing was written.
	Duplicate bool
}

// EventParams is the content of events.params (MessagePack), present only
// when an event has custom parameters or user properties (else ”).
type EventParams struct {
	Params    map[string]string  `msgpack:"ps,omitempty"`
	NumParams map[string]float64 `msgpack:"pn,omitempty"`
	UserProps map[string]string  `msgpack:"up,omitempty"`
}

// DecodeParams parses an events.params value; ” (or nil) is no parameters.
func DecodeParams(b []byte) (EventParams, error) {
	var p EventParams
	if len(b) == 0 {
		return p, nil
	}
	if err := msgpack.Unmarshal(b, &p); err != nil {
		return p, fmt.Errorf("postgres: decode event params: %w", err)
	}
	return p, nil
}

// EventColumns are the events table's columns in its order (migration
// 008): the COPY column list (eventSource.Values must match it) and the
// columns of EventsIn.
var EventColumns = []string{
	"ts", "visitor_id", "session_id", "site_id", "name_id", "referrer_id",
	"content_id", "client_id", "traffic_id", "engagement_ms", "flags", "params",
}

var deadLetterColumns = []string{"agent_id", "seq", "idx", "reason", "event"}

// WriteBatch stores one batch exactly once. Events must already be validated
// (strings valid UTF-8 without NUL, times within the partitions one may
// create). The batch key, the events and the dead letters commit together; a
// key committed before makes this call write nothing and report Duplicate.
// The batch's rollup deltas (rollup_days) commit in the same transaction.
func (s *Store) WriteBatch(ctx context.Context, agentID string, seq uint64, events []protocol.Event, dead []DeadLetter) (WriteResult, error) {
	if seq > math.MaxInt64 {
		return WriteResult{}, fmt.Errorf("postgres: write batch %s/%d: seq out of range", agentID, seq)
	}
	// A resend usually finds its key: answer it without resolving anything.
	var one int
	err := s.Pool.QueryRow(ctx, "SELECT 1 FROM agent_batches WHERE agent_id = $1 AND seq = $2", agentID, int64(seq)).Scan(&one)
	if err == nil {
		return WriteResult{Duplicate: true}, nil
	}
	if !errors.Is(err, pgx.ErrNoRows) {
		return WriteResult{}, fmt.Errorf("postgres: write batch %s/%d: check key: %w", agentID, seq, err)
	}
	if err := s.ensureEventDays(ctx, events); err != nil {
		return WriteResult{}, fmt.Errorf("postgres: write batch %s/%d: %w", agentID, seq, err)
	}
	rows, tr, err := s.eventRows(ctx, events)
	if err != nil {
		return WriteResult{}, fmt.Errorf("postgres: write batch %s/%d: %w", agentID, seq, err)
	}
	res, err := s.commitBatch(ctx, agentID, int64(seq), events, rows, tr, dead)
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) && pgErr.Code == "23514" {
		// No partition for a row: one was dropped after this process saw it.
		// Forget what is known so the resend recreates it.
		s.forgetPartitions()
	}
	if err != nil {
		return WriteResult{}, fmt.Errorf("postgres: write batch %s/%d: %w", agentID, seq, err)
	}
	return res, nil
}

// commitBatch writes the batch in one transaction. Its sessions are
// assigned inside it, under visitor locks (lockVisitors), so batches
// sharing visitors, here or on other nodes, sessionize one after the other
// and each sees the sessions the other committed. Nothing in the
// transaction takes a second pool connection.
func (s *Store) commitBatch(ctx context.Context, agentID string, seq int64, events []protocol.Event, rows []eventRow, tr *batchTraffic, dead []DeadLetter) (WriteResult, error) {
	tx, err := s.Pool.Begin(ctx)
	if err != nil {
		return WriteResult{}, fmt.Errorf("begin: %w", err)
	}
	defer tx.Rollback(context.WithoutCancel(ctx)) // no-op after Commit
	tag, err := tx.Exec(ctx, `INSERT INTO agent_batches (agent_id, seq, events, dead_letters)
		VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING`, agentID, seq, len(rows), len(dead))
	if err != nil {
		return WriteResult{}, fmt.Errorf("insert key: %w", err)
	}
	if tag.RowsAffected() == 0 {
		// Committed meanwhile by another node or an earlier send of the batch.
		return WriteResult{Duplicate: true}, nil
	}
	// The sites' rows first (FOR SHARE), then the visitors, then their
	// sessions and rollups: a rebuild locks the site FOR UPDATE before it
	// rewrites sessions and rollups, so taking the site's lock after the
	// sessions would deadlock with it.
	var zones map[int32]*time.Location
	if len(rows) > 0 {
		if zones, err = siteZones(ctx, tx, rows); err != nil {
			return WriteResult{}, err
		}
	}
	if err := lockVisitors(ctx, tx, events); err != nil {
		return WriteResult{}, err
	}
	as, known, err := s.assignSessions(ctx, tx, events)
	if err != nil {
		return WriteResult{}, err
	}
	for i := range rows {
		rows[i].session = as.Sessions[as.Of[i]].ID
	}
	sess := sessionRows(events, rows, &as, tr)
	if len(rows) > 0 {
		if _, err := tx.CopyFrom(ctx, pgx.Identifier{"events"}, EventColumns, newEventSource(rows)); err != nil {
			return WriteResult{}, fmt.Errorf("copy events: %w", err)
		}
	}
	changes, err := writeSessions(ctx, tx, sess)
	if err != nil {
		return WriteResult{}, err
	}
	if err := writeRollups(ctx, tx, rows, zones); err != nil {
		return WriteResult{}, err
	}
	if err := writeSessionRollups(ctx, tx, changes, zones); err != nil {
		return WriteResult{}, err
	}
	if len(dead) > 0 {
		dl := make([][]any, len(dead))
		for i, d := range dead {
			dl[i] = []any{agentID, seq, int32(d.Index), d.Reason, d.Event}
		}
		if _, err := tx.CopyFrom(ctx, pgx.Identifier{"dead_letters"}, deadLetterColumns, pgx.CopyFromRows(dl)); err != nil {
			return WriteResult{}, fmt.Errorf("copy dead letters: %w", err)
		}
	}
	// Still under the visitor locks, so the next batch of these visitors
	// finds them. Should the commit fail, the cache names sessions that
	// have no row: the next batch creates the row (same id and start) and
	// the resend joins it.
	s.cacheSessions(ctx, sess, known)
	if err := tx.Commit(ctx); err != nil {
		return WriteResult{}, fmt.Errorf("commit: %w", err)
	}
	return WriteResult{Stored: len(rows), DeadLetters: len(dead)}, nil
}

// ensureEventDays makes sure every UTC day the events fall on has a
// partition. Only the days present count: a batch holding a few events
// queued long ago creates their days, not every day in between.
func (s *Store) ensureEventDays(ctx context.Context, events []protocol.Event) error {
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

// eventRows resolves the events' strings to dims ids and builds COPY rows
// (their session ids are set once sessions are assigned). It also resolves
// the traffic source (aggregator/channel) of every event that may start a
// session, since which do is known only under the visitor locks.
func (s *Store) eventRows(ctx context.Context, events []protocol.Event) (rows []eventRow, tr *batchTraffic, err error) {
	rows = make([]eventRow, len(events))
	tr = newBatchTraffic(events)
	r := &dimResolver{}
	s.dims.mu.Lock()
	for i := range tr.ids {
		t := channel.Attribute(tr.pairs[i].path, tr.pairs[i].referrer)
		var fields [numDimKinds]string
		fields[DimSource-1], fields[DimMedium-1], fields[DimCampaign-1], fields[DimChannelGroup-1] =
			t.Source, t.Medium, t.Campaign, t.Group()
		r.fill(s.dims, tr.pairs[i].site, &fields, &tr.ids[i])
	}
	for i := range events {
		e := &events[i]
		fields := [numDimKinds]string{e.Name, e.Path, e.Host, e.Title, e.Referrer,
			e.Language, e.Screen, e.Country, e.Region, e.City, e.Browser, e.OS, e.Device}
		if e.Flags&protocol.FlagSessionStart != 0 {
			// The session's traffic source, from its landing page and
			// referrer, rides on its first event.
			t := channel.Attribute(e.Path, e.Referrer)
			fields[DimSource-1], fields[DimMedium-1], fields[DimCampaign-1], fields[DimChannelGroup-1] =
				t.Source, t.Medium, t.Campaign, t.Group()
		}
		r.fill(s.dims, e.Site, &fields, &rows[i].dims)
	}
	s.dims.mu.Unlock()
	if err := s.resolveDims(ctx, r); err != nil {
		return nil, nil, err
	}
	r.settle()
	for i := range events {
		e, row := &events[i], &rows[i]
		params, err := encodeParams(e)
		if err != nil {
			return nil, nil, err
		}
		row.site, row.ts, row.visitor = int32(e.Site), time.UnixMicro(e.TimeMicros).UTC(), int64(e.Visitor)
		row.engage, row.flags, row.params = int32(min(max(e.EngageMs, 0), math.MaxInt32)), int16(e.Flags), params
		row.pageView = e.Name == pageViewName
	}
	if err := s.eventProfiles(ctx, rows); err != nil {
		return nil, nil, err
	}
	// Each pair's traffic profile, for the sessions it may start.
	keys := make([]profileKey, len(tr.ids))
	for i := range tr.ids {
		keys[i] = profileKeyOf(TrafficProfile, int32(tr.pairs[i].site), &tr.ids[i])
	}
	tr.profiles = make([]int32, len(tr.ids))
	if err := s.profileIDs(ctx, TrafficProfile, s.traffic, keys, tr.profiles); err != nil {
		return nil, nil, err
	}
	return rows, tr, nil
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
func (s *Store) eventProfiles(ctx context.Context, rows []eventRow) error {
	keys := make([]profileKey, len(rows))
	ids := make([]int32, len(rows))
	for _, p := range []struct {
		*Profile
		cache *profileCache
		set   func(r *eventRow, id int32)
	}{
		{ContentProfile, s.contents, func(r *eventRow, id int32) { r.content = id }},
		{ClientProfile, s.clients, func(r *eventRow, id int32) { r.client = id }},
		{TrafficProfile, s.traffic, func(r *eventRow, id int32) { r.traffic = id }},
	} {
		for i := range rows {
			keys[i] = profileKeyOf(p.Profile, rows[i].site, &rows[i].dims)
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

// noParams is the params column of an event without parameters.
var noParams = []byte{}

// encodeParams returns the params column: empty when the event has none.
func encodeParams(e *protocol.Event) ([]byte, error) {
	if len(e.Params) == 0 && len(e.NumParams) == 0 && len(e.UserProps) == 0 {
		return noParams, nil
	}
	b, err := msgpack.Marshal(&EventParams{Params: e.Params, NumParams: e.NumParams, UserProps: e.UserProps})
	if err != nil {
		return nil, fmt.Errorf("encode params: %w", err)
	}
	return b, nil
}
