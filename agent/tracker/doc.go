// Package tracker serves t.js, the project's own small browser tracker, to
// pages that load it from the agent.
//
// t.js sets no cookie and uses no browser storage. It sends a page_view on
// load and on every client-side navigation (history.pushState,
// replaceState, popstate), a click event for links to other hosts, and any
// custom event a page fires with avila(name, params). Each event is one
// small JSON POST to the agent's /api/event, where package collect applies
// the same validation and privacy rules as to gtag.js hits.
package tracker
