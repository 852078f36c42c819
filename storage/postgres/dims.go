package postgres

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"sync"
	"unsafe"

	"github.com/jackc/pgx/v5"
)

// DimKind says what a dims row holds (dims.kind). Values are stored in the
// database: never renumber them.
type DimKind int16

const (
	DimEventName DimKind = 1
	DimPagePath  DimKind = 2
	DimHost      DimKind = 3
	DimTitle     DimKind = 4
	DimReferrer  DimKind = 5
	DimLanguage  DimKind = 6
	DimScreen    DimKind = 7
	DimCountry   DimKind = 8
	DimRegion    DimKind = 9
	DimCity      DimKind = 10
	DimBrowser   DimKind = 11
	DimOS        DimKind = 12
	DimDevice    DimKind = 13
	// A session's traffic source, on its first event only
	// (aggregator/channel).
	DimSource       DimKind = 14
	DimMedium       DimKind = 15
	DimCampaign     DimKind = 16
	DimChannelGroup DimKind = 17
)

// dimCacheSize bounds the number of cached dictionary entries (two
// generations of half this size each; ~100 bytes per entry).
const dimCacheSize = 1 << 18

// dimKey identifies a dictionary string.
type dimKey struct {
	site  uint32
	kind  DimKind
	value string
}

func compareDimKeys(a, b dimKey) int {
	return cmp.Or(cmp.Compare(a.site, b.site), cmp.Compare(a.kind, b.kind), cmp.Compare(a.value, b.value))
}

// idCache maps keys (dims strings, profiles) to ids. It keeps two generations: when the
// current one fills up it becomes the old one and the older is dropped, so
// memory stays bounded and strings in use survive (a hit in the old
// generation is copied forward). Ids never change, so a cached id is never stale.
type idCache[K comparable] struct {
	mu       sync.Mutex
	max      int // entries per generation
	cur, old map[K]int32
}

// dimCache maps dims strings to their ids.
type dimCache = idCache[dimKey]

func newIDCache[K comparable](size int) *idCache[K] {
	return &idCache[K]{max: max(size/2, 1), cur: make(map[K]int32), old: make(map[K]int32)}
}

// get returns k's id; the caller holds c.mu.
func (c *idCache[K]) get(k K) (int32, bool) {
	if id, ok := c.cur[k]; ok {
		return id, true
	}
	id, ok := c.old[k]
	if ok {
		c.putLocked(k, id)
	}
	return id, ok
}

func (c *idCache[K]) putLocked(k K, id int32) {
	if len(c.cur) >= c.max {
		c.old, c.cur = c.cur, make(map[K]int32, c.max)
	}
	c.cur[k] = id
}

// numDimKinds is the number of dictionary-coded fields of an event.
const numDimKinds = 17

// dimSlot points at one id of one row still waiting for its string's id,
// that of dimResolver.missing[at].
type dimSlot struct {
	ids   *[numDimKinds]int32
	k, at int32
}

// dimResolver resolves the strings of one batch to ids: cache hits are
// written straight into the rows; misses are collected once each, with the
// slots that wait for them.
type dimResolver struct {
	ids     map[dimKey]int32 // misses, then their resolved ids
	missing []dimKey         // in the order first met (resolveDims sorts a copy)
	at      map[dimKey]int32 // index in missing
	// pending are the slots waiting for ids, all in one array (a slice
	// per missing string was an allocation each, grown again and again).
	pending []dimSlot

	// The strings of the last fill and their ids, where the cache had
	// them (lastOK): events of one visitor follow each other and share
	// most strings (the decoder gives equal strings one pointer, so the
	// comparison is cheap), which then cost no cache look-up.
	lastSite uint32
	last     [numDimKinds]string
	lastIDs  [numDimKinds]int32
	lastOK   [numDimKinds]bool

	// known holds, by kind, the ids of lastSite's strings this resolver
	// found in the cache: a derivation's events cycle through a few
	// event names and pages that the previous event did not share, and a
	// look-up by the string alone costs less than the cache's, which
	// hashes and compares site, kind and string under its lock. Ids never
	// change, so a remembered id is the cache's; it lives as long as the
	// resolver (one ResolveEventsTo), for one site at a time.
	known [numDimKinds]map[string]int32

	// addrs is the store's table of strings by address (nil: none),
	// looked up before known.
	addrs *dimAddrs
}

