// Package write is the aggregator's write stage: it turns validated
// batches into the rows reports read, in two steps.
//
//  1. Stage (Writer.WriteBatch, on the node that received the batch): one
//     PostgreSQL transaction commits the batch key (agent_id, seq), the
//     batch's events as staged rows (one per site, in wire form) and its
//     dead letters (postgres.Store.StageBatch). A resent batch finds its key
//     and writes nothing, so at-least-once shipping becomes exactly-once
//     storage here. The transaction takes no lock that another batch holds,
//     so batches of one site commit side by side on any number of nodes.
//  2. Derive (Writer.Run, on every node): per site, one transaction at a
//     time in the cluster (a transaction advisory lock on the site, taken
//     with try-lock so nodes never queue behind each other) takes the site's
//     staged rows in bulk, resolves strings to dictionary ids, attributes
//     traffic sources (aggregator/channel), assigns sessions
//     (aggregator/sessions), and writes events, sessions, rollups and
//     session rollups, deleting the staged rows it consumed in the same
//     transaction. So each event is derived exactly once, a derivation
//     killed half-way leaves its rows for the next, and derived state per
//     site has one writer at a time: no visitor locks and no row-lock
//     waits between batches.
//
// Reports (everything read from PostgreSQL) lag staging by up to
// Config.Interval (1 s) and two derivation transactions while the load is
// within capacity: a node wakes at once for the batches it stages, and a
// node that derived events looks again Config.Interval after that
// derivation began (at once when it stopped at its bounds with events
// still staged), so that each derivation takes what a second brought
// rather than a batch or two (sooner once a site it derives holds a
// whole derivation's staged events, whichever node staged them: a burst;
// it looks every Config.Every while it waits). Idle, a node looks for other nodes' batches after
// Config.Every (250 ms), doubling the wait up to Config.IdleEvery (4 s);
// that bounds the lag of batches whose staging node stopped before
// deriving them. Realtime (Redis, recorded at staging) does not lag. The node keeps each site's recent sessions in memory while it
// derives the site; a generation number in derive_state tells it when
// another node derived the site in between, and then it reads them from
// the sessions table instead. So that one node keeps deriving a busy
// site under steady traffic, derive_state also names the node (its Store)
// that began the site's last derivation and when: other nodes leave the
// site to it for Config.Interval and stickFor (2 s) after that, and take
// it over once it derived nothing for that long (its node stopped or
// left).
//
// A staged row no derivation can take (it does not decode, or PostgreSQL
// refuses its events) is moved to quarantine so that its site's later
// rows are derived (quarantine.go); `avila staged requeue` puts it back.
package write
