package postgres

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5"
)

// Scope is what an API key may do.
type Scope string

// Scopes, from least to most. Keys created before scopes existed are read
// keys.
const (
	// ScopeRead reads the reports of the key's properties.
	ScopeRead Scope = "read"
	// ScopeAdmin also makes data subject requests (/v1/gdpr/) for them.
	ScopeAdmin Scope = "admin"
)

// Valid reports whether s is a known scope.
func (s Scope) Valid() bool { return s == ScopeRead || s == ScopeAdmin }

// Allows reports whether a key of scope s may do what needs scope need.
func (s Scope) Allows(need Scope) bool { return need == ScopeRead || s == ScopeAdmin }

// KeyGrant is what a live API key may do.
type KeyGrant struct {
	Prefix  string
	SiteIDs []uint32
	Scope   Scope
}

// LookupAPIKeyGrant returns what a key may do; ErrNotFound when the key is
// unknown or revoked.
func (s *Store) LookupAPIKeyGrant(ctx context.Context, key string) (KeyGrant, error) {
	if len(key) != keyLen || !strings.HasPrefix(key, keyScheme) {
		return KeyGrant{}, fmt.Errorf("postgres: api key: %w", ErrNotFound)
	}
	hash := sha256.Sum256([]byte(key))
	g := KeyGrant{Prefix: key[:KeyPrefixLen]}
	var ids []int32
	err := s.pool.QueryRow(ctx, "SELECT site_ids, scope FROM api_keys WHERE key_hash = $1 AND revoked_at IS NULL", hash[:]).Scan(&ids, &g.Scope)
	if errors.Is(err, pgx.ErrNoRows) {
		return KeyGrant{}, fmt.Errorf("postgres: api key %s: %w", g.Prefix, ErrNotFound)
	}
	if err != nil {
		return KeyGrant{}, fmt.Errorf("postgres: api key %s: %w", g.Prefix, err)
	}
	g.SiteIDs = toUint32s(ids)
	return g, nil
}
