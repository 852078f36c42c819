// Package jobs runs the aggregator's periodic upkeep: daily partitions of the
// events table (yesterday through three days ahead) and the daily visitor-id
// salts (today and tomorrow created, expired ones deleted), and the packing
// of closed days' rollups and settled days' events (storage/postgres
// Store.PackRollups, Store.PackEvents; each bounded per run, so a backlog
// drains over several runs), and a first ANALYZE of partitions written
// before autovacuum analyzed them (Store.AnalyzeFresh).
//
// Every job is idempotent, yet in a cluster they run as singletons: the node
// holding a PostgreSQL advisory lock (AdvisoryLock) runs them every
// Interval, the others stand by and take over within LeaderRetry when the
// leader dies (its connection closes and PostgreSQL frees the lock). Every
// node also runs them once at start-up, before it reports ready, waiting
// for any run in progress elsewhere, so no two runs ever overlap; a
// failure of packing, retention or analyzing alone (OnlyDeferrable) does not stop it from
// starting.
package jobs
