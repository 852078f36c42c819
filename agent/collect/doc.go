// Package collect is the agent's HTTP edge: it parses what GA4 senders emit
// (gtag.js on /g/collect), validates it against GA4's limits, applies the
// privacy rules and queues the resulting protocol.Events.
//
// Guarantees:
//   - A 2xx means every event of the request is on disk: all of a request's
//     events go into one queue Append, and 204 is written only after it
//     returned nil. A request is taken whole or not at all.
//   - Bad input gets a 4xx whose body names the parameter and the rule; a
//     refusal that passes (no config, no salt for today, disk buffer full,
//     shutting down) gets a 503 with Retry-After and the reason.
//   - Raw IP addresses and user agents only enter the keyed visitor hash
//     (package privacy); they are never stored or shipped.
package collect
