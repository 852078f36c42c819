// Package postgres is Avila's system of record: sites, API keys, daily salts,
// dictionaries of repeated strings, the day-partitioned events table and the
// daily rollups reports read instead of events.
//
// Guarantees:
//   - Migrate applies the embedded, numbered migrations with tern under a
//     PostgreSQL advisory lock, so several aggregators may start at once.
//   - WriteBatch commits a batch's key (agent_id, seq), its events and its
//     dead letters in one transaction: a resent batch is reported as a
//     duplicate and writes nothing, which turns at-least-once shipping into
//     exactly-once storage.
//   - Dictionary strings are resolved to ids outside the batch transaction, in
//     a fixed order, so concurrent batches neither wait on nor deadlock with
//     each other over shared strings. A dictionary row without its batch is
//     harmless: it is reused by the resend. Combinations of ids that events
//     share (a page's host, path and title; a client's language, screen,
//     place, browser, OS and device; a session's traffic source) are
//     profiles (content_profiles, client_profiles, traffic_profiles),
//     resolved the same way, so an events row holds one id for each and
//     stays at 84 bytes without custom parameters (migration 008).
//   - Rollups (rollup_days: per site, local day in the site's time zone and
//     dimension kind, counters and HyperLogLog sketches of visitors) are
//     aggregated per batch in Go and written in the batch's transaction, so
//     a resent batch adds nothing to them either. Sketches are merged under
//     row locks taken in key order. Events that reach the table otherwise
//     (bulk loads) need RebuildRollups; sites.rollups_from (and
//     hour_rollups_from for the hourly rows, kind RollupHour) says from which
//     day a site's rollups are complete. Closed days (before yesterday in
//     the site's time zone) are packed by PackRollups, the upkeep job, into
//     one rollup_packs row per kind and day holding its values as parallel
//     arrays; reports add both tables (late events of a packed day land in
//     rollup_days until the next pack).
//   - Settled days' events (UTC days that ended more than 72 hours ago, as
//     far back as a Measurement Protocol event may be dated) are packed by
//     PackEvents, the upkeep job, into event_packs: per site, day and part
//     of at most 65536 events, one row of parallel arrays in (session_id,
//     ts) order, which TOAST compresses to about 14 bytes per event
//     (migration 013). A day moves in one statement, so readers see each
//     event once; late events of a packed day stay in the events table
//     until the next pass. Whatever reads events reads both tables
//     through EventsIn, over the columns it reads.
//   - Sessions (aggregator/sessions) are assigned inside the batch's
//     transaction under advisory locks on its visitors, from the sessions
//     already committed (a cache, by default in memory or Redis via
//     SetSessionCache, else a database look-up), and upserted in it: a
//     session row counts each stored event exactly once, and batches
//     sharing visitors, on any node, continue each other's sessions.
//     Events carry their session's id in events.session_id.
//   - Session rollups (session_rollups: per site, local day of the
//     session's start and session dimension kind, SessionRollupKinds) hold
//     the sessions' counters and visitor sketches. The sessions upsert
//     returns each row's values before and after the batch, and the batch
//     adds the difference, in its transaction; RebuildSessions recomputes
//     them, and sites.session_rollups_from says from which day they are
//     complete.
//   - Errors on the write path are classified by IsTransient: a transient
//     error means "send the batch again later"; anything else is a bug or a
//     broken database and is reported as such.
package postgres
