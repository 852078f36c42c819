// Package redis holds the aggregator's derived state in Redis: the query
// cache and per-site data versions, and realtime counters and their pub/sub
// feed. (Session state is not kept here: the write stage that derives a
// site keeps it in memory, aggregator/write.)
//
// Redis is never the truth. Every feature here keeps working without it: a
// nil client selects an in-memory implementation that serves a single node,
// and a Redis error degrades to the database or the in-memory path rather
// than failing a request or a batch. Every key carries a TTL, and every key
// starts with the configured prefix so several deployments (or test
// packages) can share one server.
package redis
