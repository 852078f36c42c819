// Package enrich is the agent's enrichment step: between privacy and the
// queue it adds to each event what the request says about the visitor,
// without keeping what it was told.
//
//   - Geo: country, and region and city when a MaxMind-format database
//     (GeoIP2/GeoLite2 City or Country, DB-IP lite …) is configured, from
//     the full client IP. Without a database, or when it has no answer, an
//     IP→country table embedded in the binary answers, so a fresh agent
//     reports countries with no file at all. The IP is used in memory for
//     the lookup and never stored.
//   - User agent: browser family, browser major version, OS family and
//     device category (desktop, mobile, tablet), parsed by a maintained
//     parser and kept in an LRU cache, so a repeated user agent costs one
//     map lookup. The user agent itself never leaves the enricher.
//   - Bots: crawlers, monitoring tools, HTTP libraries and headless
//     browsers are flagged; the collector answers their hits like any other
//     but does not store them, and the enricher counts them (Stats.Bots).
package enrich
