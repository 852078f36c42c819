// Package identity turns the identifiers a site may use (GA4's client id
// and user_id) into the pseudonymous keys Avila stores. The agent applies it
// before a hit is queued, so raw client ids and user ids never leave the
// agent; the aggregator applies the same functions to answer a data
// subject's request (the subject brings the client id from their _ga
// cookie, or the site its user_id).
//
// A key is a keyed BLAKE3 hash under the site's long-lived identity secret,
// so it is stable across addresses, days and transports (gtag.js and the
// Measurement Protocol give the same key for the same client id), and
// cannot be reversed or recomputed without the secret. Rotating a site's
// secret makes every returning device a new user from then on.
package identity

import (
	"encoding/binary"
	"errors"
	"fmt"
	"strings"
	"sync"

	"github.com/zeebo/blake3"
)

// SecretLen is the size of a site's identity secret: BLAKE3's key size.
const SecretLen = 32

// Domain separators: a client id and a user id with the same text never
// share a key.
const (
	domainClient = 'c'
	domainUser   = 'u'
)

// Hasher computes keys for one site. Safe for concurrent use: each key
// takes a keyed BLAKE3 hasher from a pool and resets it after use (a
// hasher holds about 10 KiB; making one per hit cost more than the hash).
type Hasher struct {
	site    uint32
	key     [SecretLen]byte
	hashers sync.Pool // of *blake3.Hasher keyed with key
}

// New returns the hasher of a site's secret, or an error naming the site
// when the secret is not SecretLen bytes.
func New(site uint32, secret []byte) (*Hasher, error) {
	if len(secret) != SecretLen {
		return nil, fmt.Errorf("identity: secret of site %d: %d bytes, want %d", site, len(secret), SecretLen)
	}
	h := &Hasher{site: site}
	copy(h.key[:], secret)
	h.hashers.New = func() any {
		k, _ := blake3.NewKeyed(h.key[:]) // the key length is checked above
		return k
	}
	return h, nil
}

// Client returns the user key of a GA4 client id. Empty ids have no key: 0.
func (h *Hasher) Client(clientID string) uint64 {
	if clientID == "" {
		return 0
	}
	return h.sum(domainClient, clientID)
}

// User returns the key of a site's user_id. Empty ids have no key: 0.
func (h *Hasher) User(userID string) uint64 {
	if userID == "" {
		return 0
	}
	return h.sum(domainUser, userID)
}

// sum hashes the site, the domain and the value with its length in front;
// a zero result (probability 2^-64) is mapped to 1, since 0 means "none".
func (h *Hasher) sum(domain byte, v string) uint64 {
	k := h.hashers.Get().(*blake3.Hasher)
	defer func() {
		k.Reset() // back to the keyed initial state
		h.hashers.Put(k)
	}()
	var hdr [9]byte
	hdr[0] = domain
	binary.LittleEndian.PutUint32(hdr[1:5], h.site)
	binary.LittleEndian.PutUint32(hdr[5:9], uint32(len(v)))
	_, _ = k.Write(hdr[:])
	_, _ = k.WriteString(v)
	var out [8]byte
	d := k.Digest()
	_, _ = d.Read(out[:])
	if s := binary.LittleEndian.Uint64(out[:]); s != 0 {
		return s
	}
	return 1
}

// ErrNotGACookie: the value is not a _ga cookie or a client id.
var ErrNotGACookie = errors.New(`identity: not a _ga cookie ("GA1.1.<random>.<timestamp>") or a client id ("<random>.<timestamp>")`)

// ClientIDFromCookie returns the client id held in a _ga cookie value
// ("GA1.1.1234567890.1700000000" → "1234567890.1700000000"), as gtag.js
// sends it in cid. A value that already is a client id is returned as is.
func ClientIDFromCookie(v string) (string, error) {
	v = strings.TrimSpace(v)
	parts := strings.Split(v, ".")
	switch {
	case len(parts) == 4 && strings.HasPrefix(parts[0], "GA"):
		parts = parts[2:]
	case len(parts) == 2:
	default:
		return "", ErrNotGACookie
	}
	for _, p := range parts {
		if p == "" || strings.TrimLeft(p, "0123456789") != "" {
			return "", ErrNotGACookie
		}
	}
	return parts[0] + "." + parts[1], nil
}
