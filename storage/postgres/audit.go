package postgres

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/jackc/pgx/v5"
)

// auditLockKey serializes appends to audit_log ("avla_aud"): each append
// reads the last row's hash and writes the next row in one transaction
// holding it, so the chain never forks.
const auditLockKey = int64(0x61766c615f617564)

// AuditEntry is one operator action to record.
type AuditEntry struct {
	Actor  string         // who: "cli:<os user>", "api:<key prefix>", "aggregator"
	Action string         // what: "site.create", "key.revoke", "gdpr.erase", …
	Site   uint32         // the site acted on; 0 for none
	Detail map[string]any // parameters and outcome; JSON-encodable
}

// AuditRow is a stored audit_log row.
type AuditRow struct {
	ID       int64
	At       time.Time
	Actor    string
	Action   string
	Site     uint32
	Detail   string // JSON, as hashed
	PrevHash []byte
	Hash     []byte
}

// auditHash is the row's hash: SHA-256 over its canonical encoding, every
// field length-prefixed so no two rows encode alike.
func auditHash(r *AuditRow) []byte {
	var b bytes.Buffer
	put := func(p []byte) {
		b.Write(binary.BigEndian.AppendUint64(nil, uint64(len(p))))
		b.Write(p)
	}
	num := func(v uint64) { put(binary.BigEndian.AppendUint64(nil, v)) }
	num(uint64(r.ID))
	num(uint64(r.At.UnixMicro()))
	put([]byte(r.Actor))
	put([]byte(r.Action))
	num(uint64(r.Site))
	put([]byte(r.Detail))
	put(r.PrevHash)
	h := sha256.Sum256(b.Bytes())
	return h[:]
}

// AppendAudit records e at the end of the hash chain, in its own
// transaction.
func (s *Store) AppendAudit(ctx context.Context, e AuditEntry) (AuditRow, error) {
	tx, err := s.pool.Begin(ctx)
	if err != nil {
		return AuditRow{}, fmt.Errorf("postgres: audit %s: begin: %w", e.Action, err)
	}
	defer tx.Rollback(context.WithoutCancel(ctx)) // no-op after Commit
	row, err := appendAudit(ctx, tx, e)
	if err != nil {
		return AuditRow{}, fmt.Errorf("postgres: audit %s: %w", e.Action, err)
	}
	if err := tx.Commit(ctx); err != nil {
		return AuditRow{}, fmt.Errorf("postgres: audit %s: commit: %w", e.Action, err)
	}
	s.logAudit(ctx, row)
	return row, nil
}

// appendAudit appends e in tx, which then holds the audit lock until it
// ends: the row commits or vanishes with the work it records.
func appendAudit(ctx context.Context, tx pgx.Tx, e AuditEntry) (AuditRow, error) {
	if e.Actor == "" || e.Action == "" {
		return AuditRow{}, errors.New("BUG: audit entry without actor or action")
	}
	detail := e.Detail
	if detail == nil {
		detail = map[string]any{}
	}
	js, err := json.Marshal(detail) // map keys sorted: one encoding per value
	if err != nil {
		return AuditRow{}, fmt.Errorf("encode detail: %w", err)
	}
	if _, err := tx.Exec(ctx, "SELECT pg_advisory_xact_lock($1)", auditLockKey); err != nil {
		return AuditRow{}, fmt.Errorf("lock: %w", err)
	}
	r := AuditRow{Actor: e.Actor, Action: e.Action, Site: e.Site, Detail: string(js),
		At: time.Now().UTC().Truncate(time.Microsecond), PrevHash: []byte{}}
	err = tx.QueryRow(ctx, "SELECT id, hash FROM audit_log ORDER BY id DESC LIMIT 1").Scan(&r.ID, &r.PrevHash)
	if err != nil && !errors.Is(err, pgx.ErrNoRows) {
		return AuditRow{}, fmt.Errorf("read chain head: %w", err)
	}
	r.ID++
	r.Hash = auditHash(&r)
	if _, err := tx.Exec(ctx, `INSERT INTO audit_log (id, at, actor, action, site_id, detail, prev_hash, hash)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8)`, r.ID, r.At, r.Actor, r.Action, int32(r.Site), r.Detail, r.PrevHash, r.Hash); err != nil {
		return AuditRow{}, fmt.Errorf("insert: %w", err)
	}
	return r, nil
}

