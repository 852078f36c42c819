// Package protocol is the one contract between avila-agent and avila-aggregator.
//
// An agent ships its durable queue as numbered segments: each segment becomes
// one Batch keyed by (AgentID, Seq). A Batch travels as MessagePack compressed
// with zstd, in one frame on its own QUIC stream (ALPN "avila/1"), and the
// aggregator answers that stream with one Ack frame. A batch is deleted by the
// agent only after an AckOK; the aggregator stores the batch key in the same
// PostgreSQL transaction as its events, so a resent batch is acknowledged
// without being written twice (at-least-once shipping, exactly-once storage).
//
// The same framing carries a ConfigRequest/Config exchange through which agents
// learn their sites and daily salts from whichever aggregator they talk to.
//
// Version is bumped on any incompatible change; decoders reject versions they
// do not know with a clear error instead of guessing. A field added to Event
// with omitempty (the ecommerce fields and Items) keeps the version: older
// decoders skip keys they do not know, so aggregators are upgraded before
// the agents that send the new fields.
package protocol
