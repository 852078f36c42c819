package postgres

import (
	"context"
	"crypto/rand"
	"fmt"
	"time"

	"github.com/avila-analytics/avila/protocol"
	"github.com/jackc/pgx/v5"
)

// SaltLen is the size of a daily salt in bytes.
const SaltLen = 32

// saltKeepDays: a salt is deleted once its day is more than this many days
// before today, so visitor ids cannot be recomputed or linked later.
const saltKeepDays = 2

// utcDay truncates t to the start of its UTC day.
func utcDay(t time.Time) time.Time {
	y, m, d := t.UTC().Date()
	return time.Date(y, m, d, 0, 0, 0, 0, time.UTC)
}

// EnsureSalts creates today's and tomorrow's salt for every site that lacks
// them and deletes expired ones. Idempotent; nodes running it at once agree
// on one salt per site and day (the first insert wins).
func (s *Store) EnsureSalts(ctx context.Context, now time.Time) error {
	today := utcDay(now)
	tomorrow := today.AddDate(0, 0, 1)
	rows, err := s.pool.Query(ctx, "SELECT id FROM sites ORDER BY id")
	if err != nil {
		return fmt.Errorf("postgres: ensure salts: list sites: %w", err)
	}
	ids, err := pgx.CollectRows(rows, pgx.RowTo[int32])
	if err != nil {
		return fmt.Errorf("postgres: ensure salts: list sites: %w", err)
	}
	sites := make([]int32, 0, 2*len(ids))
	days := make([]time.Time, 0, 2*len(ids))
	salts := make([][]byte, 0, 2*len(ids))
	for _, id := range ids {
		for _, d := range []time.Time{today, tomorrow} {
			salt := make([]byte, SaltLen)
			_, _ = rand.Read(salt)
			sites, days, salts = append(sites, id), append(days, d), append(salts, salt)
		}
	}
	batch := &pgx.Batch{}
	batch.Queue(`INSERT INTO salts (site_id, day, salt)
		SELECT * FROM unnest($1::integer[], $2::date[], $3::bytea[])
		ON CONFLICT DO NOTHING`, sites, days, salts)
	batch.Queue("DELETE FROM salts WHERE day < $1::date", today.AddDate(0, 0, -saltKeepDays))
	if err := s.pool.SendBatch(ctx, batch).Close(); err != nil {
		return fmt.Errorf("postgres: ensure salts: %w", err)
	}
	return nil
}

// Salts returns every site's salts for yesterday, today and tomorrow (UTC),
// ordered by site and day. Agents keep yesterday's for hits queued before
// midnight and tomorrow's to switch over without waiting for a refresh.
func (s *Store) Salts(ctx context.Context, now time.Time) ([]protocol.Salt, error) {
	today := utcDay(now)
	rows, err := s.pool.Query(ctx, `SELECT site_id, day, salt FROM salts
		WHERE day BETWEEN $1::date AND $2::date ORDER BY site_id, day`,
		today.AddDate(0, 0, -1), today.AddDate(0, 0, 1))
	if err != nil {
		return nil, fmt.Errorf("postgres: salts: %w", err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (protocol.Salt, error) {
		var site int32
		var day time.Time
		var salt protocol.Salt
		err := r.Scan(&site, &day, &salt.Key)
		salt.Site, salt.Day = uint32(site), day.Format(time.DateOnly)
		return salt, err
	})
	if err != nil {
		return nil, fmt.Errorf("postgres: salts: %w", err)
	}
	return out, nil
}
