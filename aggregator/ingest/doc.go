// Package ingest is the aggregator's side of the agent protocol: it
// implements protocol.Handler over the PostgreSQL store.
//
// A batch is decoded, each event is checked on its own with protocol/rules,
// the same rules agents apply before they answer (an invalid event becomes a
// dead letter naming its rule, counted in analytics_dead_letters_total, and
// never sinks its batch; since agents refuse or repair first, a dead letter
// means a bug, and Replay stores it once fixed), and the
// rest is committed with the batch key by storage/postgres.Store.WriteBatch.
// The answer tells the agent what to do next:
//   - AckOK: stored now or before (Duplicate); the agent may delete the batch.
//   - AckRetry: the database could not take it now; send it again later.
//   - AckReject: the payload can never be decoded; the agent sets it aside.
//
// Config requests are answered with the sites and their salts for
// yesterday, today and tomorrow, cached for a few seconds so a fleet of
// agents does not hammer the database.
package ingest
