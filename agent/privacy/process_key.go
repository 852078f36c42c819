package privacy

import (
	"crypto/rand"
	"sync"
	"time"

	"github.com/zeebo/blake3"
)

// ProcessKeys stand in for a missing daily salt. A hit for a site whose
// salt for today has not reached the agent yet is still recorded, scrubbed
// as usual, with a visitor id keyed by a random secret that this process
// made at start and holds only in memory: nothing raw (address, user agent,
// client id) waits on disk for the salt, and once the process exits the
// secret is gone, so these ids cannot be linked to anything, not even to
// the same visitor's ids from another run or under the real salt. The
// caller also makes such hits cookieless (no cid, no uid), since the ids
// would not last beyond the process anyway.
//
// Safe for concurrent use.
type ProcessKeys struct {
	secret [SaltLen]byte

	mu  sync.Mutex
	day string         // UTC day of h
	h   *blake3.Hasher // keyed with the secret derived for day
}

// NewProcessKeys makes a fresh in-memory secret.
func NewProcessKeys() *ProcessKeys {
	p := &ProcessKeys{}
	// crypto/rand.Read never fails (it crashes the program instead).
	_, _ = rand.Read(p.secret[:])
	return p
}

// For returns the stand-in key for site on t's UTC day. Each day gets its
// own key derived from the secret, so ids do not carry over between days
// even within one run, as with real salts.
func (p *ProcessKeys) For(site uint32, t time.Time) *Key {
	day := t.UTC().Format(time.DateOnly)
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.day != day || p.h == nil {
		p.day, p.h = day, derivedHasher(&p.secret, "avila process visitor key", day)
	}
	return newKey(site, day, p.h)
}

// DerivedKey is the key for site on day derived from secret under label:
// the same secret, label and day give the same ids, and ids of different
// days or labels cannot be linked without the secret. The log importer
// keys the visitors of a file with a secret drawn from the file's own
// bytes (see agent/accesslog).
func DerivedKey(secret *[SaltLen]byte, label string, site uint32, day string) *Key {
	return newKey(site, day, derivedHasher(secret, label, day))
}

// derivedHasher is a keyed hasher whose key is derived from secret for
// label and day.
func derivedHasher(secret *[SaltLen]byte, label, day string) *blake3.Hasher {
	var k [SaltLen]byte
	blake3.DeriveKey(label+" "+day, secret[:], k[:])
	h, err := blake3.NewKeyed(k[:])
	if err != nil {
		panic("BUG: blake3 refused a 32-byte key: " + err.Error())
	}
	return h
}
