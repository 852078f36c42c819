// Package agent is the runnable avila-agent: the HTTP edge (package
// collect) in front of the durable queue (package queue), with the shipper
// (package ship) moving queued events to the aggregators over QUIC and
// keeping the site config current.
//
// Its HTTP listener is fasthttp: the collection endpoints, which take every
// hit, are served natively (collect.Collector.FastHandler) at about half the
// CPU per request of net/http; the script /t.js, health, readiness and
// metrics go through fasthttp's net/http adaptor. Request line and headers
// are bounded at 16 KiB (431 past that), bodies at the largest endpoint
// limit (413), each answer naming the bound. Beneath it package listen caps
// connections in total and per client address (503 past a cap), retries
// accepts that fail for want of file descriptors instead of stopping, and
// closes lingering after an early answer.
//
// It is wired by cmd/avila-agent and by `avila demo`, which runs it in the
// same process as an aggregator. A 2xx to a sender means the event is
// fsynced in the queue; the queue keeps it until an aggregator acknowledged
// storing it, across restarts and crashes.
package agent
