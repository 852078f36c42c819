package privacy

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"sync"
	"time"

	"github.com/zeebo/blake3"

	"github.com/avila-analytics/avila/protocol"
)

// SaltLen is the size of a daily salt: BLAKE3's key size.
const SaltLen = 32

// domainVisitor separates visitor ids from any other hash under a salt.
// User ids are not hashed with daily salts: they are keyed once under the
// site's long-lived identity secret (protocol/identity), so a user is one
// user across days.
const domainVisitor = 'v'

// NoSaltError: the agent holds no salt for a site's day, so it cannot make a
// lasting visitor id. The caller falls back to ProcessKeys until the
// aggregator sends one; a salt is never invented.
type NoSaltError struct {
	Site uint32
	Day  string // YYYY-MM-DD, UTC
}

func (e *NoSaltError) Error() string {
	return fmt.Sprintf("no visitor salt for site %d on %s yet; the aggregator has not sent one", e.Site, e.Day)
}

// saltKey names a salt by site and UTC day; the day is the number
// YYYYMMDD, so a hit's lookup formats no string.
type saltKey struct {
	site uint32
	day  int
}

func civilDay(t time.Time) int {
	y, m, d := t.Date()
	return y*10000 + int(m)*100 + d
}

// Salts indexes the daily salts of a site config. Safe for concurrent use
// once built; it is never modified.
type Salts struct {
	keys map[saltKey]*Key
}

// NewSalts keys one hasher per (site, day). Salts that cannot be used (wrong
// size, malformed day) are left out and described in the returned error;
// the Salts returned is usable either way.
func NewSalts(list []protocol.Salt) (*Salts, error) {
	s := &Salts{keys: make(map[saltKey]*Key, len(list))}
	var errs []error
	for _, salt := range list {
		day, err := time.Parse(time.DateOnly, salt.Day)
		if err != nil {
			errs = append(errs, fmt.Errorf("privacy: salt for site %d: day %q is not YYYY-MM-DD", salt.Site, salt.Day))
			continue
		}
		if len(salt.Key) != SaltLen {
			errs = append(errs, fmt.Errorf("privacy: salt for site %d on %s: %d bytes, want %d", salt.Site, salt.Day, len(salt.Key), SaltLen))
			continue
		}
		h, err := blake3.NewKeyed(salt.Key)
		if err != nil {
			errs = append(errs, fmt.Errorf("privacy: salt for site %d on %s: %w", salt.Site, salt.Day, err))
			continue
		}
		s.keys[saltKey{salt.Site, civilDay(day)}] = newKey(salt.Site, salt.Day, h)
	}
	return s, errors.Join(errs...)
}

// For returns the key for site on t's UTC day, or a *NoSaltError.
func (s *Salts) For(site uint32, t time.Time) (*Key, error) {
	t = t.UTC()
	if s != nil {
		if k := s.keys[saltKey{site, civilDay(t)}]; k != nil {
			return k, nil
		}
	}
	return nil, &NoSaltError{Site: site, Day: t.Format(time.DateOnly)}
}

// Key hashes identifiers for one site and day. Safe for concurrent use: the
// keyed hasher is only ever cloned, never written; each hash takes a clone
// from a pool and resets it after use (a blake3.Hasher holds an 8 KiB
// buffer, too much to copy for every hit).
type Key struct {
	site   uint32
	day    string
	h      *blake3.Hasher
	hashes sync.Pool // of *blake3.Hasher: reset clones of h
}

func newKey(site uint32, day string, h *blake3.Hasher) *Key {
	k := &Key{site: site, day: day, h: h}
	k.hashes.New = func() any { return k.h.Clone() }
	return k
}

// Day is the UTC day (YYYY-MM-DD) the key belongs to.
func (k *Key) Day() string { return k.day }

// Visitor returns the visitor id for a browser: a keyed hash of the site,
// the anonymized IP address (AnonymizeIP is applied here, so the full address
// never enters the hash), the user agent and a client id. The collector
// passes no client id: a hit that may use its client id is identified by
// the client id's identity key instead (FlagPersistent), so a daily id is
// always cookieless.
func (k *Key) Visitor(ip netip.Addr, userAgent, clientID string) uint64 {
	var ipBytes []byte
	if a := AnonymizeIP(ip); a.IsValid() {
		ipBytes = a.AsSlice()
	}
	return k.sum(domainVisitor, ipBytes, []byte(userAgent), []byte(clientID))
}

// sum hashes the site, a domain byte and each field with its length in
// front, so no two different inputs share an encoding ("ab"+"c" ≠ "a"+"bc").
func (k *Key) sum(domain byte, fields ...[]byte) uint64 {
	h := k.hashes.Get().(*blake3.Hasher)
	defer func() {
		h.Reset() // back to the keyed initial state, as a fresh clone of k.h
		k.hashes.Put(h)
	}()
	var hdr [5]byte
	hdr[0] = domain
	binary.BigEndian.PutUint32(hdr[1:], k.site)
	_, _ = h.Write(hdr[:])
	var n [4]byte
	for _, f := range fields {
		binary.BigEndian.PutUint32(n[:], uint32(len(f)))
		_, _ = h.Write(n[:])
		_, _ = h.Write(f)
	}
	var out [32]byte
	return binary.BigEndian.Uint64(h.Sum(out[:0])[:8])
}
