// Package postgres is Avila's system of record: sites, API keys, daily salts,
// dictionaries of repeated strings, the day-partitioned events table and the
// daily rollups reports read instead of events.
//
// Guarantees:
//   - Migrate applies the embedded, numbered migrations with tern under a
//     PostgreSQL advisory lock, so several aggregators may start at once.
//   - The write stage (aggregator/write) owns the order of the steps and
//     the rules (sessions, traffic sources); this package offers the steps
//     as typed operations and owns the tables. StageBatch commits a batch's
//     key (agent_id, seq), its events as staged_events rows (one per site,
//     wire form) and its dead letters in one transaction: a resent batch is
//     reported as a duplicate and writes nothing, which turns at-least-once
//     shipping into exactly-once storage. A DeriveTx (BeginDerive) holds a
//     site's derive lock, takes its staged rows, writes sessions
//     (LookupSessions, UpsertSessions), then events, rollups and session
//     rollups (WriteEvents: CopyEvents on the transaction's connection
//     from another goroutine while the rollups' aggregation runs), and
//     deletes the staged rows it took when it commits (migration 014):
//     each event is derived exactly once.
//   - Dictionary strings are resolved to ids outside the derivation transaction, in
//     a fixed order, so concurrent derivations neither wait on nor deadlock with
//     each other over shared strings. A dictionary row without its events is
//     harmless: it is reused by the next derivation. Combinations of ids that events
//     share (a page's host, path and title; a client's language, screen,
//     place, browser, OS and device; a session's traffic source) are
//     profiles (content_profiles, client_profiles, traffic_profiles),
//     resolved the same way, so an events row holds one id for each and
//     stays at 84 bytes without custom parameters (migration 008).
//   - Rollups (rollup_days: per site, local day in the site's time zone and
//     dimension kind, counters and HyperLogLog sketches of visitors) are
//     aggregated per derivation in Go and written in its transaction, so a
//     staged event adds to them once. Sketches are merged in Go with the
//     stored ones, read without row locks: the site's writers exclude each
//     other by the derive lock and the sites row lock (storeRollupRounds).
//     A cell's users sketch equal to its active-users sketch is stored as
//     an empty bytea (NULL: no users), in rollup_days, rollup_packs'
//     users arrays and session_rollups alike, so activeUsers reports read the active sketches
//     alone; its new-users sketch equal to the active one takes the same
//     marker. Readers expand both through ExpandSketches (ExpandUsers),
//     writers store them through compactSketches (sketch_active.go), and
//     full copies stay valid.
//     Events that reach the table otherwise
//     (bulk loads) need RebuildRollups; sites.rollups_from (and
//     hour_rollups_from for the hourly rows, kind RollupHour, and
//     traffic_rollups_from for the rows by session traffic source, kind
//     RollupSessionTraffic, and page_rollups_from for the rows by landing
//     page and the sessions sketches by page, kinds RollupLandingPage,
//     RollupPageSessions and RollupTitleSessions) says from which day a site's rollups are
//     complete. Closed days (before yesterday in
//     the site's time zone) are packed by PackRollups, the upkeep job, into
//     one rollup_packs row per kind and day holding its values as parallel
//     arrays; reports add both tables (late events of a packed day land in
//     rollup_days until the next pack). A page title kind's pack equal cell
//     for cell to its day's page path kind's pack is stored as a reference
//     to it (rollup_pack_refs.go); readers read rollup_packs through
//     rollupPacks, which expands it. A cell's amounts (Amounts,
//     migration 019) are its ecommerce counters by slot; item rows add to
//     cells of the item kinds (ItemRollupKinds, RollupItems), and
//     sites.commerce_rollups_from says from which day they are complete.
//   - Settled days' events (UTC days that ended more than 72 hours ago, as
//     far back as a Measurement Protocol event may be dated) are packed by
//     PackEvents, the upkeep job, into event_packs: per site, day and part
//     of at most 65536 events, one row of parallel arrays in (session_id,
//     ts) order, which TOAST compresses to about 14 bytes per event
//     (migration 013). A day moves in one statement, so readers see each
//     event once; late events of a packed day stay in the events table
//     until the next pass. Whatever reads events reads both tables
//     through EventsIn, over the columns it reads.
//   - Item rows (event_items, one per item of an ecommerce event) are
//     partitioned by UTC day with the events (migration 021), and PackItems
//     packs settled days into item_packs in the same pass, under the same
//     rule; every reader of item rows (item reports, rollup rebuilds,
//     exports) reads both through ItemsIn or ItemsOf, and an erasure
//     rewrites the subject's item packs (eraseSubjectItemPacks).
//   - Sessions are assigned by the write stage when it derives a site, and
//     upserted in the derivation's transaction: a session row counts each
//     stored event exactly once. Events carry their session's id in
//     events.session_id.
//   - Session rollups (session_rollups: per site, local day of the
//     session's start and session dimension kind, SessionRollupKinds) hold
//     the sessions' counters and visitor sketches. The sessions upsert
//     returns each row's values before and after the derivation, which
//     adds the difference, in its transaction; RebuildSessions and
//     RebuildRollups recompute them, and sites.session_rollups_from says
//     from which day they are complete. Their active sketches follow the
//     user-days (rollup_user_days) as rollup_days' do.
//   - Errors on the write path are classified by IsTransient: a transient
//     error means "send the batch again later"; anything else is a bug or a
//     broken database and is reported as such.
package postgres
