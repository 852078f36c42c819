// Package accesslog turns a web server's access log into page_view events,
// so a site's history from before it ran Avila can be imported
// (`avila import`).
//
// Each line is parsed (Apache/nginx combined, nginx's main with the
// X-Forwarded-For column, or Caddy's JSON), kept only when it is a page a
// person loaded (GET, 2xx or 304, not an asset, not a tracker path, not a
// bot) and then goes through the agent's own rules: the page URL and
// referrer are scrubbed as the agent scrubs them (query parameters dropped
// but for the site's allowlist, e-mail addresses masked), geo, browser, OS
// and device come from the address and user agent in memory, and the
// visitor is cookieless. Raw addresses and user agents never leave this
// package: events carry only what an agent would ship.
//
// Visitor ids are keyed hashes whose per-day keys are derived from a secret
// drawn from the log file's own bytes (BLAKE3 of the whole file). The same
// file therefore always gives the same events, in the same batches under
// the same batch keys, which makes an import idempotent: a rerun, or a
// rerun after an interrupted import, stores each line once, because the
// aggregator acknowledges a batch key it has committed without writing it
// again. Only someone holding the file can recompute the ids, and that
// person holds the raw addresses anyway.
package accesslog
