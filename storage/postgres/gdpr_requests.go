package postgres

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
)

// GDPRRequest is a data subject request made through the API and done
// asynchronously by an aggregator's worker (gdpr_requests).
type GDPRRequest struct {
	ID          int64
	Site        uint32
	Kind        string // "export" or "erasure"
	Identity    string // "client_id" or "user_id"
	Subject     uint64 // the subject's key (protocol/identity), never the id itself
	State       string // "pending", "running", "done", "failed"
	RequestedBy string
	Attempts    int
	CreatedAt   time.Time
	StartedAt   *time.Time
	FinishedAt  *time.Time
	Error       string
	Result      []byte // JSON: the export, or the erasure's counts
}

const gdprRequestColumns = "id, site_id, kind, identity, subject, state, requested_by, attempts, created_at, started_at, finished_at, error, result"

func scanGDPRRequest(row pgx.Row) (GDPRRequest, error) {
	var r GDPRRequest
	var site int32
	var subject int64
	err := row.Scan(&r.ID, &site, &r.Kind, &r.Identity, &subject, &r.State, &r.RequestedBy, &r.Attempts, &r.CreatedAt,
		&r.StartedAt, &r.FinishedAt, &r.Error, &r.Result)
	r.Site, r.Subject = uint32(site), uint64(subject)
	return r, err
}

// CreateGDPRRequest queues a request; the worker picks it up.
func (s *Store) CreateGDPRRequest(ctx context.Context, r GDPRRequest) (GDPRRequest, error) {
	out, err := scanGDPRRequest(s.pool.QueryRow(ctx, `INSERT INTO gdpr_requests (site_id, kind, identity, subject, requested_by)
		VALUES ($1, $2, $3, $4, $5) RETURNING `+gdprRequestColumns, int32(r.Site), r.Kind, r.Identity, int64(r.Subject), r.RequestedBy))
	if err != nil {
		return GDPRRequest{}, fmt.Errorf("postgres: create %s request: %w", r.Kind, err)
	}
	return out, nil
}

// GDPRRequestByID returns one request, ErrNotFound when there is none.
func (s *Store) GDPRRequestByID(ctx context.Context, id int64) (GDPRRequest, error) {
	r, err := scanGDPRRequest(s.pool.QueryRow(ctx, "SELECT "+gdprRequestColumns+" FROM gdpr_requests WHERE id = $1", id))
	if errors.Is(err, pgx.ErrNoRows) {
		return r, fmt.Errorf("postgres: request %d: %w", id, ErrNotFound)
	}
	if err != nil {
		return r, fmt.Errorf("postgres: request %d: %w", id, err)
	}
	return r, nil
}

// ClaimGDPRRequest takes the oldest pending request, or one left running
// longer than stale (its worker died: a restart resumes it; export and
// erasure are both safe to run again), and marks it running. ok is false
// when there is none.
func (s *Store) ClaimGDPRRequest(ctx context.Context, stale time.Duration) (r GDPRRequest, ok bool, err error) {
	r, err = scanGDPRRequest(s.pool.QueryRow(ctx, `UPDATE gdpr_requests SET state = 'running', started_at = now(), attempts = attempts + 1
		WHERE id = (SELECT id FROM gdpr_requests
			WHERE state = 'pending' OR (state = 'running' AND started_at < now() - $1::interval)
			ORDER BY id LIMIT 1 FOR UPDATE SKIP LOCKED)
		RETURNING `+gdprRequestColumns, stale))
	if errors.Is(err, pgx.ErrNoRows) {
		return r, false, nil
	}
	if err != nil {
		return r, false, fmt.Errorf("postgres: claim request: %w", err)
	}
	return r, true, nil
}

// FinishGDPRRequest records a claimed request's outcome: done with
// result, or failed with errText.
func (s *Store) FinishGDPRRequest(ctx context.Context, id int64, result []byte, errText string) error {
	state := "done"
	if errText != "" {
		state = "failed"
	}
	_, err := s.pool.Exec(ctx, `UPDATE gdpr_requests SET state = $2, finished_at = now(), result = $3, error = $4 WHERE id = $1`,
		id, state, result, errText)
	if err != nil {
		return fmt.Errorf("postgres: finish request %d: %w", id, err)
	}
	return nil
}
