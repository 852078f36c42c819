package postgres

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// SiteQuota is a site's Data API quota limits; a zero field takes the
// aggregator's default for it (GA4's standard property limits).
type SiteQuota struct {
	TokensPerDay                  int64
	TokensPerHour                 int64
	TokensPerProjectPerHour       int64
	ConcurrentRequests            int64
	ServerErrorsPerProjectPerHour int64
}

// ErrBadQuota: a SiteQuota field is negative.
var ErrBadQuota = errors.New("bad site quota")

// SiteQuota returns the site's quota limits (all zero when none were set).
// An unknown site gives ErrNotFound.
func (s *Store) SiteQuota(ctx context.Context, id uint32) (SiteQuota, error) {
	var q SiteQuota
	var exists bool
	err := s.pool.QueryRow(ctx, `SELECT q.site_id IS NOT NULL, COALESCE(q.tokens_per_day, 0), COALESCE(q.tokens_per_hour, 0),
		COALESCE(q.tokens_per_project_per_hour, 0), COALESCE(q.concurrent_requests, 0), COALESCE(q.server_errors_per_project_per_hour, 0)
		FROM sites s LEFT JOIN site_quotas q ON q.site_id = s.id WHERE s.id = $1`, int64(id)).
		Scan(&exists, &q.TokensPerDay, &q.TokensPerHour, &q.TokensPerProjectPerHour, &q.ConcurrentRequests, &q.ServerErrorsPerProjectPerHour)
	if errors.Is(err, pgx.ErrNoRows) {
		return q, fmt.Errorf("postgres: site %d quota: %w", id, ErrNotFound)
	}
	if err != nil {
		return q, fmt.Errorf("postgres: site %d quota: %w", id, err)
	}
	return q, nil
}

// SetSiteQuota replaces the site's quota limits (zero fields: the default).
// An unknown site gives ErrNotFound, a negative limit ErrBadQuota.
func (s *Store) SetSiteQuota(ctx context.Context, id uint32, q SiteQuota) error {
	vals := []int64{q.TokensPerDay, q.TokensPerHour, q.TokensPerProjectPerHour, q.ConcurrentRequests, q.ServerErrorsPerProjectPerHour}
	args := []any{int64(id)}
	for _, v := range vals {
		if v < 0 {
			return fmt.Errorf("postgres: site %d quota: limit %d: must be ≥ 0 (0: the default): %w", id, v, ErrBadQuota)
		}
		if v == 0 {
			args = append(args, nil)
		} else {
			args = append(args, v)
		}
	}
	_, err := s.pool.Exec(ctx, `INSERT INTO site_quotas (site_id, tokens_per_day, tokens_per_hour, tokens_per_project_per_hour,
			concurrent_requests, server_errors_per_project_per_hour) VALUES ($1, $2, $3, $4, $5, $6)
		ON CONFLICT (site_id) DO UPDATE SET tokens_per_day = $2, tokens_per_hour = $3, tokens_per_project_per_hour = $4,
			concurrent_requests = $5, server_errors_per_project_per_hour = $6`, args...)
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) && pgErr.Code == "23503" {
		return fmt.Errorf("postgres: site %d quota: %w", id, ErrNotFound)
	}
	if err != nil {
		return fmt.Errorf("postgres: site %d quota: %w", id, err)
	}
	return nil
}