// dimAddrSlots is the number of entries of a dimAddrs (384 KB): room for
// a busy site's pages, titles and referrers.
const dimAddrSlots = 2 << dimAddrBits

const dimAddrBits = 13

// dimAddr is a dictionary string by address: its bytes' first byte and
// length, with its site, kind and id.
type dimAddr struct {
	p    *byte
	n    int32
	site uint32
	kind DimKind
	id   int32
}

// dimAddrs holds the ids of strings the cache had, by the address of their
// bytes, each in the set of two slots its address, site and kind pick (a
// later string of the same set replaces the older of the two). The decoder gives equal strings of a
// derivation's events one allocation (protocol.EventDecoder), so a string
// met again is found by comparing its address, length, site and kind,
// where the cache and the resolver's known maps hash and compare its
// bytes. The entry's pointer keeps the bytes alive, so no other string
// takes their address while the entry holds them, and the bytes of a
// string never change while it exists (the language's rule, which
// unsafe.String's callers must keep too); ids never change, so an entry
// never goes stale. Guarded by the dims cache's mutex.
type dimAddrs [dimAddrSlots]dimAddr

// get returns the id of p's string of length n, site and kind, if a holds it.
func (a *dimAddrs) get(p *byte, n int32, site uint32, kind DimKind) (int32, bool) {
	set := a.set(p, site, kind)
	for i := range set {
		if e := &set[i]; e.p == p && e.n == n && e.site == site && e.kind == kind {
			return e.id, true
		}
	}
	return 0, false
}

// put records the id of p's string of length n, site and kind, in front of
// its set, where it replaces the older entry.
func (a *dimAddrs) put(p *byte, n int32, site uint32, kind DimKind, id int32) {
	set := a.set(p, site, kind)
	set[1], set[0] = set[0], dimAddr{p, n, site, kind, id}
}

// set is the two entries p's string of site and kind may be in: two, so
// that strings whose addresses pick the same set, met in turn, do not
// push each other out.
func (a *dimAddrs) set(p *byte, site uint32, kind DimKind) *[2]dimAddr {
	h := (uint64(uintptr(unsafe.Pointer(p))) ^ uint64(site)<<32 ^ uint64(kind)<<56) * 0x9e3779b97f4a7c15
	return (*[2]dimAddr)(a[h>>(64-dimAddrBits)*2:])
}

// fill sets ids[k] for each field, that of kind k+1 (fields[j] is the
// field k = from+j; the others are left alone), from the cache, or records
// a miss and sets a provisional id, -1 - its index in missing, which settle
// replaces. The empty string is id 0 (absent). The caller holds c.mu.
func (r *dimResolver) fill(c *dimCache, site uint32, from int, fields []string, ids *[numDimKinds]int32) {
	if site != r.lastSite {
		r.lastSite, r.lastOK = site, [numDimKinds]bool{}
		for k := range r.known {
			clear(r.known[k])
		}
	}
	for j, v := range fields {
		k := from + j
		if v == "" {
			ids[k] = 0
			continue
		}
		// The previous string of the kind, compared by address: mostly
		// the same string, else mostly another of the same length,
		// whose bytes are not worth comparing.
		p, n := unsafe.StringData(v), int32(len(v))
		if r.lastOK[k] && p == unsafe.StringData(r.last[k]) && int(n) == len(r.last[k]) {
			ids[k] = r.lastIDs[k]
			continue
		}
		kind := DimKind(k + 1)
		if r.addrs != nil {
			if id, ok := r.addrs.get(p, n, site, kind); ok {
				ids[k] = id
				r.last[k], r.lastIDs[k], r.lastOK[k] = v, id, true
				continue
			}
		}
		if id, ok := r.known[k][v]; ok {
			ids[k] = id
			r.last[k], r.lastIDs[k], r.lastOK[k] = v, id, true
			if r.addrs != nil {
				r.addrs.put(p, n, site, kind, id)
			}
			continue
		}
		key := dimKey{site, kind, v}
		if id, ok := c.get(key); ok {
			ids[k] = id
			r.last[k], r.lastIDs[k], r.lastOK[k] = v, id, true
			if r.known[k] == nil {
				r.known[k] = make(map[string]int32)
			}
			r.known[k][v] = id
			if r.addrs != nil {
				r.addrs.put(p, n, site, kind, id)
			}
			continue
		}
		r.lastOK[k] = false
		if r.at == nil {
			r.at, r.ids = make(map[dimKey]int32), make(map[dimKey]int32)
		}
		at, seen := r.at[key]
		if !seen {
			at = int32(len(r.missing))
			r.at[key] = at
			r.missing = append(r.missing, key)
		}
		if len(r.pending) == cap(r.pending) {
			// Doubled: append grows a large slice by a quarter, which
			// for a cold derivation's hundreds of thousands of slots
			// allocates several times their size on the way.
			r.pending = slices.Grow(r.pending, max(len(r.pending), 256))
		}
		r.pending = append(r.pending, dimSlot{ids, int32(k), at})
		// Until settle, a provisional id: negative, one per missing
		// string, so that the caller can tell strings apart by id
		// (ResolveEventsTo's traffic pairs).
		ids[k] = -(at + 1)
	}
}

