package postgres

import (
	"context"
	"errors"
	"fmt"
	"math"

	"github.com/jackc/pgx/v5"
	"github.com/vmihailenco/msgpack/v5"
)

// DeadLetter is an event refused inside an otherwise good batch.
type DeadLetter struct {
	Index  int    // position of the event in its batch
	Reason string // why it was refused, for people
	Event  []byte // the event as MessagePack (protocol.EncodeEvent)
}

// StageResult says what StageBatch did.
type StageResult struct {
	Staged, DeadLetters int
	// Duplicate: the batch key was committed before; nothing was written.
	Duplicate bool
}

// Staged is one site's share of a batch, as StageBatch stores it.
type Staged struct {
	Site    uint32
	Events  int    // number of events in Payload
	Payload []byte // the events as a wire batch (protocol.EncodeBatch)
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
// 008): the COPY column list (eventsCopyReader must match it) and the
// columns of EventsIn.
var EventColumns = []string{
	"ts", "visitor_id", "session_id", "site_id", "name_id", "referrer_id",
	"content_id", "client_id", "traffic_id", "engagement_ms", "flags", "params", "commerce_id",
}

var deadLetterColumns = []string{"agent_id", "seq", "idx", "reason", "event"}

// StageBatch stores one batch exactly once: its key (agent_id, seq), its
// staged events (one row per site) and its dead letters commit in one
// transaction; a key committed before makes this call write nothing and
// report Duplicate. It takes no lock another batch holds: batches of one
// site, on any node, commit side by side. The staged events reach the
// events, sessions and rollups tables through a DeriveTx.
func (s *Store) StageBatch(ctx context.Context, agentID string, seq uint64, staged []Staged, dead []DeadLetter) (StageResult, error) {
	if seq > math.MaxInt64 {
		return StageResult{}, fmt.Errorf("postgres: stage batch %s/%d: seq out of range", agentID, seq)
	}
	// A resend usually finds its key: answer it without a transaction.
	var one int
	err := s.pool.QueryRow(ctx, "SELECT 1 FROM agent_batches WHERE agent_id = $1 AND seq = $2", agentID, int64(seq)).Scan(&one)
	if err == nil {
		return StageResult{Duplicate: true}, nil
	}
	if !errors.Is(err, pgx.ErrNoRows) {
		return StageResult{}, fmt.Errorf("postgres: stage batch %s/%d: check key: %w", agentID, seq, err)
	}
	res, err := s.stageBatch(ctx, agentID, int64(seq), staged, dead)
	if err != nil {
		return StageResult{}, fmt.Errorf("postgres: stage batch %s/%d: %w", agentID, seq, err)
	}
	return res, nil
}

func (s *Store) stageBatch(ctx context.Context, agentID string, seq int64, staged []Staged, dead []DeadLetter) (StageResult, error) {
	n := 0
	for _, st := range staged {
		n += st.Events
	}
	tx, err := s.pool.Begin(ctx)
	if err != nil {
		return StageResult{}, fmt.Errorf("begin: %w", err)
	}
	defer tx.Rollback(context.WithoutCancel(ctx)) // no-op after Commit
	tag, err := tx.Exec(ctx, `INSERT INTO agent_batches (agent_id, seq, events, dead_letters)
		VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING`, agentID, seq, n, len(dead))
	if err != nil {
		return StageResult{}, fmt.Errorf("insert key: %w", err)
	}
	if tag.RowsAffected() == 0 {
		// Committed meanwhile by another node or an earlier send of the batch.
		return StageResult{Duplicate: true}, nil
	}
	if len(staged) > 0 {
		sites, counts, payloads := make([]int32, len(staged)), make([]int32, len(staged)), make([][]byte, len(staged))
		for i, st := range staged {
			sites[i], counts[i], payloads[i] = int32(st.Site), int32(st.Events), st.Payload
		}
		if _, err := tx.Exec(ctx, `INSERT INTO staged_events (site_id, events, payload)
			SELECT * FROM unnest($1::integer[], $2::integer[], $3::bytea[])`, sites, counts, payloads); err != nil {
			return StageResult{}, fmt.Errorf("insert staged events: %w", err)
		}
	}
	if len(dead) > 0 {
		dl := make([][]any, len(dead))
		for i, d := range dead {
			dl[i] = []any{agentID, seq, int32(d.Index), d.Reason, d.Event}
		}
		if _, err := tx.CopyFrom(ctx, pgx.Identifier{"dead_letters"}, deadLetterColumns, pgx.CopyFromRows(dl)); err != nil {
			return StageResult{}, fmt.Errorf("copy dead letters: %w", err)
		}
	}
	if err := tx.Commit(ctx); err != nil {
		return StageResult{}, fmt.Errorf("commit: %w", err)
	}
	return StageResult{Staged: n, DeadLetters: len(dead)}, nil
}
