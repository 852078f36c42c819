package enrich

import (
	"errors"
	"fmt"
	"net/netip"
	"sync/atomic"

	lru "github.com/hashicorp/golang-lru/v2"

	"github.com/avila-analytics/avila/protocol"
)

// DefaultUACacheSize is the number of parsed user agents kept when
// Config.UACacheSize is 0: a site's traffic is dominated by a few hundred
// browser builds, so a few thousand entries hit almost always.
const DefaultUACacheSize = 4096

// Config configures New.
type Config struct {
	// GeoIPDB is the path of a MaxMind-format (.mmdb) City or Country
	// database; empty uses only the embedded IP→country table.
	GeoIPDB string
	// UACacheSize is the number of parsed user agents kept;
	// DefaultUACacheSize when 0.
	UACacheSize int
}

// Stats are counters since New.
type Stats struct {
	Events uint64 // events enriched, bots included
	Bots   uint64 // events flagged as bots (not stored)
	// UACacheHits and UACacheMisses count user agent lookups.
	UACacheHits, UACacheMisses uint64
	GeoDB                      string // database type of GeoIPDB, "" when none
}

// Enricher adds geo and user agent fields to events. Safe for concurrent
// use.
type Enricher struct {
	geo     *geo
	uaCache *lru.Cache[string, uaInfo]

	events, bots, hits, misses atomic.Uint64
}

// New opens cfg.GeoIPDB, if any, and returns an Enricher; Close releases
// the database.
func New(cfg Config) (*Enricher, error) {
	if cfg.UACacheSize < 0 {
		return nil, errors.New("enrich: user agent cache size must be >= 0")
	}
	if cfg.UACacheSize == 0 {
		cfg.UACacheSize = DefaultUACacheSize
	}
	cache, err := lru.New[string, uaInfo](cfg.UACacheSize)
	if err != nil {
		return nil, fmt.Errorf("enrich: user agent cache: %w", err)
	}
	g, err := openGeo(cfg.GeoIPDB)
	if err != nil {
		return nil, err
	}
	return &Enricher{geo: g, uaCache: cache}, nil
}

// Enrich sets e's Country, Region, City, Browser, BrowserVer, OS and Device
// from the client IP and user agent, and reports whether the user agent is
// a bot; a bot's event is left as it was.
func (en *Enricher) Enrich(e *protocol.Event, ip netip.Addr, ua string) (bot bool) {
	en.events.Add(1)
	info := en.userAgent(ua)
	if info.bot {
		en.bots.Add(1)
		return true
	}
	e.Browser, e.BrowserVer, e.OS, e.Device = info.browser, info.version, info.os, info.device
	e.Country, e.Region, e.City = en.geo.lookup(ip)
	return false
}

// userAgent returns the parsed ua from the cache, parsing it on a miss.
func (en *Enricher) userAgent(ua string) uaInfo {
	if info, ok := en.uaCache.Get(ua); ok {
		en.hits.Add(1)
		return info
	}
	en.misses.Add(1)
	info := parseUA(ua)
	// Over-long user agents are parsed but not kept: they are forged or
	// broken, rarely repeat, and would make the cache's memory unbounded.
	if len(ua) <= maxCachedUA {
		en.uaCache.Add(ua, info)
	}
	return info
}

// Stats returns the counters.
func (en *Enricher) Stats() Stats {
	return Stats{
		Events: en.events.Load(), Bots: en.bots.Load(),
		UACacheHits: en.hits.Load(), UACacheMisses: en.misses.Load(),
		GeoDB: en.geo.dbType(),
	}
}

// Close releases the geo database.
func (en *Enricher) Close() error { return en.geo.close() }
