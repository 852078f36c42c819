// Package governance answers data subjects and keeps the data within its
// bounds: exports (access, portability) and erasures of one subject, found
// by the site's user_id or the client id of the subject's _ga cookie
// through protocol/identity; the API and worker that run them
// asynchronously (gdpr_requests); the retention run with its metrics; and
// the encryption of export files.
//
// Guarantees: an erasure commits whole in one transaction (rows, corrected
// rollup cells of the touched days, tombstone, audit row), after which every
// report equals the report over data that never held the subject, and the
// subject's events arriving within postgres.TombstoneTTL are dropped by the
// write stage. A request accepted by the API survives restarts of every
// node: the worker of any node takes it up. Cookieless visitors (no
// consent) carry no stable key and cannot be found; answers say so.
package governance
