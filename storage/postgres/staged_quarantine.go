package postgres

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"math"
	"slices"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/avila-analytics/avila/protocol"
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
	// Refused: PostgreSQL refused the row's events (a data error); else
	// its payload does not decode.
	Refused bool `json:"refused"`
	// NewerVersion is the row's protocol version when it was quarantined
	// as newer than the nodes that could have derived it (0: another
	// cause); a node that reads it requeues it (RequeueReadable).
	NewerVersion uint8 `json:"newer_version,omitempty"`
}

// QuarantineCause is why a staged row is quarantined.
type QuarantineCause struct {
	Reason string
	// Refused marks a row whose events PostgreSQL refused (RefusedSince
	// counts them), not one that does not decode.
	Refused bool
	// NewerVersion marks a row of this protocol version, newer than the
	// quarantining node's, which no node of the cluster read (0: another
	// cause).
	NewerVersion uint8
}

// Quarantine moves the site's staged row id to staged_quarantine, with
// its cause, in the derivation's transaction, which holds the site's
// lock; Commit makes it so. It returns the row's events, or found false
// when the site has no such staged row (a derivation took it meanwhile).
// The transaction should take no staged rows besides.
func (d *DeriveTx) Quarantine(ctx context.Context, id int64, cause QuarantineCause) (events int, found bool, err error) {
	err = d.tx.QueryRow(ctx, `WITH moved AS (
			DELETE FROM staged_events WHERE site_id = $1 AND id = $2
			RETURNING site_id, id, events, payload, staged_at)
		INSERT INTO staged_quarantine (site_id, id, events, payload, staged_at, reason, refused, newer_version)
		SELECT site_id, id, events, payload, staged_at, $3, $4, $5 FROM moved
		RETURNING events`, int32(d.site), id, cause.Reason, cause.Refused, int16(cause.NewerVersion)).Scan(&events)
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		return 0, false, nil
	case err != nil:
		return 0, false, fmt.Errorf("postgres: derive site %d: quarantine staged row %d: %w", d.site, id, err)
	}
	return events, true, nil
}

// RefusedSince counts the site's quarantined rows that PostgreSQL refused
// (QuarantineCause.Refused) and that were quarantined within the last
// within, by the database's clock: under the site's lock, what every node
// quarantined, whatever restarted since. Requeued rows are not counted.
func (d *DeriveTx) RefusedSince(ctx context.Context, within time.Duration) (int, error) {
	var n int
	err := d.tx.QueryRow(ctx, `SELECT count(*) FROM staged_quarantine
		WHERE site_id = $1 AND refused AND quarantined_at > now() - make_interval(secs => $2)`, int32(d.site), within.Seconds()).Scan(&n)
	if err != nil {
		return 0, fmt.Errorf("postgres: derive site %d: count refused quarantined rows: %w", d.site, err)
	}
	return n, nil
}

// QuarantinedRows lists the quarantined staged rows of site (0: every
// site's), by site and in their staged order, without their payloads.
func (s *Store) QuarantinedRows(ctx context.Context, site uint32) ([]QuarantinedRow, error) {
	rows, err := s.pool.Query(ctx, `SELECT site_id, id, events, octet_length(payload), staged_at, quarantined_at, reason, refused, newer_version
		FROM staged_quarantine WHERE $1 = 0 OR site_id = $1 ORDER BY site_id, id`, int32(site))
	if err != nil {
		return nil, fmt.Errorf("postgres: list quarantined staged rows: %w", err)
	}
	out, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (QuarantinedRow, error) {
		var r QuarantinedRow
		var id int32
		var newer int16
		err := row.Scan(&id, &r.ID, &r.Events, &r.Bytes, &r.StagedAt, &r.QuarantinedAt, &r.Reason, &r.Refused, &newer)
		r.Site, r.NewerVersion = uint32(id), uint8(newer)
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
	return s.requeue(ctx, site, ids, 0)
}

// RequeueReadable requeues, as Requeue does, the rows of every site that
// were quarantined as of a newer protocol version than their nodes', of
// version up to v (QuarantinedRow.NewerVersion): a node of version v reads
// them.
func (s *Store) RequeueReadable(ctx context.Context, v uint8) (rows, events int, err error) {
	if v == 0 {
		return 0, 0, nil
	}
	return s.requeue(ctx, 0, nil, v)
}

// requeue is Requeue of the rows of site (0: every site's), of ids when
// given, and of those quarantined as of a newer version up to readable
// when it is not 0.
func (s *Store) requeue(ctx context.Context, site uint32, ids []int64, readable uint8) (rows, events int, err error) {
	if ids == nil {
		ids = []int64{}
	}
	var n, ev int64
	err = s.pool.QueryRow(ctx, `WITH moved AS (
			DELETE FROM staged_quarantine
			WHERE ($1 = 0 OR site_id = $1) AND (cardinality($2::bigint[]) = 0 OR id = ANY($2))
				AND ($3 = 0 OR newer_version BETWEEN 1 AND $3)
			RETURNING site_id, id, events, payload, staged_at),
		back AS (
			INSERT INTO staged_events (site_id, id, events, payload, staged_at) OVERRIDING SYSTEM VALUE
			SELECT site_id, id, events, payload, staged_at FROM moved
			RETURNING events)
		SELECT count(*), coalesce(sum(events), 0) FROM back`, int32(site), ids, int16(readable)).Scan(&n, &ev)
	if err != nil {
		return 0, 0, fmt.Errorf("postgres: requeue quarantined staged rows: %w", err)
	}
	return int(n), int(ev), nil
}

// quarantinedRow is a quarantined staged row's id and payload.
type quarantinedRow struct {
	id      int64
	payload []byte
}

// readQuarantined reads the site's quarantined rows in id order, locked
// for update with lock.
func readQuarantined(ctx context.Context, tx pgx.Tx, site int32, lock bool) ([]quarantinedRow, error) {
	sql := "SELECT id, payload FROM staged_quarantine WHERE site_id = $1 ORDER BY id"
	if lock {
		sql += " FOR UPDATE"
	}
	rows, err := tx.Query(ctx, sql, site)
	if err != nil {
		return nil, fmt.Errorf("read quarantined staged rows: %w", err)
	}
	list, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (quarantinedRow, error) {
		var x quarantinedRow
		return x, r.Scan(&x.id, &x.payload)
	})
	if err != nil {
		return nil, fmt.Errorf("read quarantined staged rows: %w", err)
	}
	return list, nil
}

