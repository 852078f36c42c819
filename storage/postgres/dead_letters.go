package postgres

import (
	"context"
	"fmt"
	"time"
)

// DeadLetterRow is one stored dead letter.
type DeadLetterRow struct {
	ID         int64
	AgentID    string
	Seq        uint64
	Index      int // position of the event in its batch
	Reason     string
	Event      []byte // MessagePack (protocol.EncodeEvent)
	ReceivedAt time.Time
}

// DeadLetterFilter selects dead letters; zero fields select all.
type DeadLetterFilter struct {
	AgentID string    // exactly this agent
	Since   time.Time // received at or after
	AfterID int64     // ids above it, for paging
	Limit   int       // at most this many; 0 for no limit
}

// DeadLetters returns dead letters in id order.
func (s *Store) DeadLetters(ctx context.Context, f DeadLetterFilter) ([]DeadLetterRow, error) {
	var since *time.Time
	if !f.Since.IsZero() {
		since = &f.Since
	}
	var limit *int
	if f.Limit > 0 {
		limit = &f.Limit
	}
	rows, err := s.pool.Query(ctx, `SELECT id, agent_id, seq, idx, reason, event, received_at FROM dead_letters
		WHERE ($1 = '' OR agent_id = $1) AND ($2::timestamptz IS NULL OR received_at >= $2) AND id > $3
		ORDER BY id LIMIT $4`, f.AgentID, since, f.AfterID, limit)
	if err != nil {
		return nil, fmt.Errorf("postgres: list dead letters: %w", err)
	}
	defer rows.Close()
	var out []DeadLetterRow
	for rows.Next() {
		var r DeadLetterRow
		var seq int64
		if err := rows.Scan(&r.ID, &r.AgentID, &seq, &r.Index, &r.Reason, &r.Event, &r.ReceivedAt); err != nil {
			return nil, fmt.Errorf("postgres: list dead letters: %w", err)
		}
		r.Seq = uint64(seq)
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("postgres: list dead letters: %w", err)
	}
	return out, nil
}

// DeleteDeadLetter removes a dead letter once it was replayed; deleting one
// that is gone is not an error.
func (s *Store) DeleteDeadLetter(ctx context.Context, id int64) error {
	if _, err := s.pool.Exec(ctx, `DELETE FROM dead_letters WHERE id = $1`, id); err != nil {
		return fmt.Errorf("postgres: delete dead letter %d: %w", id, err)
	}
	return nil
}
