package governance

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/avila-analytics/avila/protocol/identity"
	"github.com/avila-analytics/avila/storage/postgres"
)

// Identity is how a subject is named.
type Identity string

// Identities a subject may be found by.
const (
	// ClientID is GA4's client id, as the _ga cookie holds it
	// ("GA1.1.<random>.<timestamp>", or "<random>.<timestamp>").
	ClientID Identity = "client_id"
	// UserID is the site's own user_id (gtag's user_id, MP user_id).
	UserID Identity = "user_id"
)

// CookielessNote is what every answer about a subject says of visitors
// that could not be identified.
const CookielessNote = "Only events recorded with analytics consent carry a key derived from the client id or user_id. " +
	"Visitors recorded without cookies (cookieless: no consent, DNT/GPC) are counted under a daily salted hash " +
	"that cannot be tied to anyone, so their events cannot be found, exported or erased by identity."

// ErrBadSubject: the identity or its value is not usable.
var ErrBadSubject = errors.New("bad subject")

// Subject is one data subject on one site.
type Subject struct {
	Site     uint32
	Identity Identity
	Key      uint64 // protocol/identity key of the value
}

// Resolve computes the subject's key from the value the subject (or the
// site) gave: a client id or _ga cookie value, or a user_id.
func Resolve(ctx context.Context, store *postgres.Store, site uint32, id Identity, value string) (Subject, error) {
	value = strings.TrimSpace(value)
	if value == "" {
		return Subject{}, fmt.Errorf("empty %s: %w", id, ErrBadSubject)
	}
	secret, err := store.IdentitySecret(ctx, site)
	if err != nil {
		return Subject{}, fmt.Errorf("governance: %w", err)
	}
	h, err := identity.New(site, secret)
	if err != nil {
		return Subject{}, fmt.Errorf("governance: %w", err)
	}
	sub := Subject{Site: site, Identity: id}
	switch id {
	case ClientID:
		cid, err := identity.ClientIDFromCookie(value)
		if err != nil {
			return Subject{}, fmt.Errorf("client id %q: %w: %w", value, err, ErrBadSubject)
		}
		sub.Key = h.Client(cid)
	case UserID:
		sub.Key = h.User(value)
	default:
		return Subject{}, fmt.Errorf("identity %q: want client_id or user_id: %w", id, ErrBadSubject)
	}
	return sub, nil
}
