// Package postgres is Avila's system of record: sites, API keys, daily salts,
// dictionaries of repeated strings and the day-partitioned events table.
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
//     harmless: it is reused by the resend.
//   - Errors on the write path are classified by IsTransient: a transient
//     error means "send the batch again later"; anything else is a bug or a
//     broken database and is reported as such.
package postgres