// logAudit repeats a committed audit row in the log.
func (s *Store) logAudit(ctx context.Context, r AuditRow) {
	s.log.LogAttrs(ctx, slog.LevelInfo, "audit", slog.Int64("id", r.ID), slog.String("actor", r.Actor),
		slog.String("action", r.Action), slog.Uint64("site", uint64(r.Site)), slog.String("detail", r.Detail))
}

// AuditRows lists audit rows with id > after, oldest first, at most limit
// (0: all).
func (s *Store) AuditRows(ctx context.Context, after int64, limit int) ([]AuditRow, error) {
	q := "SELECT id, at, actor, action, site_id, detail, prev_hash, hash FROM audit_log WHERE id > $1 ORDER BY id"
	args := []any{after}
	if limit > 0 {
		q += " LIMIT $2"
		args = append(args, limit)
	}
	rows, err := s.pool.Query(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("postgres: audit rows: %w", err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (AuditRow, error) {
		var a AuditRow
		var site int32
		err := r.Scan(&a.ID, &a.At, &a.Actor, &a.Action, &site, &a.Detail, &a.PrevHash, &a.Hash)
		a.Site = uint32(site)
		a.At = a.At.UTC()
		return a, err
	})
	if err != nil {
		return nil, fmt.Errorf("postgres: audit rows: %w", err)
	}
	return out, nil
}

// AuditBreak says where the chain is broken.
type AuditBreak struct {
	ID     int64  // the first row changed, or the first id missing
	Reason string // "changed", "removed", …
}

func (b *AuditBreak) Error() string {
	return fmt.Sprintf("audit row %d %s", b.ID, b.Reason)
}

// AuditVerify is what VerifyAudit found.
type AuditVerify struct {
	Rows int64  // rows checked
	Head []byte // hash of the last row (nil: empty log)
	// Break is the first inconsistency; nil when the chain holds.
	Break *AuditBreak
}

// auditVerifyPage is how many rows VerifyAudit reads at a time.
const auditVerifyPage = 10000

// VerifyAudit walks the whole chain: each row's hash must match its
// content, its prev_hash the row before's hash, and ids run 1, 2, 3 …
// It names the first row changed (content no longer matches its hash) or
// removed (an id missing, or the rows after a removed one). A removed last
// row leaves a valid shorter chain: compare Head with a head saved before
// (avila audit verify --head).
func (s *Store) VerifyAudit(ctx context.Context) (AuditVerify, error) {
	var v AuditVerify
	prev := []byte{}
	var last int64
	for {
		rows, err := s.AuditRows(ctx, last, auditVerifyPage)
		if err != nil {
			return v, err
		}
		for i := range rows {
			r := &rows[i]
			switch {
			case r.ID != last+1:
				v.Break = &AuditBreak{ID: last + 1, Reason: "removed (ids jump from " + fmt.Sprint(last) + " to " + fmt.Sprint(r.ID) + ")"}
			case !bytes.Equal(auditHash(r), r.Hash):
				v.Break = &AuditBreak{ID: r.ID, Reason: "changed (its content does not match its hash)"}
			case !bytes.Equal(r.PrevHash, prev):
				// The row is consistent in itself but does not follow the
				// one before: the row before was rewritten with a new hash,
				// or rows were removed and the rest renumbered.
				v.Break = &AuditBreak{ID: r.ID - 1, Reason: "changed or removed (the next row does not chain to it)"}
			}
			if v.Break != nil {
				return v, nil
			}
			v.Rows++
			prev, last = r.Hash, r.ID
		}
		if len(rows) < auditVerifyPage {
			break
		}
	}
	if v.Rows > 0 {
		v.Head = prev
	}
	return v, nil
}

// auditMigration records a migration from version from to to, once the
// schema has the audit table (a migration to an older version that lacks
// it records nothing).
func (s *Store) auditMigration(ctx context.Context, actor string, from, to int32) error {
	var exists bool
	if err := s.pool.QueryRow(ctx, "SELECT to_regclass('audit_log') IS NOT NULL").Scan(&exists); err != nil {
		return fmt.Errorf("postgres: migrate: audit: %w", err)
	}
	if !exists {
		return nil
	}
	if _, err := s.AppendAudit(ctx, AuditEntry{Actor: actor, Action: "migrate", Detail: map[string]any{"from": from, "to": to}}); err != nil {
		return fmt.Errorf("postgres: migrate: %w", err)
	}
	return nil
}
