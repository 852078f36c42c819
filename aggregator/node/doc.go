// Package node assembles one aggregator process: the PostgreSQL store
// (migrated at start), the upkeep jobs, the QUIC ingest server and the HTTP
// API (health, readiness, the GA4 Data API). cmd/avila-aggregator only turns
// flags into a Config; `avila demo` can start a node in-process the same way.
//
// Start returns once the node is ready: migrations applied, today's salts and
// partitions in place, both listeners bound. Shutdown stops accepting batches,
// lets in-flight batches commit, derives what is staged, stops the API and
// closes the database. Batches go through the write stage
// (aggregator/write): staged at once, derived in the background.
package node
