// Package agent is the runnable avila-agent: the HTTP edge (package
// collect) in front of the durable queue (package queue), with the shipper
// (package ship) moving queued events to the aggregators over QUIC and
// keeping the site config current.
//
// It is wired by cmd/avila-agent and by `avila demo`, which runs it in the
// same process as an aggregator. A 2xx to a sender means the event is
// fsynced in the queue; the queue keeps it until an aggregator acknowledged
// storing it, across restarts and crashes.
package agent
