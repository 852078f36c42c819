// Package ship moves the agent's sealed queue segments to the aggregators
// and keeps the agent's site configuration current.
//
// A Shipper seals pending events into segments on its own schedule (at most
// SealInterval after they were appended, or as soon as SegmentEvents are
// pending; an idle agent's seal timer does not run), never waiting on the
// network, and sends the oldest unacknowledged segments, up to InFlight
// at once, one per QUIC stream. A segment is deleted only after an AckOK;
// an AckReject sets it aside in the queue; anything else (AckRetry, a
// broken connection, no answer) means the outcome is unknown, and the same
// bytes are sent again after an exponential backoff with jitter. Aggregators
// store each (agent, seq) once, so resending is always safe, to the same node
// or another: delivery is at least once, storage exactly once.
//
// Which aggregator: every ack and config lists the cluster's members with
// their state (alive, suspect, dead, draining) and incarnation (seeds stand
// in until one answers). The agent ranks them by rendezvous hash of its id,
// so agents spread over the nodes and stick to theirs, and only the agents
// of a node that joins or leaves move; alive nodes come first, suspect and
// draining ones only after them, dead ones not at all. The agent notices a
// dead or frozen node itself within PeerTimeout (its keep-alives go
// unanswered). A connection that carried no request for PeerTimeout is
// closed and its keep-alives stop, so an idle agent sends nothing; the
// standby counts as used while deliveries go on, and the next request
// dials again. A node that errs, stays silent, answers Retry or drains is
// down for the agent: deliveries skip it and never wait on a dial to it,
// until the cluster lists it with a new incarnation or a dial in the
// background succeeds (after a penalty of 1 s, doubling to 30 s, or as soon
// as the cluster lists it alive again); then the agent returns to it. Dials
// run outside locks, one at a time per node, and the next node in the
// ranking is kept connected, so failing over needs no dial.
//
// The site config fetched from an aggregator is cached in the queue's file,
// so an agent restarted while no aggregator is reachable still knows its
// sites and salts (LoadCachedConfig).
package ship
