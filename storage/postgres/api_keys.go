package postgres

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base32"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
)

// API keys look like "avk_" + 32 lower-case base32 characters (160 random
// bits). Only their SHA-256 is stored, with the first KeyPrefixLen
// characters so a person can tell keys apart and revoke one.
const (
	keyScheme    = "avk_"
	keyLen       = len(keyScheme) + 32
	KeyPrefixLen = len(keyScheme) + 8
)

var keyEncoding = base32.NewEncoding("abcdefghijklmnopqrstuvwxyz234567").WithPadding(base32.NoPadding)

// APIKey describes a stored key (never the key itself).
type APIKey struct {
	Prefix    string
	Name      string
	SiteIDs   []uint32
	Scope     Scope
	CreatedAt time.Time
	RevokedAt *time.Time
}

// CreateAPIKey makes a read key for siteIDs and returns it; it is shown
// once and cannot be recovered. Every site must exist (else ErrNotFound).
func (s *Store) CreateAPIKey(ctx context.Context, name string, siteIDs []uint32) (string, error) {
	return s.CreateScopedAPIKey(ctx, name, siteIDs, ScopeRead)
}

// CreateScopedAPIKey is CreateAPIKey with the key's scope.
func (s *Store) CreateScopedAPIKey(ctx context.Context, name string, siteIDs []uint32, scope Scope) (string, error) {
	if !scope.Valid() {
		return "", fmt.Errorf("postgres: create api key: scope %q: want read or admin", scope)
	}
	if len(siteIDs) == 0 {
		return "", errors.New("postgres: create api key: no sites given")
	}
	ids := make([]int32, 0, len(siteIDs))
	for _, id := range siteIDs {
		if !slices.Contains(ids, int32(id)) {
			ids = append(ids, int32(id))
		}
	}
	var found []int32
	rows, err := s.pool.Query(ctx, "SELECT id FROM sites WHERE id = ANY($1)", ids)
	if err == nil {
		found, err = pgx.CollectRows(rows, pgx.RowTo[int32])
	}
	if err != nil {
		return "", fmt.Errorf("postgres: create api key: check sites: %w", err)
	}
	for _, id := range ids {
		if !slices.Contains(found, id) {
			return "", fmt.Errorf("postgres: create api key: site %d: %w", uint32(id), ErrNotFound)
		}
	}
	var raw [20]byte
	_, _ = rand.Read(raw[:])
	key := keyScheme + keyEncoding.EncodeToString(raw[:])
	hash := sha256.Sum256([]byte(key))
	_, err = s.pool.Exec(ctx, "INSERT INTO api_keys (key_hash, prefix, name, site_ids, scope) VALUES ($1, $2, $3, $4, $5)",
		hash[:], key[:KeyPrefixLen], name, ids, string(scope))
	if err != nil {
		return "", fmt.Errorf("postgres: create api key: %w", err)
	}
	return key, nil
}

// LookupAPIKey returns the sites a key may read; ErrNotFound when the key is
// unknown or revoked.
func (s *Store) LookupAPIKey(ctx context.Context, key string) ([]uint32, error) {
	if len(key) != keyLen || !strings.HasPrefix(key, keyScheme) {
		return nil, fmt.Errorf("postgres: api key: %w", ErrNotFound)
	}
	hash := sha256.Sum256([]byte(key))
	var ids []int32
	err := s.pool.QueryRow(ctx, "SELECT site_ids FROM api_keys WHERE key_hash = $1 AND revoked_at IS NULL", hash[:]).Scan(&ids)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, fmt.Errorf("postgres: api key %s: %w", key[:KeyPrefixLen], ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("postgres: api key %s: %w", key[:KeyPrefixLen], err)
	}
	return toUint32s(ids), nil
}

// RevokeAPIKey revokes the live key with this prefix (or this whole key).
// ErrNotFound when no live key matches.
func (s *Store) RevokeAPIKey(ctx context.Context, prefix string) error {
	var where string
	var arg any
	switch {
	case len(prefix) == keyLen:
		h := sha256.Sum256([]byte(prefix))
		where, arg = "key_hash = $1", h[:]
	case len(prefix) == KeyPrefixLen:
		where, arg = "prefix = $1", prefix
	default:
		return fmt.Errorf("postgres: revoke api key %q: want the %d-character prefix or the whole key: %w", prefix, KeyPrefixLen, ErrNotFound)
	}
	tag, err := s.pool.Exec(ctx, "UPDATE api_keys SET revoked_at = now() WHERE revoked_at IS NULL AND "+where, arg)
	if err != nil {
		return fmt.Errorf("postgres: revoke api key: %w", err)
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("postgres: revoke api key %s: %w", prefix[:KeyPrefixLen], ErrNotFound)
	}
	return nil
}

// APIKeys lists all keys, revoked ones included, oldest first.
func (s *Store) APIKeys(ctx context.Context) ([]APIKey, error) {
	rows, err := s.pool.Query(ctx, "SELECT prefix, name, site_ids, scope, created_at, revoked_at FROM api_keys ORDER BY id")
	if err != nil {
		return nil, fmt.Errorf("postgres: list api keys: %w", err)
	}
	keys, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (APIKey, error) {
		var k APIKey
		var ids []int32
		err := r.Scan(&k.Prefix, &k.Name, &ids, &k.Scope, &k.CreatedAt, &k.RevokedAt)
		k.SiteIDs = toUint32s(ids)
		return k, err
	})
	if err != nil {
		return nil, fmt.Errorf("postgres: list api keys: %w", err)
	}
	return keys, nil
}

func toUint32s(ids []int32) []uint32 {
	out := make([]uint32, len(ids))
	for i, id := range ids {
		out[i] = uint32(id)
	}
	return out
}
