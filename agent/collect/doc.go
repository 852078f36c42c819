// Package collect is the agent's HTTP edge: it parses what GA4 senders emit
// (gtag.js on /g/collect, the Measurement Protocol on /mp/collect and
// /debug/mp/collect) and what the project's t.js sends (/api/event, script
// on /t.js), validates it against GA4's limits, applies the edge policies
// (rate limits, DNT/GPC, consent) and the privacy rules, and queues the
// resulting protocol.Events.
//
// Guarantees:
//   - A 2xx means every event of the request is on disk: all of a request's
//     events go into one queue Append, and 204 is written only after it
//     returned nil. A request is taken whole or not at all.
//   - Every event is checked with protocol/rules before the answer: what
//     GA4 refuses gets a 4xx naming the rule's code; what GA4 repairs
//     (lengths cut by characters, invalid UTF-8, NUL) is repaired, named in
//     the Avila-Repaired header and counted. So a queued event always passes
//     the aggregator's guard: a 2xx is never a dead letter.
//   - Bad input gets a 4xx whose body names the parameter and the rule; a
//     refusal that passes (no config, disk buffer full, shutting down)
//     gets a 503 with Retry-After and the reason; a rate limit gets a 429
//     with Retry-After. The exception is a browser hit with DNT: 1 or
//     Sec-GPC: 1 under the drop policy (the site's, else the agent's
//     --dnt): answered 204 as GA4 does, not stored, counted.
//   - A site with no salt for today yet is not refused: its hits are
//     stored cookieless with a visitor id from the process's in-memory key
//     (privacy.ProcessKeys), logged (throttled) and counted as no_salt.
//   - Measurement Protocol requests need the site's api_secret; the debug
//     path stores nothing and answers GA4's validationMessages.
//   - The client address is the TCP peer's unless the peer is a trusted
//     proxy; only then are Forwarded / X-Forwarded-For read.
//   - Raw IP addresses and user agents only enter the keyed visitor hash
//     (package privacy) and the in-memory enrichment; they are never stored
//     or shipped. With analytics storage denied (gcs, MP consent) or t.js,
//     client and user ids are not used either.
package collect