// eraseQuarantined takes the events of the subject keys (SubjectKeys.Holds,
// as the derivation's tombstones match them) out of the site's
// quarantined staged rows, in the erasure's transaction: a row left
// without events is deleted, another rewritten without them. A row that
// does not decode cannot be searched and stays; unsearched counts those.
func eraseQuarantined(ctx context.Context, tx pgx.Tx, site int32, keys []int64) (events, unsearched int64, err error) {
	list, err := readQuarantined(ctx, tx, site, true)
	if err != nil || len(list) == 0 {
		return 0, 0, err
	}
	subject := subjectKeySet(keys)
	var dec protocol.EventDecoder
	defer dec.Release()
	for _, r := range list {
		all, err := dec.Append(nil, r.payload)
		if err != nil {
			unsearched++
			continue
		}
		kept := slices.DeleteFunc(slices.Clone(all), func(e protocol.Event) bool { return subject.Holds(&e) })
		if len(kept) == len(all) {
			continue
		}
		events += int64(len(all) - len(kept))
		if len(kept) == 0 {
			_, err = tx.Exec(ctx, "DELETE FROM staged_quarantine WHERE site_id = $1 AND id = $2", site, r.id)
		} else {
			_, err = tx.Exec(ctx, "UPDATE staged_quarantine SET payload = $3, events = $4 WHERE site_id = $1 AND id = $2",
				site, r.id, protocol.EncodeEvents(kept), len(kept))
		}
		if err != nil {
			return 0, 0, fmt.Errorf("rewrite quarantined staged row %d: %w", r.id, err)
		}
	}
	return events, unsearched, nil
}

// subjectQuarantined returns the events of the subject keys
// (SubjectKeys.Holds) in the site's quarantined staged rows that decode,
// as an export shows them: in no report, with the texts as staged (no
// session of their own yet).
func subjectQuarantined(ctx context.Context, tx pgx.Tx, site int32, keys []int64) ([]SubjectEvent, error) {
	list, err := readQuarantined(ctx, tx, site, false)
	if err != nil {
		return nil, err
	}
	subject := subjectKeySet(keys)
	out := []SubjectEvent{}
	var dec protocol.EventDecoder
	defer dec.Release()
	for _, r := range list {
		events, err := dec.Append(nil, r.payload)
		if err != nil {
			continue // cannot be searched; the erasure counts these
		}
		for i := range events {
			if subject.Holds(&events[i]) {
				out = append(out, stagedSubjectEvent(&events[i]))
			}
		}
	}
	return out, nil
}

// stagedSubjectEvent is e, an event as staged, as an export shows it.
func stagedSubjectEvent(e *protocol.Event) SubjectEvent {
	dims := map[string]string{}
	texts := eventTexts(e)
	for kind := DimPagePath; kind <= eventKinds; kind++ { // the name is the event's own field
		if v := texts[kind-1]; v != "" {
			dims[DimNames[kind]] = v
		}
	}
	return SubjectEvent{Time: time.UnixMicro(e.TimeMicros).UTC(), Key: e.Visitor, SessionID: e.SessionID, Name: e.Name,
		Dims: dims, EngagementMs: int32(min(max(e.EngageMs, 0), math.MaxInt32)), Flags: int16(e.Flags),
		Params: maps.Clone(e.Params), NumParams: maps.Clone(e.NumParams), UserProps: maps.Clone(e.UserProps)}
}

// QuarantineTotals returns the staged rows in quarantine, every site's,
// and their events.
func (s *Store) QuarantineTotals(ctx context.Context) (rows, events int64, err error) {
	if err := s.pool.QueryRow(ctx, "SELECT count(*), coalesce(sum(events), 0) FROM staged_quarantine").Scan(&rows, &events); err != nil {
		return 0, 0, fmt.Errorf("postgres: count quarantined staged rows: %w", err)
	}
	return rows, events, nil
}
