// Package ship moves the agent's sealed queue segments to the aggregators
// and keeps the agent's site configuration current.
//
// A Shipper seals pending events into segments on its own schedule (every
// SealInterval, or as soon as SegmentEvents are pending), never waiting on
// the network, and sends the oldest unacknowledged segments, up to InFlight
// at once, one per QUIC stream. A segment is deleted only after an AckOK;
// an AckReject sets it aside in the queue; anything else (AckRetry, a
// broken connection, no answer) means the outcome is unknown, and the same
// bytes are sent again after an exponential backoff with jitter, to the next
// aggregator when several are configured. Aggregators store each (agent,
// seq) once, so resending is always safe: delivery is at least once, storage
// exactly once.
//
// The site config fetched from an aggregator is cached in the queue's file,
// so an agent restarted while no aggregator is reachable still knows its
// sites and salts (LoadCachedConfig).
package ship
