package postgres

import (
	"context"
	"errors"
	"fmt"
	"math"
	"slices"
	"time"

	"github.com/avila-analytics/avila/aggregator/channel"
	"github.com/avila-analytics/avila/aggregator/sessions"
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
// when an event has custom parameters or user properties.
type EventParams struct {
	Params    map[string]string  `msgpack:"ps,omitempty"`
	NumParams map[string]float64 `msgpack:"pn,omitempty"`
	UserProps map[string]string  `msgpack:"up,omitempty"`
}

// DecodeParams parses an events.params value.
func DecodeParams(b []byte) (EventParams, error) {
	var p EventParams
	if err := msgpack.Unmarshal(b, &p); err != nil {
		return p, fmt.Errorf("postgres: decode event params: %w", err)
	}
	return p, nil
}

// eventColumns is the COPY column list; eventRow.values must match it. The
// dims columns are in DimKind order.
var eventColumns = []string{
	"site_id", "ts", "visitor_id", "session_id", "engagement_ms", "flags", "params",
	"name_id", "page_id", "host_id", "title_id", "referrer_id",
	"language_id", "screen_id", "country_id", "region_id", "city_id", "browser_id", "os_id", "device_id",
	"source_id", "medium_id", "campaign_id", "channel_id",
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
	as, known, err := s.assignSessions(ctx, events)
	if err != nil {
		return WriteResult{}, fmt.Errorf("postgres: write batch %s/%d: %w", agentID, seq, err)
	}
	rows, traffic, err := s.eventRows(ctx, events, &as)
	if err != nil {
		return WriteResult{}, fmt.Errorf("postgres: write batch %s/%d: %w", agentID, seq, err)
	}
	sess := sessionRows(events, rows, &as, traffic)
	res, err := s.commitBatch(ctx, agentID, int64(seq), rows, sess, dead)
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) && pgErr.Code == "23514" {
		// No partition for a row: one was dropped after this process saw it.
		// Forget what is known so the resend recreates it.
		s.forgetPartitions()
	}
	if err != nil {
		return WriteResult{}, fmt.Errorf("postgres: write batch %s/%d: %w", agentID, seq, err)
	}
	if !res.Duplicate {
		s.cacheSessions(ctx, sess, known)
	}
	return res, nil
}

func (s *Store) commitBatch(ctx context.Context, agentID string, seq int64, rows []eventRow, sess []sessionRow, dead []DeadLetter) (WriteResult, error) {
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
	if len(rows) > 0 {
		if _, err := tx.CopyFrom(ctx, pgx.Identifier{"events"}, eventColumns, newEventSource(rows)); err != nil {
			return WriteResult{}, fmt.Errorf("copy events: %w", err)
		}
	}
	if err := writeSessions(ctx, tx, sess); err != nil {
		return WriteResult{}, err
	}
	if err := writeRollups(ctx, tx, rows); err != nil {
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

// eventRows resolves the events' strings to dims ids and builds COPY rows,
// each with its session's id. traffic holds, by session of as, the dims ids
// of the session's traffic source (from its first event) at the traffic
// kinds.
func (s *Store) eventRows(ctx context.Context, events []protocol.Event, as *sessions.Assignment) (rows []eventRow, traffic [][numDimKinds]int32, err error) {
	rows = make([]eventRow, len(events))
	traffic = make([][numDimKinds]int32, len(as.Sessions)) // not grown: the resolver keeps pointers into it
	r := &dimResolver{}
	s.dims.mu.Lock()
	for i := range as.Sessions {
		a := &as.Sessions[i]
		e := &events[a.Events[0]]
		t := channel.Attribute(e.Path, e.Referrer)
		var fields [numDimKinds]string
		fields[DimSource-1], fields[DimMedium-1], fields[DimCampaign-1], fields[DimChannelGroup-1] =
			t.Source, t.Medium, t.Campaign, t.Group()
		r.fill(s.dims, e.Site, &fields, &traffic[i])
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
		row.session = as.Sessions[as.Of[i]].ID
		row.engage, row.flags, row.params = int32(min(max(e.EngageMs, 0), math.MaxInt32)), int16(e.Flags), params
		row.pageView = e.Name == pageViewName
	}
	return rows, traffic, nil
}

// encodeParams returns the params column: nil (NULL) when the event has none.
func encodeParams(e *protocol.Event) ([]byte, error) {
	if len(e.Params) == 0 && len(e.NumParams) == 0 && len(e.UserProps) == 0 {
		return nil, nil
	}
	b, err := msgpack.Marshal(&EventParams{Params: e.Params, NumParams: e.NumParams, UserProps: e.UserProps})
	if err != nil {
		return nil, fmt.Errorf("encode params: %w", err)
	}
	return b, nil
}
