package postgres

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
)

// QuarantinedRow is a staged row a derivation could not take, moved to
// staged_quarantine (DeriveTx.Quarantine): its events are in no report
// until Requeue puts it back.
type QuarantinedRow struct {
	Site          uint32    `json:"property"`
	ID            int64     `json:"id"`
	Events        int       `json:"events"`
	Bytes         int       `json:"bytes"`
	StagedAt      time.Time `json:"staged_at"`
	QuarantinedAt time.Time `json:"quarantined_at"`
	Reason        string    `json:"reason"`
}

// Quarantine moves the site's staged row id, with reason, to
// staged_quarantine in the derivation's transaction, which holds the
// site's lock; Commit makes it so. It returns the row's events, or
// found false when the site has no such staged row (a derivation took it
// meanwhile). The transaction should take no staged rows besides.
func (d *DeriveTx) Quarantine(ctx context.Context, id int64, reason string) (events int, found bool, err error) {
	err = d.tx.QueryRow(ctx, `WITH moved AS (
			DELETE FROM staged_events WHERE site_id = $1 AND id = $2
			RETURNING site_id, id, events, payload, staged_at)
		INSERT INTO staged_quarantine (site_id, id, events, payload, staged_at, reason)
		SELECT site_id, id, events, payload, staged_at, $3 FROM moved
		RETURNING events`, int32(d.site), id, reason).Scan(&events)
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		return 0, false, nil
	case err != nil:
		return 0, false, fmt.Errorf("postgres: derive site %d: quarantine staged row %d: %w", d.site, id, err)
	}
	return events, true, nil
}

// QuarantinedRows lists the quarantined staged rows of site (0: every
// site's), by site and in their staged order, without their payloads.
func (s *Store) QuarantinedRows(ctx context.Context, site uint32) ([]QuarantinedRow, error) {
	rows, err := s.pool.Query(ctx, `SELECT site_id, id, events, octet_length(payload), staged_at, quarantined_at, reason
		FROM staged_quarantine WHERE $1 = 0 OR site_id = $1 ORDER BY site_id, id`, int32(site))
	if err != nil {
		return nil, fmt.Errorf("postgres: list quarantined staged rows: %w", err)
	}
	out, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (QuarantinedRow, error) {
		var r QuarantinedRow
		var id int32
		err := row.Scan(&id, &r.ID, &r.Events, &r.Bytes, &r.StagedAt, &r.QuarantinedAt, &r.Reason)
		r.Site = uint32(id)
		return r, err
	})
	if err != nil {
		return nil, fmt.Errorf("postgres: list quarantined staged rows: %w", err)
	}
	return out, nil
}

// Requeue moves quarantined staged rows back to staged_events as they
// were staged (id, payload, time), for the next derivation of their
// site to take first: those of site (0: every site's), and of ids when
// given. It returns the rows and events moved.
func (s *Store) Requeue(ctx context.Context, site uint32, ids []int64) (rows, events int, err error) {
	if ids == nil {
		ids = []int64{}
	}
	var n, ev int64
	err = s.pool.QueryRow(ctx, `WITH moved AS (
			DELETE FROM staged_quarantine
			WHERE ($1 = 0 OR site_id = $1) AND (cardinality($2::bigint[]) = 0 OR id = ANY($2))
			RETURNING site_id, id, events, payload, staged_at),
		back AS (
			INSERT INTO staged_events (site_id, id, events, payload, staged_at) OVERRIDING SYSTEM VALUE
			SELECT site_id, id, events, payload, staged_at FROM moved
			RETURNING events)
		SELECT count(*), coalesce(sum(events), 0) FROM back`, int32(site), ids).Scan(&n, &ev)
	if err != nil {
		return 0, 0, fmt.Errorf("postgres: requeue quarantined staged rows: %w", err)
	}
	return int(n), int(ev), nil
}