// settle writes the resolved ids into the slots that waited for them.
func (r *dimResolver) settle() {
	if len(r.pending) == 0 {
		return
	}
	resolved := make([]int32, len(r.missing))
	for i, key := range r.missing {
		resolved[i] = r.ids[key]
	}
	for _, sl := range r.pending {
		sl.ids[sl.k] = resolved[sl.at]
	}
}

// resolveDims inserts the strings that are not cached and fetches their ids.
// It runs in its own short implicit transaction, before and apart from the
// batch's: inserting in one sorted order means two batches sharing new strings
// wait for each other at worst and never deadlock.
func (s *Store) resolveDims(ctx context.Context, r *dimResolver) error {
	if len(r.missing) == 0 {
		return nil
	}
	missing := slices.SortedFunc(slices.Values(r.missing), compareDimKeys)
	sites := make([]int32, len(missing))
	kinds := make([]int16, len(missing))
	values := make([]string, len(missing))
	for i, k := range missing {
		sites[i], kinds[i], values[i] = int32(k.site), int16(k.kind), k.value
	}
	b := &pgx.Batch{}
	b.Queue(`INSERT INTO dims (site_id, kind, value)
		SELECT * FROM unnest($1::integer[], $2::smallint[], $3::text[]) ORDER BY 1, 2, 3
		ON CONFLICT DO NOTHING`, sites, kinds, values)
	// A separate statement: it sees rows that concurrent batches committed
	// while the insert above waited for them.
	b.Queue(`SELECT d.id, d.site_id, d.kind, d.value FROM dims d
		JOIN unnest($1::integer[], $2::smallint[], $3::text[]) AS k(site_id, kind, value)
		USING (site_id, kind, value)`, sites, kinds, values)
	res := s.pool.SendBatch(ctx, b)
	defer res.Close()
	if _, err := res.Exec(); err != nil {
		return fmt.Errorf("postgres: insert dims: %w", err)
	}
	rows, err := res.Query()
	if err != nil {
		return fmt.Errorf("postgres: select dims: %w", err)
	}
	type resolved struct {
		k  dimKey
		id int32
	}
	got := make([]resolved, 0, len(r.missing))
	// Declared once, not per row: Scan's destinations escape. Each Scan
	// sets all of them.
	var id, site int32
	var kind int16
	var value string
	dest := []any{&id, &site, &kind, &value}
	for rows.Next() {
		if err := rows.Scan(dest...); err != nil {
			rows.Close()
			return fmt.Errorf("postgres: select dims: %w", err)
		}
		got = append(got, resolved{dimKey{uint32(site), DimKind(kind), value}, id})
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("postgres: select dims: %w", err)
	}
	if len(got) != len(r.missing) {
		return fmt.Errorf("postgres: BUG: resolved %d of %d dims", len(got), len(r.missing))
	}
	// The rows arrive before the implicit transaction commits: an id is
	// cached only once its row is known to be committed, else a commit
	// that fails (the server crashing in between) would leave ids of rows
	// that do not exist for every later batch to point at.
	if err := res.Close(); err != nil {
		return fmt.Errorf("postgres: insert dims: commit: %w", err)
	}
	s.dims.mu.Lock()
	for _, g := range got {
		r.ids[g.k] = g.id
		s.dims.putLocked(g.k, g.id)
	}
	s.dims.mu.Unlock()
	return nil
}
