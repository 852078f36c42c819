// Package demo wires a whole single-node Avila Analytics into one process,
// the way `avila demo` runs it: a managed PostgreSQL (unless a database URL
// is given), one aggregator node, one agent shipping to it over QUIC, a demo
// site with its salts and an API key, and optional synthetic traffic sent
// through the agent's real HTTP endpoint.
//
// Start returns once the agent is ready to accept hits for the demo site;
// Shutdown stops the parts in reverse order (traffic, agent, aggregator,
// PostgreSQL), so what the agent acknowledged stays in its queue or in the
// database.
package demo
