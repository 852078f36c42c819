// Package ship moves the agent's sealed queue segments to the aggregators
// and keeps the agent's site configuration current.
//
// A Shipper seals pending events into segments on its own schedule (every
// SealInterval, or as soon as SegmentEvents are pending), never waiting on
// the network, and sends the oldest unacknowledged segments, up to InFlight
// at once, one per QUIC stream. A segment is deleted only after an AckOK;
// an AckReject sets it aside in the queue; anything else (AckRetry, a
// broken connection, no answer) means the outcome is unknown, and the same
// bytes are sent again after an exponential backoff with jitter. Aggregators
// store each (agent, seq) once, so resending is always safe, to the same node
// or another: delivery is at least once, storage exactly once.
//
// Which aggregator: every ack and config names the live cluster members
// (seeds stand in until one answers). The agent ranks them by rendezvous hash
// of its id, so agents spread over the nodes and stick to theirs, and only
// the agents of a node that joins or leaves move. A node that errs, stays
// silent for PeerTimeout, answers Retry or says it is draining is passed over
// for a while (1 s, doubling to 30 s), so unacknowledged segments go to the
// next node in the agent's ranking; when the node is back and live, the agent
// returns to it.
//
// The site config fetched from an aggregator is cached in the queue's file,
// so an agent restarted while no aggregator is reachable still knows its
// sites and salts (LoadCachedConfig).
package ship
